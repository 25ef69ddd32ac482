"""The recipe config: every setting declared once, here, as a field of a frozen dataclass, one per section.

A field gives the setting's type, default, bounds and description; a field without a default is required. From
these declarations come
- the JSON schema (:func:`schema`), which Snakemake validates the recipe's config against before any stage runs
  (``python -m asrkit.config`` prints it, e.g. for an editor);
- a section's values with their defaults (:meth:`Section.from_dict`), checked against the same schema, so that an
  error reads the same from a stage command as from a recipe run and names the key;
- the stage commands' typed flags, ``--<section>.<key> value`` (:func:`add_flags`, read back by
  :func:`from_flags`), with the description, type, choices and default in ``--help``; the recipe's rules write
  them with :func:`to_flags`.

The dataclasses are pydantic's: pydantic derives the schema from the fields. A key left unset (None, e.g.
``units.phone_set`` of sentencepiece units) has no default in the schema: it stays absent from the config that
Snakemake completes. Checkpoints store sections as plain dicts (``dataclasses.asdict``).
"""

import argparse
import dataclasses
import functools
import json
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Dict, Iterable, List, Literal, Mapping, Optional, Tuple, Type, TypeVar

import jsonschema
import pydantic
import pydantic.dataclasses
import yaml
from pydantic import Field

from asrkit.io import atomic_output

S = TypeVar("S")

#: a setting that says how a stage runs, not what it makes (``Field(..., json_schema_extra=RUN_ONLY)``): left out
#: of the params of the rules that read the section and of the checkpoints' fingerprint, so that changing it
#: reruns nothing and discards no checkpoint (:meth:`Section.run_only_keys`)
RUN_ONLY = {"run_only": True}


def section(cls=None, **config: Any):
    """Declare a config section: a frozen pydantic dataclass that refuses unknown keys (``config``: more of
    pydantic's ``ConfigDict``)."""
    decorate = pydantic.dataclasses.dataclass(frozen=True, kw_only=True,
                                              config=pydantic.ConfigDict(extra="forbid", **config))
    return decorate if cls is None else decorate(cls)


class Section:
    """Base of the sections' dataclasses: ``KEY`` names the section in the config (and its flags)."""

    KEY: ClassVar[str]

    @classmethod
    def schema(cls) -> Dict[str, Any]:
        """The section's part of the JSON schema."""
        return derived_schema(cls)

    @classmethod
    def default(cls, key: str) -> Any:
        """The default of one of the section's keys."""
        return cls.__pydantic_fields__[key].get_default(call_default_factory=True)

    @classmethod
    def run_only_keys(cls) -> Tuple[str, ...]:
        """The keys declared :data:`RUN_ONLY`."""
        return tuple(name for name, info in cls.__pydantic_fields__.items() if info.json_schema_extra == RUN_ONLY)

    @classmethod
    def from_dict(cls: Type[S], values: Optional[Mapping[str, Any]] = None) -> S:
        """The section from (some of) its keys: checked against its schema, the rest set to their defaults."""
        values = values or {}
        check(values, cls.schema(), cls.KEY)
        return build(cls, values)


# ---------------------------------------------------------------------------------------------------- sections


@section
class CorpusParts:
    """the corpus folder of each split, e.g. LibriSpeech's train-clean-100, dev-clean, test-clean"""

    train: str = Field(min_length=1)
    dev: str = Field(min_length=1)
    test: str = Field(min_length=1)


@section
class CorpusConfig(Section):
    """how the recipe's prepare step reads the corpus (recipes that need it say so in their config)"""

    KEY: ClassVar[str] = "corpus"
    parts: Optional[CorpusParts] = Field(None)


