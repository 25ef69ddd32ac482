"""The recipe config as typed, frozen dataclasses, one per section; defaults come from the schema alone.

``asrkit/workflow/schemas/config.schema.yaml`` is the one place a setting is described and given its default.
A section is validated against its part of the schema, which fills in the defaults of the keys left out (so
a section given in part, as tests and stage commands do, is complete), then becomes its dataclass. A key
that the schema neither requires nor defaults (e.g. ``units.phone_set`` of sentencepiece units) is None.

Stage commands take a section as typed flags, ``--<section>.<key> value`` (:func:`add_flags`, read back by
:func:`from_flags`), with the schema's description, type, choices and default in ``--help``; the recipe's
rules write them with :func:`to_flags`. Checkpoints store sections as plain dicts (``dataclasses.asdict``).
"""

import argparse
import copy
import functools
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterable, List, Mapping, Optional, Tuple, Type, TypeVar, Union

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "workflow" / "schemas" / "config.schema.yaml"

S = TypeVar("S")


@functools.lru_cache(maxsize=None)
def schema() -> Dict[str, Any]:
    """The config schema, parsed once."""
    return yaml.safe_load(SCHEMA_PATH.read_text())


def _fill_defaults(validator_class):
    """A validator class that also sets each absent property that has a default (jsonschema's FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, property_schemas, instance, subschema):
        if isinstance(instance, dict):
            for name, property_schema in property_schemas.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, property_schemas, instance, subschema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


DefaultingValidator = _fill_defaults(jsonschema.Draft202012Validator)


def with_defaults(values: Mapping[str, Any], section_schema: Mapping[str, Any], where: str) -> Dict[str, Any]:
    """A validated copy of ``values`` with the schema's defaults filled in; a ValueError names the bad key."""
    filled = copy.deepcopy(dict(values))
    error = jsonschema.exceptions.best_match(DefaultingValidator(section_schema).iter_errors(filled))
    if error is not None:
        key = ".".join(map(str, [where, *error.absolute_path] if where else error.absolute_path))
        raise ValueError(f"config {key or 'file'}: {error.message}")
    return filled


def properties(section_schema: Mapping[str, Any]) -> Dict[str, Dict[str, Any]]:
    """A section's keys and their schemas. A section that is one of several shapes (``units``) has the keys of
    all of them; a key that is a constant in each shape (``units.type``) takes the constants as its choices."""
    merged: Dict[str, Dict[str, Any]] = {}
    for shape in section_schema.get("oneOf", [section_schema]):
        for name, prop in shape.get("properties", {}).items():
            if "const" in prop:
                prop = {"enum": [*merged.get(name, {}).get("enum", []), prop["const"]]}
            merged[name] = {**merged.get(name, {}), **prop}
    return merged


class Section:
    """Base of the sections' dataclasses: ``KEY`` names the section in the config (and its flags)."""

    KEY: ClassVar[str]

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        return schema()["properties"][cls.KEY]

    @classmethod
    def default(cls, key: str) -> Any:
        """The schema's default of one of the section's keys."""
        return properties(cls.schema())[key]["default"]

    @classmethod
    def from_dict(cls: Type[S], values: Optional[Mapping[str, Any]] = None) -> S:
        """The section from (some of) its keys: validated, the rest set to the schema's defaults."""
        return _build(cls, with_defaults(values or {}, cls.schema(), cls.KEY))


def _build(cls: Type[S], values: Mapping[str, Any]) -> S:
    """A dataclass from validated values: nested sections built in turn, lists as tuples, absent keys None."""
    hints = typing.get_type_hints(cls)
    built = {}
    for f in fields(cls):
        value = values.get(f.name)
        section = _section_type(hints[f.name])
        if section is not None:
            value = _build(section, with_defaults(value or {}, section.schema(), section.KEY))
        elif isinstance(value, list):
            value = tuple(value)
        built[f.name] = value
    return cls(**built)


