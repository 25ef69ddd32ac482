"""The typed config: each setting declared once, as a dataclass field, from which come the schema that Snakemake
validates with, the defaults, and flags that round-trip."""

import argparse
import typing
from dataclasses import asdict, fields
from pathlib import Path
from typing import ClassVar, Literal

import pytest
import yaml
from pydantic import Field
from snakemake.utils import validate

from asrkit.config import (RUN_ONLY, Config, DecodingConfig, FeatureConfig, ModelConfig, Section, TrainingConfig,
                           TransducerConfig, UnitsConfig, add_flags, from_flags, load_config, load_config_file, schema,
                           section, to_flags, write_schema)
from asrkit.model.registry import ENCODERS, MODEL_TYPES
from asrkit.search.searches import search_methods

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = [hint for hint in typing.get_type_hints(Config).values()
            if isinstance(hint, type) and issubclass(hint, Section)]
#: the least a config can be given: the keys without a default
REQUIRED = {"recipe": "timit", "corpus_dir": None, "seed": 1, "models": ["ctc"],
            "units": {"type": "phones", "phone_set": 60}, "features": {"type": "fbank"},
            "model": {"num_layers": 1, "hidden_size": 8}, "training": {"num_epochs": 1, "max_duration": 10},
            "decoding": {"beams": [4]}}


def test_the_schema_lists_every_field_in_order():
    """The schema is derived from the dataclasses; its keys come in the order the fields are declared (the order
    of --help and of the printed schema)."""
    assert [f.name for f in fields(Config)] == list(schema()["properties"])
    for cls in SECTIONS:
        assert [f.name for f in fields(cls)] == list(cls.schema()["properties"]), cls.KEY


def test_snakemake_fills_in_the_same_defaults_as_the_dataclasses(tmp_path):
    """The rules read the config that Snakemake completes from the schema's defaults, the stage commands the
    dataclasses: the two agree on every key, and a key without a default (None) stays absent."""
    given = {**{cls.KEY: {} for cls in SECTIONS}, **REQUIRED}  # a section left out gets no defaults in either
    config = yaml.safe_load(yaml.safe_dump(given))
    validate(config, write_schema(tmp_path / "config.schema.json"))
    typed = asdict(load_config(given))
    for name, cls in typing.get_type_hints(Config).items():
        if isinstance(cls, type) and issubclass(cls, Section):
            filled = config[name]
            for key, value in typed[name].items():
                expected = filled.get(key)
                assert value == (tuple(expected) if isinstance(expected, list) else expected), f"{name}.{key}"
        else:
            assert typed[name] == (tuple(config[name]) if isinstance(config.get(name), list) else config.get(name))
    assert "num_threads" not in config["training"] and typed["training"]["num_threads"] is None


def test_a_setting_is_declared_once(capsys):
    """One field gives the schema its type, default, bounds and description, and the stage command its flag."""

    @section
    class ExampleConfig(Section):
        """an example section"""

        KEY: ClassVar[str] = "example"
        width: int = Field(3, ge=1, description="how wide")
        kind: Literal["a", "b"] = Field()
        workers: int = Field(1, ge=0, json_schema_extra=RUN_ONLY)

    assert ExampleConfig.schema() == {
        "type": "object", "additionalProperties": False, "description": "an example section", "required": ["kind"],
        "properties": {"width": {"type": "integer", "minimum": 1, "default": 3, "description": "how wide"},
                       "kind": {"type": "string", "enum": ["a", "b"]},
                       "workers": {"type": "integer", "minimum": 0, "default": 1, "run_only": True}}}
    assert ExampleConfig.run_only_keys() == ("workers",)
    parser = argparse.ArgumentParser()
    add_flags(parser, ExampleConfig)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "how wide (default: 3)" in capsys.readouterr().out
    assert from_flags(parser.parse_args(["--example.kind", "b"]), ExampleConfig) == ExampleConfig(kind="b")
    with pytest.raises(ValueError, match=r"config example.width: 0 is less than the minimum of 1"):
        ExampleConfig.from_dict({"kind": "a", "width": 0})
    with pytest.raises(SystemExit):
        parser.parse_args(["--example.kind", "c"])