@section
class DemoCorpusConfig(Section):
    """the synthetic demo corpus (corpus_dir null): its speakers, each a TTS voice"""

    KEY: ClassVar[str] = "demo_corpus"
    num_train_speakers: Optional[int] = Field(None, ge=1)
    num_dev_speakers: Optional[int] = Field(None, ge=1, le=50)
    num_test_speakers: Optional[int] = Field(None, ge=1, le=24)
    utterances_per_speaker: Optional[int] = Field(None, ge=1, description="LibriSpeech layout (TIMIT's is 10)")
    heldout_voices: Tuple[str, ...] = Field((), json_schema_extra={"uniqueItems": True}, description="""
        TIMIT layout: TTS voices (asrkit/demo/tts/voices.py, VOICES) that no train, dev or test speaker is given;
        num_heldout_speakers speakers of theirs read a test set of its own, split heldout (decode it with
        decoding.splits), to measure a model on voices it never heard. [] holds none out""")
    num_heldout_speakers: int = Field(8, ge=1, description="""
        TIMIT layout, with heldout_voices; the held-out set's speakers (8 utterances each, SA left out)""")


#: the keys of each type of units: a type needs its own and takes no other type's
UNITS_KEYS = {"phones": ("phone_set",), "sentencepiece": ("model_type", "vocab_size")}


def _units_shapes(schema: Dict[str, Any]) -> None:
    schema["allOf"] = [{"if": {"properties": {"type": {"const": unit_type}}},
                        "then": {"required": list(keys),
                                 "properties": {other: {"type": "null", "errorMessage": f"not a setting of {unit_type}"}
                                                for other_type, other_keys in UNITS_KEYS.items()
                                                if other_type != unit_type for other in other_keys}}}
                       for unit_type, keys in UNITS_KEYS.items()]


@section(json_schema_extra=_units_shapes)
class UnitsConfig(Section):
    """what the models output (stage 3). phones: TIMIT's phone alignments, scored as PER on 39 folded phones.
    sentencepiece: pieces trained on the training transcripts, scored as WER and CER."""

    KEY: ClassVar[str] = "units"
    type: Literal["phones", "sentencepiece"] = Field()
    phone_set: Optional[Literal[61, 60, 48]] = Field(None, description="""
        phones; the labels the models are trained on, made from the manifests' phone alignments, which keep all
        of TIMIT's 61 (changing this needs no new manifests; scoring always folds to 39 and deletes q from
        reference and hypothesis). 61: every TIMIT label, as Graves, Mohamed & Hinton 2013 train. 60: without the
        glottal stop q, as Kaldi's egs/timit (q is rare, inconsistently transcribed, and the 39-phone scoring
        deletes it anyway). 48: Lee & Hon's 1989 training set (the 60 folded, as Kaldi's map).""")
    model_type: Optional[Literal["unigram", "bpe", "char"]] = Field(None, description="sentencepiece")
    vocab_size: Optional[int] = Field(None, ge=3, description="""
        sentencepiece; at most this many tokens, blank and unk included (a small corpus may give fewer)""")

    def __post_init__(self):
        for unit_type, keys in UNITS_KEYS.items():
            for key in keys:
                if (getattr(self, key) is None) == (unit_type == self.type):
                    raise ValueError(f"config units.{key}: {'needed' if unit_type == self.type else 'not taken'} "
                                     f"by units of type {self.type}")


@section
class DataConfig(Section):
    """TIMIT's corpus checks"""

    KEY: ClassVar[str] = "data"
    require_standard_sizes: bool = Field(True, description="""
        on a configured corpus, stop unless the sets have the published sizes (full LDC TIMIT)""")


@section
class FeatureConfig(Section):
    """the acoustic features (stage 2, kaldifeat), normalised with the training set's statistics"""

    KEY: ClassVar[str] = "features"
    type: Literal["fbank", "mfcc"] = Field()
    num_mel_bins: int = Field(40, ge=1)
    num_ceps: int = Field(13, ge=1)
    use_energy: bool = Field(True)
    deltas: bool = Field(True, description="append deltas and delta-deltas (x3 dims)")
    num_shards: int = Field(1, ge=1, json_schema_extra=RUN_ONLY, description="""
        jobs computing each split's features, merged afterwards; the features are the same for any number. 1
        suits one machine (a job already uses num_jobs processes); more spread a split over a cluster's nodes""")