def _section_type(hint: Any) -> Optional[Type[Section]]:
    return hint if isinstance(hint, type) and issubclass(hint, Section) else None


@dataclass(frozen=True)
class CorpusConfig(Section):
    KEY: ClassVar[str] = "corpus"
    parts: Optional[Dict[str, str]]


@dataclass(frozen=True)
class DemoCorpusConfig(Section):
    KEY: ClassVar[str] = "demo_corpus"
    num_train_speakers: Optional[int]
    num_dev_speakers: Optional[int]
    num_test_speakers: Optional[int]
    utterances_per_speaker: Optional[int]
    heldout_voices: Tuple[str, ...]
    num_heldout_speakers: int


@dataclass(frozen=True)
class UnitsConfig(Section):
    KEY: ClassVar[str] = "units"
    type: str
    phone_set: Optional[int]  # phones
    model_type: Optional[str]  # sentencepiece
    vocab_size: Optional[int]  # sentencepiece


@dataclass(frozen=True)
class DataConfig(Section):
    KEY: ClassVar[str] = "data"
    require_standard_sizes: bool


@dataclass(frozen=True)
class FeatureConfig(Section):
    KEY: ClassVar[str] = "features"
    #: how the features are computed, not what they are (no feature depends on it): left out of what the
    #: feature statistics and training read, so that changing it reruns no more than the feature jobs
    COMPUTE_ONLY_KEYS: ClassVar[Tuple[str, ...]] = ("num_shards",)
    type: str
    num_mel_bins: int
    num_ceps: int
    use_energy: bool
    deltas: bool
    num_shards: int


@dataclass(frozen=True)
class AugmentationConfig(Section):
    KEY: ClassVar[str] = "augmentation"
    speed_perturb: Tuple[float, ...]
    reverb: int
    noise: int
    noise_snr: Tuple[float, ...]

    def __post_init__(self):
        low, high = self.noise_snr
        if low > high:
            raise ValueError(f"config augmentation.noise_snr: [{low}, {high}] is not a range [low, high]")

    @property
    def enabled(self) -> bool:
        """Whether any copy is made: off, the train split is computed as dev and test are."""
        return bool(self.speed_perturb) or self.reverb > 0 or self.noise > 0


@dataclass(frozen=True)
class ModelConfig(Section):
    KEY: ClassVar[str] = "model"
    encoder: str
    num_layers: int
    hidden_size: int
    stack_frames: int
    dropout: float
    peephole: bool


@dataclass(frozen=True)
class TransducerConfig(Section):
    KEY: ClassVar[str] = "transducer"
    #: the sizes of the prediction network: all that the phone LM (its pretraining) reads of the section
    DECODER_KEYS: ClassVar[Tuple[str, ...]] = ("decoder_embedding_dim", "decoder_hidden_size", "decoder_num_layers")
    decoder_embedding_dim: int
    decoder_hidden_size: int
    decoder_num_layers: int
    joiner_dim: int
    loss: str
    prune_range: int
    lm_scale: float
    am_scale: float
    simple_loss_scale: float
    warmup_batches: int
    pretrained_warmup: str
    ctc_loss_scale: float


@dataclass(frozen=True)
class PhoneLmConfig(Section):
    KEY: ClassVar[str] = "phone_lm"
    num_epochs: int
    batch_size: int
    optimizer: str
    lr: float
    momentum: float
    init: str
    schedule: str
    patience: int
    weight_noise_std: float


@dataclass(frozen=True)
class NgramLmConfig(Section):
    KEY: ClassVar[str] = "ngram_lm"
    order: int


