"""The typed config: one dataclass field per schema key, every default from the schema, flags that round-trip."""

import argparse
import typing
from dataclasses import MISSING, asdict, fields
from pathlib import Path

import pytest

from asrkit.config import (Config, FeatureConfig, ModelConfig, Section, TrainingConfig, TransducerConfig, UnitsConfig,
                           add_flags, from_flags, load_config_file, properties, schema, to_flags)

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = [typing.get_type_hints(Config)[f.name] for f in fields(Config)
            if isinstance(typing.get_type_hints(Config)[f.name], type)
            and issubclass(typing.get_type_hints(Config)[f.name], Section)]
#: the keys without a default that each section needs, the least a section can be given
REQUIRED = {"units": {"type": "phones", "phone_set": 60}, "features": {"type": "fbank"},
            "model": {"num_layers": 1, "hidden_size": 8}, "training": {"num_epochs": 1, "max_duration": 10},
            "decoding": {"ctc": ["greedy"], "transducer": ["greedy"], "beams": [4]}}


def test_every_schema_key_has_a_field_and_every_field_a_key():
    assert [f.name for f in fields(Config)] == list(schema()["properties"])
    assert {s.KEY for s in SECTIONS} == {k for k, v in schema()["properties"].items()
                                         if v.get("type") == "object" or "oneOf" in v}
    for section in SECTIONS:
        assert [f.name for f in fields(section)] == list(properties(section.schema())), section.KEY


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.KEY)
def test_defaults_come_from_the_schema_alone(section):
    assert all(f.default is MISSING and f.default_factory is MISSING for f in fields(section)), \
        f"{section.__name__} repeats a default of the schema"
    given = REQUIRED.get(section.KEY, {})
    built = asdict(section.from_dict(given))
    for key, prop in properties(section.schema()).items():
        expected = given.get(key, prop.get("default"))
        assert built[key] == (tuple(expected) if isinstance(expected, list) else expected), f"{section.KEY}.{key}"


def test_a_section_given_in_part_is_completed_and_checked():
    training = TrainingConfig.from_dict({"num_epochs": 2, "max_duration": 5, "lr": 0.01})
    assert (training.lr, training.optimizer) == (0.01, schema()["properties"]["training"]["properties"]["optimizer"]
                                                 ["default"])
    assert TransducerConfig.from_dict({}).prune_range == TransducerConfig.default("prune_range")
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