@section
class AugmentationConfig(Section):
    """copies of the training utterances made at the feature stage (asrkit/data/augmentation.py), each a new cut
    of the train split with the original's transcript, its random choices drawn from seed and its cut ID; dev and
    test are never augmented, and the normalisation statistics are those of the original training cuts. Off by
    default; a change recomputes the train features and retrains the models"""

    KEY: ClassVar[str] = "augmentation"
    speed_perturb: Tuple[typing.Annotated[float, Field(ge=0.5, le=2, json_schema_extra={"not": {"const": 1}})],
                         ...] = Field((), json_schema_extra={"uniqueItems": True}, description="""
        speed factors besides 1, one copy of each utterance per factor, named <cut>_sp<factor> (lhotse's
        perturb_speed: tempo and pitch change together, alignments are rescaled); Kaldi's 3-way perturbation is
        [0.9, 1.1]""")
    reverb: int = Field(0, ge=0, description="""
        reverberated copies of each utterance (<cut>_rvb<i>), each in its own synthetic room: a direct path and an
        exponentially decaying noise tail, T60 uniform in 0.2-0.8 s, direct-to-reverberant ratio uniform in 0-12
        dB; the copy keeps the original's power""")
    noise: int = Field(0, ge=0, description="""
        copies of each utterance with babble noise (<cut>_noise<i>): three talkers, each a chain of other training
        utterances chosen from the whole train split, at an SNR drawn from noise_snr""")
    noise_snr: Tuple[float, ...] = Field((10, 20), min_length=2, max_length=2, description="""
        the range [low, high] in dB that each noise copy's signal-to-noise ratio is drawn from""")

    def __post_init__(self):
        low, high = self.noise_snr
        if low > high:
            raise ValueError(f"config augmentation.noise_snr: [{low}, {high}] is not a range [low, high]")

    @property
    def enabled(self) -> bool:
        """Whether any copy is made: off, the train split is computed as dev and test are."""
        return bool(self.speed_perturb) or self.reverb > 0 or self.noise > 0


@section
class ModelConfig(Section):
    """the encoder, shared by the CTC model and the transducer"""

    KEY: ClassVar[str] = "model"
    encoder: Literal["blstm", "tanh_rnn", "lstm"] = Field("blstm", description="""
        the encoder, by its name in asrkit/model/registry.py's ENCODERS: blstm, the deep bidirectional LSTM;
        tanh_rnn, a deep bidirectional RNN of tanh units; lstm, a deep unidirectional LSTM (peephole: blstm and
        lstm)""")
    num_layers: int = Field(ge=1)
    hidden_size: int = Field(ge=1, description="LSTM cells per direction")
    stack_frames: int = Field(1, ge=1, le=8, description="""
        concatenate k frames, k x fewer steps (at most 8: with 10 ms frames, 80 ms per step is already about a
        phone's length, and an utterance needs a step per phone)""")
    dropout: float = Field(0.0, ge=0, le=1)
    peephole: bool = Field(False, description="Graves's LSTM with peephole connections")


@section
class TransducerConfig(Section):
    """the prediction network and joiner sizes, and the pruned RNN-T loss (k2 or fast_rnnt)"""

    KEY: ClassVar[str] = "transducer"
    #: the sizes of the prediction network: all that the phone LM (its pretraining) reads of the section
    DECODER_KEYS: ClassVar[Tuple[str, ...]] = ("decoder_embedding_dim", "decoder_hidden_size", "decoder_num_layers")
    decoder_embedding_dim: int = Field(250, ge=1)
    decoder_hidden_size: int = Field(250, ge=1)
    decoder_num_layers: int = Field(1, ge=1)
    joiner_dim: int = Field(250, ge=1)
    loss: Literal["pruned", "full"] = Field("pruned")
    prune_range: int = Field(5, ge=1)
    lm_scale: float = Field(0.25, ge=0)
    am_scale: float = Field(0.0, ge=0)
    simple_loss_scale: float = Field(0.5, ge=0)
    warmup_batches: int = Field(500, ge=0, description="""
        pruned loss off for this many batches, then at 0.1 for as many, then at 1""")
    pretrained_warmup: Literal["freeze", "skip", "train"] = Field("freeze", description="""
        the warm-up of a transducer started from pretrained parts (PRETRANS; the pruned loss only): freeze, the
        pretrained encoder and prediction network get no gradient during the first warmup_batches batches (pruned
        loss off), while the randomly initialised simple projections learn to read them; skip, no warm-up (the
        pruned loss at 1 from the start); train, the warm-up of a transducer trained from scratch, which trains the
        pretrained parts through the random simple projections (README, "What to expect")""")
    ctc_loss_scale: float = Field(0.0, ge=0, description="""
        > 0 adds a CTC output layer on the encoder and trains with the transducer loss + this x its CTC loss (an
        auxiliary loss; decoding and export ignore the layer); 0 has no such layer. PRETRANS starts the layer from
        the CTC model's output layer""")