@dataclass(frozen=True)
class TrainingConfig(Section):
    KEY: ClassVar[str] = "training"
    #: how a run trains, not what it trains (resuming is exact, so they cannot change the model): left out of
    #: the training rule's params and of the checkpoints' fingerprint, so that changing them neither retrains
    #: nor discards checkpoints
    #: (num_threads: on the CPU the thread count changes the order of float sums, so the last bits; a run resumed
    #: on other cores continues, as close as that)
    RUN_ONLY_KEYS: ClassVar[Tuple[str, ...]] = ("num_workers", "checkpoint_every_batches", "keep_last_checkpoints",
                                                "num_threads")
    num_epochs: int
    max_duration: float
    schedule: str
    patience: int
    init: str
    optimizer: str
    lr: float
    momentum: float
    lr_decay: float
    grad_clip: float
    weight_noise_std: float
    weight_noise_start_epoch: int
    lr_schedule: str
    lr_anneal_factor: float
    lr_anneal_patience: int
    spec_augment: bool
    spec_augment_time_warp: int
    spec_augment_freq_masks: int
    spec_augment_freq_width: int
    spec_augment_time_masks: int
    spec_augment_time_width: int
    keep_last_checkpoints: int
    checkpoint_every_batches: int
    num_workers: int
    num_threads: Optional[int]
    num_processes: int
    accumulate_batches: int
    amp: Union[bool, str]
    max_infeasible_fraction: float

    @property
    def amp_dtype(self) -> Optional[str]:
        """The autocast dtype that ``amp`` asks for: None (float32), "float16" (also ``amp: true``) or
        "bfloat16"."""
        return "float16" if self.amp is True else self.amp or None


@dataclass(frozen=True)
class DecodingConfig(Section):
    KEY: ClassVar[str] = "decoding"
    ctc: Tuple[str, ...]
    transducer: Tuple[str, ...]
    beams: Tuple[int, ...]
    avg: int
    splits: Tuple[str, ...]
    lm: Tuple[str, ...]
    lm_weight: Tuple[float, ...]
    lm_bonus: Tuple[float, ...]


@dataclass(frozen=True)
class Config:
    """A whole recipe config (``recipes/<recipe>/config.yaml``)."""

    recipe: str
    recipe_dir: Optional[str]
    corpus_dir: Optional[str]
    corpus: CorpusConfig
    seed: int
    models: Tuple[str, ...]
    device: str
    num_jobs: int
    demo_corpus: DemoCorpusConfig
    units: UnitsConfig
    data: DataConfig
    features: FeatureConfig
    augmentation: AugmentationConfig
    model: ModelConfig
    transducer: TransducerConfig
    phone_lm: PhoneLmConfig
    ngram_lm: NgramLmConfig
    training: TrainingConfig
    decoding: DecodingConfig


def load_config(values: Mapping[str, Any]) -> Config:
    """A whole config (e.g. a parsed config.yaml), validated (:func:`check_across_keys` too), with the schema's
    defaults."""
    check_across_keys(values)
    return _build(Config, with_defaults(values, schema(), ""))


def check_across_keys(values: Mapping[str, Any]) -> None:
    """The checks of a whole config (schema-valid) that concern several keys, which the schema cannot express; a
    ValueError names the keys. The Snakefile runs them before any stage."""
    training = TrainingConfig.from_dict(values["training"])
    decoding = DecodingConfig.from_dict(values["decoding"])
    if decoding.avg > training.keep_last_checkpoints:
        raise ValueError(f"config decoding.avg {decoding.avg} is more than training.keep_last_checkpoints "
                         f"{training.keep_last_checkpoints}: decoding averages the last decoding.avg epoch "
                         f"checkpoints and training keeps only keep_last_checkpoints of them (raise "
                         f"training.keep_last_checkpoints or lower decoding.avg)")
    if "heldout" in decoding.splits and not has_heldout_set(values):
        raise ValueError("decoding.splits: 'heldout' is the demo corpus's held-out test set, and there is none: set "
                         "demo_corpus.heldout_voices (with corpus_dir: null), or leave heldout out of decoding.splits")


def has_heldout_set(values: Mapping[str, Any]) -> bool:
    """Whether a config's corpus has the held-out set (split heldout): a demo corpus that holds voices out."""
    return values.get("corpus_dir") is None and bool(values.get("demo_corpus", {}).get("heldout_voices"))