def test_run_only_keys_are_declared_with_their_settings():
    assert TrainingConfig.run_only_keys() == ("keep_last_checkpoints", "checkpoint_every_batches", "num_workers",
                                              "num_threads")
    assert FeatureConfig.run_only_keys() == ("num_shards",)


@pytest.mark.parametrize("units,message", [
    ({"type": "phones"}, "config units: 'phone_set' is a required property"),
    ({"type": "phones", "phone_set": 39}, "config units.phone_set: 39 is not one of [61, 60, 48, None]"),
    ({"type": "sentencepiece", "model_type": "bpe"}, "config units: 'vocab_size' is a required property"),
    ({"type": "sentencepiece", "model_type": "bpe", "vocab_size": 50, "phone_set": 60},
     "config units.phone_set: not a setting of sentencepiece"),
])
def test_each_type_of_units_needs_its_own_keys_and_no_others(units, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        UnitsConfig.from_dict(units)
    with pytest.raises(ValueError, match="units.phone_set: needed by units of type phones"):
        UnitsConfig(type="phones")  # built in Python, without the schema


def test_a_section_given_in_part_is_completed_and_checked():
    training = TrainingConfig.from_dict({"num_epochs": 2, "max_duration": 5, "lr": 0.01})
    assert (training.lr, training.optimizer) == (0.01, TrainingConfig.default("optimizer"))
    assert TransducerConfig.from_dict({}).prune_range == TransducerConfig.default("prune_range") == 5
    with pytest.raises(ValueError, match=r"config model.num_layers: 0 is less than the minimum of 1"):
        ModelConfig.from_dict({"num_layers": 0, "hidden_size": 8})
    with pytest.raises(ValueError, match="config training: 'max_duration' is a required property"):
        TrainingConfig.from_dict({"num_epochs": 2})
    with pytest.raises(ValueError, match=r"config features: .*'typ' was unexpected"):
        FeatureConfig.from_dict({"type": "fbank", "typ": "mfcc"})


@pytest.mark.parametrize("recipe", ["timit", "librispeech"])
def test_flags_read_back_what_the_rules_write(recipe):
    """Each section of a recipe's config, as the rules write it (to_flags), parses back into the same dataclass."""
    config = load_config_file(ROOT / "recipes" / recipe / "config.yaml")
    for section in (UnitsConfig, FeatureConfig, ModelConfig, TransducerConfig, TrainingConfig):
        parser = argparse.ArgumentParser()
        add_flags(parser, section)
        values = asdict(getattr(config, section.KEY))
        assert from_flags(parser.parse_args(to_flags(section.KEY, values)), section) == getattr(config, section.KEY)


def test_flags_left_out_take_the_schema_defaults_and_help_shows_them(capsys):
    parser = argparse.ArgumentParser()
    add_flags(parser, TrainingConfig)
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    assert "--training.lr LR" in capsys.readouterr().out
    args = parser.parse_args(["--training.num_epochs", "3", "--training.max_duration", "20", "--training.amp", "true"])
    assert from_flags(args, TrainingConfig) == TrainingConfig.from_dict({"num_epochs": 3, "max_duration": 20.0,
                                                                         "amp": True})
    with pytest.raises(SystemExit):
        parser.parse_args(["--training.max_duration", "20"])  # num_epochs has no default: required


def test_the_choices_are_the_registered_encoders_and_searches():
    """The config sits below the models and searches, so it names their choices itself: they must agree."""
    assert typing.get_args(typing.get_type_hints(ModelConfig)["encoder"]) == tuple(ENCODERS)
    decoding = typing.get_type_hints(DecodingConfig)
    for model_type in MODEL_TYPES:  # the decoding section has a key of each model type, its searches
        assert typing.get_args(typing.get_args(decoding[model_type])[0]) == search_methods(model_type)