@section
class PhoneLmConfig(Section):
    """pretraining of the prediction network as a language model of the tokens (for pretrained_transducer; the
    section keeps the paper's name, phone LM)"""

    KEY: ClassVar[str] = "phone_lm"
    num_epochs: int = Field(10, ge=1, description="""
        epochs (schedule fixed), or the most epochs of each phase (schedule paper)""")
    batch_size: int = Field(32, ge=1, description="transcripts per update")
    optimizer: Literal["sgd", "adam"] = Field("adam")
    lr: float = Field(0.001, gt=0, description="""
        the loss is the mean over the batch's predicted tokens (its transcripts' tokens and their ends); the
        paper's SGD steps 1e-4 per transcript, so SGD over batch_size transcripts of ~30 tokens takes about 1e-4 x
        batch_size x 30""")
    momentum: float = Field(0.9, ge=0, le=1, description="optimizer sgd")
    init: Literal["torch", "uniform"] = Field("torch", description="""
        initial weights: torch, each layer's own default; uniform, every weight uniform in [-0.1, 0.1] (the paper;
        the start symbol's embedding stays zero either way)""")
    schedule: Literal["fixed", "paper"] = Field("fixed", description="""
        fixed: num_epochs epochs without noise. paper (Graves et al. 2013): train without noise until dev
        perplexity has not improved for patience epochs, then restart from the best of them with a fresh optimiser
        and Gaussian weight noise (weight_noise_std, one draw per transcript) until it stalls again; the model is
        the one of lowest dev perplexity (highest log-probability) of the noise phase""")
    patience: int = Field(3, ge=1, description="""
        schedule paper; a phase ends after this many epochs without a better dev perplexity""")
    weight_noise_std: float = Field(0.0, ge=0, description="""
        schedule paper; Gaussian weight noise of the second phase (paper 0.075; 0 ends after the first)""")


@section
class NgramLmConfig(Section):
    """the n-gram token LM of stage 5 (exp/ngram_lm/<order>gram.arpa), estimated from the training transcripts
    with interpolated Witten-Bell smoothing; decoding.lm ngram decodes with it"""

    KEY: ClassVar[str] = "ngram_lm"
    order: int = Field(2, ge=2, description="""
        n-gram order (2, a bigram, as Kaldi's TIMIT recipe; kenlm reads no unigram LM)""")