def load_config_file(path: Path) -> Config:
    return load_config(yaml.safe_load(Path(path).read_text()))


# ------------------------------------------------------------------------------------------------------ flags


def _flag_type(hint: Any) -> Tuple[Any, bool]:
    """(argparse type of one value, whether the flag takes a list) for a field's annotation."""
    if hint == Union[bool, str]:  # true/false or a word (training.amp)
        return _parse_bool_or_word, False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # Optional[X]
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:
        return typing.get_args(hint)[0], True
    return (_parse_bool if hint is bool else hint), False


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _parse_bool_or_word(text: str) -> Union[bool, str]:
    return _parse_bool(text) if text.lower() in ("true", "false") else text


def _flag_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def add_flags(parser: argparse.ArgumentParser, section: Type[Section], keys: Optional[Iterable[str]] = None,
              leave_out: Iterable[str] = ()) -> None:
    """Add ``--<section>.<key>`` flags for a section's keys (all, or ``keys``; not ``leave_out``), described by
    the schema.

    A flag left out takes the schema's default; one without a default is required if the schema requires it
    (and is None if not).
    """
    section_schema = section.schema()
    props = properties(section_schema)
    hints = typing.get_type_hints(section)
    group = parser.add_argument_group(f"config section {section.KEY}",
                                      " ".join(section_schema.get("description", "").split()) or None)
    for f in fields(section):
        if (keys is None or f.name in keys) and f.name not in leave_out:
            _add_flag(group, f"{section.KEY}.{f.name}", props[f.name], hints[f.name],
                      f.name in section_schema.get("required", []))


def add_top_level_flag(parser: argparse.ArgumentParser, key: str, required: Optional[bool] = None) -> None:
    """Add ``--<key>`` for a key outside the sections (e.g. ``seed``), described by the schema; required if the
    schema requires the key, unless ``required`` says otherwise (a command that reads it only sometimes)."""
    _add_flag(parser, key, schema()["properties"][key], typing.get_type_hints(Config)[key],
              key in schema()["required"] if required is None else required)


def _add_flag(parser, name: str, prop: Mapping[str, Any], hint: Any, required: bool) -> None:
    value_type, is_list = _flag_type(hint)
    choices = prop.get("enum", prop.get("items", {}).get("enum"))
    help_text = " ".join(prop.get("description", "").split())
    if "default" in prop:
        default = prop["default"]
        help_text += f" (default: {' '.join(map(_flag_text, default)) if is_list else _flag_text(default)})"
    # a list that the schema lets be empty (e.g. augmentation.speed_perturb: []) is written as the bare flag
    nargs = ("+" if prop.get("minItems", 0) > 0 else "*") if is_list else None
    parser.add_argument(f"--{name}", dest=name, type=value_type, nargs=nargs, choices=choices,
                        default=prop.get("default"), help=help_text or None,
                        required=required and "default" not in prop,
                        metavar=name.rpartition(".")[2].upper() if choices is None else None)


def from_flags(args: argparse.Namespace, section: Type[S]) -> S:
    """The section from the parsed flags of :func:`add_flags`; keys without a flag take their defaults."""
    given = {f.name: getattr(args, f"{section.KEY}.{f.name}", None) for f in fields(section)}
    return section.from_dict({key: value for key, value in given.items() if value is not None})


def to_flags(section: Optional[str], values: Mapping[str, Any]) -> List[str]:
    """Command-line arguments that :func:`add_flags` reads back into ``values`` (some keys of a config
    section), or, for section None, that :func:`add_top_level_flag` reads (keys outside the sections)."""
    args: List[str] = []
    for key, value in sorted(values.items()):
        if value is None:
            continue
        args.append(f"--{section}.{key}" if section else f"--{key}")
        args.extend(map(_flag_text, value) if isinstance(value, (list, tuple)) else [_flag_text(value)])
    return args