@section
class TrainingConfig(Section):
    """how the models are trained (stages 4-7); settings marked run-only change how a run trains, not what it
    trains (resuming is exact, so they cannot change the model): changing them neither retrains nor discards
    checkpoints"""

    KEY: ClassVar[str] = "training"
    num_epochs: int = Field(ge=1, description="""
        schedule fixed: the epochs trained. schedule paper: the most epochs of each phase (so at most twice this
        many in all)""")
    max_duration: float = Field(gt=0, description="seconds of audio per batch")
    schedule: Literal["fixed", "paper"] = Field("fixed", description="""
        fixed: num_epochs epochs, weight noise (if weight_noise_std > 0) from weight_noise_start_epoch on, the
        model of lowest dev error rate kept. paper (Graves et al. 2013): train without weight noise until dev loss
        (minus log-probability) has not improved for patience epochs; restart from the epoch of lowest dev loss
        with a fresh optimiser (no momentum carried over) and weight noise; stop when the dev error rate has not
        improved for patience epochs and keep the model of lowest dev error rate of the noise phase. A model
        started from pretrained parts (PRETRANS) trains with noise from the start; with weight_noise_std 0 the
        noiseless phase alone runs (the paper's CTC-3L-500H-TANH)""")
    patience: int = Field(5, ge=1, description="""
        schedule paper; a phase ends after this many epochs without a better dev value""")
    init: Literal["torch", "uniform"] = Field("torch", description="""
        initial weights: torch, each layer's own default; uniform, every weight uniform in [-0.1, 0.1] (the
        paper). Pretrained parts (PRETRANS) replace either""")
    optimizer: Literal["sgd", "adam"] = Field("adam")
    lr: float = Field(0.001, gt=0)
    momentum: float = Field(0.9, ge=0, le=1)
    lr_decay: float = Field(1.0, gt=0, le=1, description="lr factor per epoch")
    grad_clip: float = Field(5.0, ge=0, description="""
        clip the gradient's norm to this; 0 does not clip (the paper). Either way a step whose gradient is not
        finite is skipped, logged and counted in the epoch's skipped_steps""")
    weight_noise_std: float = Field(0.0, ge=0, description="""
        Gaussian weight noise (paper 0.075), drawn afresh for each training utterance (see
        asrkit/training/weight_noise.py)""")
    weight_noise_start_epoch: int = Field(1, ge=1, description="""
        schedule fixed; from this epoch on, train with weight noise, restarting from this run's best.pt (if an
        earlier epoch wrote one) with a fresh optimiser""")
    lr_schedule: Literal["constant", "plateau"] = Field("constant", description="""
        constant: the lr changes only by lr_decay. plateau: also multiplied by lr_anneal_factor after
        lr_anneal_patience epochs without a lower dev loss (torch's ReduceLROnPlateau; NewBob-like with factor 0.5
        and patience 1). Both apply when both are set: lr_decay every epoch, the factor at each plateau. The paper
        schedule's restart starts both afresh with its fresh optimiser""")
    lr_anneal_factor: float = Field(0.5, gt=0, lt=1, description="""
        lr_schedule plateau; the lr's factor at a plateau""")
    lr_anneal_patience: int = Field(1, ge=1, description="""
        lr_schedule plateau; the lr is annealed after this many epochs in a row without a lower dev loss""")
    spec_augment: bool = Field(False, description="""
        SpecAugment (Park et al. 2019) on training batches (never dev, test or decoding): time warp of the static
        features, then frequency masks over the same bands of the static, delta and delta-delta blocks and time
        masks over whole frames, masked to the mean; drawn per utterance from the seed, epoch and cut ID
        (asrkit/data/spec_augment.py)""")
    spec_augment_time_warp: int = Field(5, ge=0, description="""
        spec_augment; the most frames the warp moves its centre by, 0 for none (ESPnet's and SpeechBrain's 5)""")
    spec_augment_freq_masks: int = Field(2, ge=0, description="spec_augment; frequency masks per utterance")
    spec_augment_freq_width: int = Field(7, ge=1, description="""
        spec_augment; the widest frequency mask, in static feature dims (Park et al.'s 15 of 80 bands, SM policy,
        scaled to 40)""")
    spec_augment_time_masks: int = Field(2, ge=0, description="spec_augment; time masks per utterance")
    spec_augment_time_width: int = Field(40, ge=1, description="""
        spec_augment; the longest time mask, in frames (ESPnet's 40 of 10 ms)""")
    keep_last_checkpoints: int = Field(3, ge=1, json_schema_extra=RUN_ONLY, description="""
        end-of-epoch checkpoints kept (at least decoding.avg, which averages the last of them)""")
    checkpoint_every_batches: int = Field(100, ge=1, json_schema_extra=RUN_ONLY, description="""
        also checkpoint inside an epoch, so that a killed run loses at most this many batches""")
    num_workers: int = Field(1, ge=0, json_schema_extra=RUN_ONLY, description="""
        data loader processes (per training process)""")
    num_threads: Optional[int] = Field(None, ge=1, json_schema_extra=RUN_ONLY, description="""
        torch threads of a training job (shared by its processes); null, the cores the run is given (run.sh
        --cores; a profile's set-threads overrides). On the CPU the thread count changes the order of float sums,
        so set it for the same model bit for bit on every machine; a change neither retrains nor discards
        checkpoints. Fewer threads than cores let independent models (CTC, TRANS, the phone LM) train side by side:
        small LSTMs gain little from a second thread""")
    num_processes: int = Field(1, ge=1, description="""
        training processes (torchrun, DistributedDataParallel; one per GPU, or gloo on the CPU), each taking one of
        every num_processes x accumulate_batches batches of an optimiser step; part of what is trained (the batches
        of a step, the float summation order and the dropout masks depend on it)""")
    accumulate_batches: int = Field(1, ge=1, description="""
        batches per process per optimiser step (gradients accumulated): 1 process x k batches trains on the same
        global batches as k processes x 1""")
    amp: Literal[False, True, "float16", "bfloat16"] = Field(False, description="""
        mixed precision: float16 (true means float16: autocast with loss scaling, CUDA only) or bfloat16
        (autocast, no scaling needed; on the CPU and on Ampere or newer GPUs); the losses stay float32""")
    max_infeasible_fraction: float = Field(0.01, ge=0, le=1, description="""
        utterances too short for their tokens (fewer encoder frames than CTC needs: a frame per token and a blank
        between repeats; the pruned transducer loss: a frame per token) are left out of training and dev with a
        warning, up to this fraction of a set; more stop the training, naming them""")

    @property
    def amp_dtype(self) -> Optional[str]:
        """The autocast dtype that ``amp`` asks for: None (float32), "float16" (also ``amp: true``) or
        "bfloat16"."""
        return "float16" if self.amp is True else self.amp or None


@section
class DecodingConfig(Section):
    """how the models decode (stage 8) and which sets are scored (stage 9)"""

    KEY: ClassVar[str] = "decoding"
    ctc: Tuple[Literal["greedy", "prefix_beam"], ...] = Field(("greedy", "prefix_beam"))
    transducer: Tuple[Literal["greedy", "beam", "modified_beam"], ...] = Field(("greedy", "beam", "modified_beam"))
    beams: Tuple[typing.Annotated[int, Field(ge=1)], ...] = Field(min_length=1, description="""
        beam widths for the beam searches (paper 100)""")
    avg: int = Field(1, ge=1, description="""
        average the last N epoch checkpoints (of the last phase, schedule paper); 1 = best. At most
        training.keep_last_checkpoints""")
    splits: Tuple[Literal["dev", "test", "heldout"], ...] = Field(("dev", "test"), min_length=1, description="""
        the sets decoded and scored; heldout, the demo corpus's held-out voices, needs demo_corpus.heldout_voices
        (and corpus_dir null)""")
    lm: Tuple[Literal["none", "ngram", "neural"], ...] = Field(("none",), min_length=1,
                                                               json_schema_extra={"uniqueItems": True}, description="""
        the token LMs the beam searches add by shallow fusion, each a decoding of its own (greedy never uses one):
        none (acoustic scores alone), ngram (stage 5's ARPA n-gram LM of ngram_lm.order) or neural (stage 5's
        neural phone LM, exp/phone_lm/model.pt). A decoding with an LM scores log P(y | x) + lm_weight log P_LM(y)
        + lm_bonus |y|, with the weight and bonus chosen on dev""")
    lm_weight: Tuple[typing.Annotated[float, Field(ge=0)], ...] = Field((0.1, 0.2, 0.4), min_length=1, description="""
        the LM weights tried on dev (with each lm_bonus); test is decoded once with the best""")
    lm_bonus: Tuple[float, ...] = Field((0.0, 0.5, 1.0), min_length=1, description="""
        the insertion bonuses tried on dev, added per emitted token (an LM's log-probabilities favour short
        outputs: the bonus evens that out)""")


@section
class Config:
    """asrkit recipe configuration, recipes/<recipe>/config.yaml (validated before any stage runs)"""

    recipe: str = Field(pattern="^[a-z][a-z0-9_]*$", description="""
        recipe name; its manifests are data/manifests/<recipe>_*, its rules recipes/<recipe>/rules""")
    recipe_dir: Optional[str] = Field(None, description="""
        the recipe's folder (set by run.sh, not by hand); without it, recipes/<recipe> beside the Snakefile""")
    corpus_dir: Optional[str] = Field(description="""
        path to the corpus (e.g. an LDC TIMIT copy), relative to the recipe; null makes the demo corpus""")
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    seed: int = Field(description="one seed for the demo corpus, data order, model initialisation and training")
    models: Tuple[str, ...] = Field(min_length=1, json_schema_extra={"uniqueItems": True}, description="""
        what to train, by the names of asrkit/workflow/stages.py's RECIPE_MODELS: ctc (CTC), transducer (the RNN
        transducer, TRANS) and pretrained_transducer (the transducer whose encoder starts from the CTC model and
        prediction network from a token LM, PRETRANS)""")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", json_schema_extra=RUN_ONLY, description="""
        where training, decoding and the sensitivity figures compute: auto is a CUDA GPU when torch finds one,
        else the CPU (models trained on a GPU decode on a CPU too); not part of what is trained, so changing it
        reruns nothing""")
    num_jobs: int = Field(2, ge=1, description="""
        parallel processes for data preparation and feature extraction; feature extraction uses fewer for a split
        with less than 1800 s of audio per process, where starting a worker costs more than it saves
        (asrkit/data/features.py, choose_num_jobs)""")
    demo_corpus: DemoCorpusConfig = Field(default_factory=DemoCorpusConfig)
    units: UnitsConfig = Field()
    data: DataConfig = Field(default_factory=DataConfig)
    features: FeatureConfig = Field()
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    model: ModelConfig = Field()
    transducer: TransducerConfig = Field(default_factory=TransducerConfig)
    phone_lm: PhoneLmConfig = Field(default_factory=PhoneLmConfig)
    ngram_lm: NgramLmConfig = Field(default_factory=NgramLmConfig)
    training: TrainingConfig = Field()
    decoding: DecodingConfig = Field()


# ------------------------------------------------------------------------------------------------------ schema


def schema() -> Dict[str, Any]:
    """The JSON schema of a whole config."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **derived_schema(Config)}


@functools.lru_cache(maxsize=None)
def derived_schema(cls: type) -> Dict[str, Any]:
    """The JSON schema of one of the config's dataclasses (a section, or the whole config), derived once from its
    fields: nested sections inline, as a reader (and Snakemake's validation, which fills in the defaults) expects
    them."""
    derived = pydantic.TypeAdapter(cls).json_schema()
    return _tidy(derived, derived.pop("$defs", {}))


def _tidy(node: Any, definitions: Mapping[str, Any]) -> Any:
    """A schema as pydantic writes it, made plain: references inlined, no titles, ``X | None`` as X that also
    takes null, and no default of None (a key left unset is absent)."""
    if isinstance(node, list):
        return [_tidy(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _tidy({**definitions[node["$ref"].rpartition("/")[2]], **{k: v for k, v in node.items()
                                                                          if k != "$ref"}}, definitions)
    node = dict(node)
    variants = node.pop("anyOf", None)
    if variants is not None and len(variants) == 2 and {"type": "null"} in variants:
        nullable = _tidy(next(v for v in variants if v != {"type": "null"}), definitions)
        if "type" in nullable:
            nullable["type"] = [nullable["type"], "null"]
        if "enum" in nullable:
            nullable["enum"] = [*nullable["enum"], None]
        node = {**nullable, **node}
    elif variants is not None:
        node["anyOf"] = variants
    node.pop("title", None)
    if "default" in node and node["default"] is None:
        del node["default"]
    tidy = {key: (value if key == "default" else _tidy(value, definitions)) for key, value in node.items()
            if key != "properties"}
    if "properties" in node:
        tidy["properties"] = {name: _tidy(prop, definitions) for name, prop in node["properties"].items()}
    if "description" in tidy:
        tidy["description"] = " ".join(tidy["description"].split())
    return tidy


def check(values: Mapping[str, Any], section_schema: Mapping[str, Any], where: str) -> None:
    """Check ``values`` against ``section_schema``; a ValueError names the bad key."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(section_schema).iter_errors(values))
    if error is not None:
        key = ".".join(map(str, [where, *error.absolute_path] if where else error.absolute_path))
        # a schema's own message where it has one (the keyword of ajv-errors), e.g. for a key of another units type
        raise ValueError(f"config {key or 'file'}: {error.schema.get('errorMessage', error.message)}")


def build(cls: Type[S], values: Mapping[str, Any]) -> S:
    """The dataclass from checked values; a ValueError says what its own checks (``__post_init__``) refuse."""
    try:
        return cls(**values)
    except pydantic.ValidationError as e:
        # pydantic wraps the check's message in its own report: the message alone names the key
        raise ValueError("; ".join(str(error["ctx"]["error"]) if error["type"] == "value_error"
                                   else f"config {'.'.join(map(str, error['loc']))}: {error['msg']}"
                                   for error in e.errors())) from None


def write_schema(path: Path) -> Path:
    """Write the schema to ``path`` as JSON, unless it holds it already (as when a cluster job reads the workflow
    again), and return ``path``."""
    text = json.dumps(schema(), indent=1) + "\n"
    if not path.is_file() or path.read_text() != text:
        with atomic_output(path) as partial:
            partial.write_text(text)
    return path


def load_config(values: Mapping[str, Any]) -> Config:
    """A whole config (e.g. a parsed config.yaml), checked (:func:`check_across_keys` too), with the defaults."""
    check(values, schema(), "")
    config = build(Config, values)
    check_across_keys(values)
    return config


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
    if typing.get_origin(hint) in (typing.Union, types.UnionType):  # Optional[X]
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    if typing.get_origin(hint) is tuple:
        return _flag_type(typing.get_args(hint)[0])[0], True
    if typing.get_origin(hint) is typing.Annotated:
        return _flag_type(typing.get_args(hint)[0])
    if typing.get_origin(hint) is Literal:
        kinds = {type(choice) for choice in typing.get_args(hint)}
        if kinds == {bool, str}:  # true/false or a word (training.amp)
            return _parse_bool_or_word, False
        return kinds.pop(), False
    return (_parse_bool if hint is bool else hint), False


def _parse_bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def _parse_bool_or_word(text: str) -> Any:
    return _parse_bool(text) if text.lower() in ("true", "false") else text


def _flag_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def add_flags(parser: argparse.ArgumentParser, section: Type[Section], keys: Optional[Iterable[str]] = None,
              leave_out: Iterable[str] = ()) -> None:
    """Add ``--<section>.<key>`` flags for a section's keys (all, or ``keys``; not ``leave_out``), described as
    the schema describes them.

    A flag left out takes the key's default; a key without a default needs its flag.
    """
    section_schema = section.schema()
    hints = typing.get_type_hints(section, include_extras=True)
    group = parser.add_argument_group(f"config section {section.KEY}", section_schema.get("description"))
    for f in dataclasses.fields(section):
        if (keys is None or f.name in keys) and f.name not in leave_out:
            _add_flag(group, f"{section.KEY}.{f.name}", section_schema["properties"][f.name], hints[f.name],
                      f.name in section_schema.get("required", []))


def add_top_level_flag(parser: argparse.ArgumentParser, key: str, required: Optional[bool] = None) -> None:
    """Add ``--<key>`` for a key outside the sections (e.g. ``seed``), described by the schema; required if the
    schema requires the key, unless ``required`` says otherwise (a command that reads it only sometimes)."""
    _add_flag(parser, key, schema()["properties"][key], typing.get_type_hints(Config, include_extras=True)[key],
              key in schema()["required"] if required is None else required)


def _add_flag(parser, name: str, prop: Mapping[str, Any], hint: Any, required: bool) -> None:
    value_type, is_list = _flag_type(hint)
    choices = prop.get("enum", prop.get("items", {}).get("enum"))
    choices = None if choices is None else [choice for choice in choices if choice is not None]
    help_text = prop.get("description", "")
    if "default" in prop:
        default = prop["default"]
        help_text += f" (default: {' '.join(map(_flag_text, default)) if is_list else _flag_text(default)})"
    # a list that the schema lets be empty (e.g. augmentation.speed_perturb: []) is written as the bare flag
    nargs = ("+" if prop.get("minItems", 0) > 0 else "*") if is_list else None
    parser.add_argument(f"--{name}", dest=name, type=value_type, nargs=nargs, choices=choices,
                        default=prop.get("default"), help=help_text.strip() or None,
                        required=required and "default" not in prop,
                        metavar=name.rpartition(".")[2].upper() if choices is None else None)


def from_flags(args: argparse.Namespace, section: Type[S]) -> S:
    """The section from the parsed flags of :func:`add_flags`; keys without a flag take their defaults."""
    given = {f.name: getattr(args, f"{section.KEY}.{f.name}", None) for f in dataclasses.fields(section)}
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


if __name__ == "__main__":
    print(json.dumps(schema(), indent=1))
