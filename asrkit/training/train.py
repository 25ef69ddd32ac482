"""Train a deep bidirectional LSTM with CTC, or an RNN transducer on it (Graves et al. 2013), resumably.

Every epoch, and every ``checkpoint_every_batches`` batches inside one, writes a checkpoint (model,
optimiser, RNG state, position in the epoch, history) atomically to ``<exp-dir>/checkpoints/epoch-E.pt`` or
``epoch-E-batch-B.pt``; the last K end-of-epoch ones and the newest mid-epoch one are kept. The model with the
best dev error rate (the units' first metric: PER, or WER for words) is kept as ``best.pt``, with the options'
digest. A rerun resumes exactly from the latest checkpoint written with the same options; checkpoints of other
options are deleted, and a best.pt that this run did not write is set aside (a best.pt of other options is
never loaded). When training is over, ``model.pt`` (the best model) and ``history.json`` are written: these two are
the stage's outputs.

Two schedules (``training.schedule``): ``fixed`` trains ``num_epochs`` epochs. ``paper`` follows Graves et al.
2013: train without weight noise until the dev loss (minus the log-probability) has not improved for
``patience`` epochs; restart from the epoch of lowest dev loss (``best.pt``) with a fresh optimiser and
Gaussian weight noise; stop when the dev error rate has not improved for ``patience`` epochs. Each phase lasts
at most ``num_epochs`` epochs; ``model.pt`` is the noise phase's best. A model started from pretrained parts
(PRETRANS) trains with noise from its first epoch.

The lr changes by ``lr_decay`` every epoch and, with ``lr_schedule: plateau``, by ``lr_anneal_factor`` when the
dev loss has not improved for ``lr_anneal_patience`` epochs (:class:`LrSchedule`, checkpointed; the paper
schedule's restart starts it afresh). With ``spec_augment`` the training batches (never dev's) are augmented
(:mod:`asrkit.data.spec_augment`), each utterance from a generator of its own.

Weight noise is drawn once per training utterance, as in the paper, within batches: each utterance's loss
and gradient are computed at the weights plus a perturbation drawn for it alone, the gradients summed over the
step's utterances, and the noise taken away before the update. The paper updates after every utterance
(online SGD), each gradient taken at its own perturbation; a step here averages the same per-utterance noisy
gradients (the same estimate of the gradient of the expected loss under noise) over a batch, as noiseless
training averages noiseless ones: the batching is the only difference, and it is the one that every batched
training already makes. One draw per batch would instead give a step's ~20 utterances one perturbation: its
gradient would estimate the expected loss under noise from one draw rather than one per utterance. Utterances
go through the network one by one in the noise phase (a batch is not one perturbation), which costs the
batching speed-up there.

Several processes (``training.num_processes``, launched by torchrun; the recipe does) train one model with
DistributedDataParallel: each takes its share of every step's batches, rank 0 alone evaluates on dev and writes.
One optimiser step trains on ``num_processes x accumulate_batches`` batches (the global batch): the batches
that lhotse's sampler gives the ranks of a training that many processes wide, so that one process accumulating
k batches sees the same batches, grouped the same way, as k processes taking one each (up to float rounding).

Run as ``python -m asrkit.training.train --help``; the recipe's Snakemake rule does.
"""

import argparse
import hashlib
import itertools
import json
import logging
import math
import os
import shutil
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import torch
import torch.distributed as dist
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from asrkit import config
from asrkit.config import AugmentationConfig, FeatureConfig, ModelConfig, PhoneLmConfig, TrainingConfig, TransducerConfig, UnitsConfig
from asrkit.model.interface import AcousticModel
from asrkit.model.registry import MODEL_TYPES, build_model, stored_model_options
from asrkit.training.checkpoint import (checkpoint_name, is_end_of_epoch, latest_checkpoint, load_checkpoint,
                                        load_weights, save_checkpoint, training_checkpoints)
from asrkit.data.corpus import raise_problems
from asrkit.data.dataset import RecognitionDataset, to_device, token_ids
from asrkit.data.spec_augment import SpecAugment, keyed_generator
from asrkit.device import DEVICE_CHOICES, resolve_device
from asrkit.training.distributed import ProcessGroup, end_process_group, start_process_group
from asrkit.data.features import input_dim, load_stats
from asrkit.io import atomic_output
from asrkit.progress import progress_bar
from asrkit.data.lang import TokenTable
from asrkit.model.rnnt_backend import check_device
from asrkit.scoring.error_rates import score_utterances
from asrkit.data.units import Units, load_units


@dataclass(frozen=True)
class TrainingSetup:
    """What a training stage trains: the config sections it reads, the model type and the pretrained parts."""

    seed: int
    units: UnitsConfig
    features: FeatureConfig
    #: the training cuts' augmented copies (made at the feature stage)
    augmentation: AugmentationConfig
    #: ctc or transducer (:data:`asrkit.training.checkpoint.MODEL_TYPES`)
    model_type: str
    model: ModelConfig
    #: the prediction network, joiner and loss of a transducer (unread by CTC)
    transducer: TransducerConfig
    training: TrainingConfig
    #: parts started from other models: part (encoder, decoder) -> model.pt
    init: Dict[str, Path] = field(default_factory=dict)

    def digest(self) -> str:
        """A short fingerprint of everything that shapes the trained model: what it was trained with, save
        the training's run-only settings (and a CTC model's transducer section), and the pretrained parts'
        files."""
        shaping = {"seed": self.seed, "units": asdict(self.units), "features": asdict(self.features),
                   "model": stored_model_options(self.model_type, self.model, self.transducer),
                   "training": {k: v for k, v in asdict(self.training).items()
                                if k not in TrainingConfig.RUN_ONLY_KEYS},
                   "init": {part: file_digest(path) for part, path in self.init.items()}}
        if self.model_type == "transducer":
            shaping["transducer"] = asdict(self.transducer)
        if self.augmentation.enabled:  # off, the fingerprint of a training from before augmentation existed
            shaping["augmentation"] = asdict(self.augmentation)
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def make_optimizer(model: torch.nn.Module, training: TrainingConfig) -> torch.optim.Optimizer:
    if training.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum)
    return torch.optim.Adam(model.parameters(), lr=training.lr)


class LrSchedule:
    """The lr of an optimiser from epoch to epoch: ``lr_decay`` every epoch, and, with ``lr_schedule: plateau``,
    ``lr_anneal_factor`` after ``lr_anneal_patience`` epochs in a row without a lower dev loss. Both multiply
    the optimiser's lr, so they combine."""

    def __init__(self, optimizer: torch.optim.Optimizer, training: TrainingConfig):
        self.optimizer = optimizer
        self.decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=training.lr_decay)
        # torch anneals once more than ``patience`` epochs have not improved: ours counts the epoch it anneals at.
        # threshold 0: any lower dev loss is an improvement
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=training.lr_anneal_factor, patience=training.lr_anneal_patience - 1,
            threshold=0.0) if training.lr_schedule == "plateau" else None

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, dev_loss: float) -> None:
        """At the end of an epoch whose dev loss is ``dev_loss``."""
        self.decay.step()
        if self.plateau is not None:
            self.plateau.step(dev_loss)

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay.state_dict(),
                **({"plateau": self.plateau.state_dict()} if self.plateau is not None else {})}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay.load_state_dict(state["decay"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])


class InterleavedShards:
    """Some shards of an epoch's batches, step by step: at each step, one batch of each shard in turn.

    lhotse's samplers shard the batches of an epoch among the ranks of a distributed training (rank r of
    W gets the r-th of each W batches drawn, and its bucketing draws W batches from one bucket in a row):
    ``samplers`` are such samplers, of the same cuts, seed and W, for the ranks (shards) this process trains.
    """

    def __init__(self, samplers: Sequence[DynamicBucketingSampler]):
        self.samplers = samplers

    def __iter__(self) -> Iterator[CutSet]:
        for batches in zip(*self.samplers):  # lhotse gives every shard the same number of batches
            yield from batches


def training_sampler(cuts: CutSet, max_duration: float, seed: int, epoch: int, shards: Sequence[int],
                     num_shards: int) -> InterleavedShards:
    """Duration-bucketed batches (little padding), in ``num_shards`` shards; this process's ``shards``.

    The batches of an epoch depend only on (seed, epoch, num_shards), so that a resumed epoch sees the same
    batches, and a step's ``num_shards`` batches are the same whichever processes train them.
    """
    samplers = []
    for shard in shards:
        with warnings.catch_warnings():  # its advice on lazy manifests is for corpora far larger than TIMIT
            warnings.filterwarnings("ignore", message="You are using DynamicBucketingSampler with an eagerly")
            sampler = DynamicBucketingSampler(cuts, max_duration=max_duration, shuffle=True, seed=seed,
                                              num_buckets=min(10, max(2, len(cuts) // 20)),
                                              world_size=num_shards, rank=shard)
        sampler.set_epoch(epoch)
        samplers.append(sampler)
    return InterleavedShards(samplers)


def make_loader(dataset: RecognitionDataset, sampler, seed: int, num_workers: int, epoch: int,
                skip_batches: int = 0) -> torch.utils.data.DataLoader:
    """Batches of tensors from a sampler of CutSets, without its first ``skip_batches`` (a resumed epoch)."""
    # The loader's own generator, not the global RNG, seeds its workers: resuming must not shift dropout noise.
    return torch.utils.data.DataLoader(dataset, sampler=SkipBatches(sampler, skip_batches), batch_size=None,
                                       num_workers=num_workers, generator=torch.Generator().manual_seed(seed + epoch))


def batch_loss(model: AcousticModel, batch: Dict, transducer: TransducerConfig, batch_index: int) -> torch.Tensor:
    """The training loss of a batch, summed over its utterances (the model's :meth:`training_loss`, given the
    config's ``transducer`` section)."""
    return model.training_loss(batch, transducer, batch_index)


class TrainingLoss(torch.nn.Module):
    """The model with its training loss as ``forward``: what DistributedDataParallel wraps, since it
    synchronises the gradients of what its module's ``forward`` computes."""

    def __init__(self, model: AcousticModel, transducer: TransducerConfig):
        super().__init__()
        self.model, self.transducer = model, transducer

    def forward(self, batch: Dict, batch_index: int) -> torch.Tensor:
        return batch_loss(self.model, batch, self.transducer, batch_index)


def evaluate(model: AcousticModel, loader, tokens: TokenTable, units: Units, transducer: TransducerConfig,
             device: torch.device) -> Dict[str, Any]:
    """Mean loss per utterance (as trained after warm-up; and of each of its terms, if it has several) and the
    greedy error rate in the units' first metric: PER on 39 folded phones, or WER on the words the pieces make."""
    model.eval()
    term_totals: Dict[str, float] = {}
    count, refs, hyps = 0, {}, {}
    with torch.no_grad():
        for batch in map(lambda b: to_device(b, device), loader):
            for name, term in model.training_loss_terms(batch, transducer, batch_index=sys.maxsize).items():
                term_totals[name] = term_totals.get(name, 0.0) + term.item()
            count += len(batch["cut_ids"])
            greedy = model.search("greedy", 1, batch["features"], batch["feature_lens"])
            for cut_id, ids, target, n in zip(batch["cut_ids"], greedy, batch["targets"], batch["target_lens"]):
                refs[cut_id] = units.scored(tokens.decode(target[:n].tolist()))
                hyps[cut_id] = units.scored(tokens.decode(ids))
    model.train()
    # a loss of several terms (a transducer's auxiliary CTC loss) has each of them recorded too
    terms = {f"dev_{name}_loss": total / count for name, total in term_totals.items()} if len(term_totals) > 1 else {}
    return {"dev_loss": sum(term_totals.values()) / count, **terms, "dev_metric": units.metrics[0],
            "dev_error_rate": score_utterances(refs, hyps).totals.rate}


def initialise(model: AcousticModel, init: Dict[str, Path]) -> None:
    """Start from pretrained parts (PRETRANS): the encoder of a CTC model (and the other parts the model takes
    from it, :meth:`~AcousticModel.parts_from_ctc_model`), the prediction network of a token LM."""
    if "encoder" in init:
        weights = load_checkpoint(Path(init["encoder"]))["model"]
        for name, part in model.parts_from_ctc_model().items():
            load_weights(part, {k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(f"{name}.")},
                         Path(init["encoder"]))
        logging.info(f"{', '.join(model.parts_from_ctc_model())} initialised from {init['encoder']}")
    if "decoder" in init:
        load_weights(model.decoder, load_checkpoint(Path(init["decoder"]))["model"], Path(init["decoder"]))
        logging.info(f"prediction network initialised from {init['decoder']}")


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


#: the bound of the paper's initial weights, uniform in [-bound, bound] (``training.init: uniform``)
UNIFORM_INIT_BOUND = 0.1


def initialise_uniformly(model: torch.nn.Module) -> None:
    """Every weight uniform in [-0.1, 0.1], as Graves et al. initialise (from the global RNG, seeded)."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-UNIFORM_INIT_BOUND, UNIFORM_INIT_BOUND)


def noise_generator(seed: int, epoch: int, item: str) -> torch.Generator:
    """The generator of one training item's weight noise (an utterance, by its cut ID): seeded by the run's
    seed, the epoch and the item alone.

    So the noise of an utterance is the same whichever process trains it, in whatever batch: a resumed run,
    accumulated batches and DistributedDataParallel's processes all draw the same noise, and there is no
    noise RNG state to checkpoint (resuming is exact by construction).
    """
    return keyed_generator(f"{seed}/{epoch}/{item}")


def add_weight_noise(model: torch.nn.Module, std: float, generator: torch.Generator) -> List[torch.Tensor]:
    """Add Gaussian noise to every weight; return the weights as they were, for :func:`remove_weight_noise`.

    The noise comes from a (CPU) generator of its own (:func:`noise_generator`), not the global RNG. The weights
    are restored from a copy rather than by subtracting the noise: (w + n) - n is not w in floating point, and
    the processes of a distributed training, each with its own utterances' noise, would drift apart.
    """
    saved = []
    with torch.no_grad():
        for p in model.parameters():
            saved.append(p.detach().clone())
            p.add_((torch.randn(p.shape, generator=generator) * std).to(p.device))
    return saved


def remove_weight_noise(model: torch.nn.Module, saved: List[torch.Tensor]) -> None:
    """Put back the weights that :func:`add_weight_noise` saved, exactly."""
    with torch.no_grad():
        for p, weights in zip(model.parameters(), saved):
            p.copy_(weights)


def utterances(batch: Dict) -> List[Dict]:
    """A padded batch of :class:`RecognitionDataset` as batches of one utterance each, unpadded."""
    return [{"features": batch["features"][i:i + 1, :int(batch["feature_lens"][i])],
             "feature_lens": batch["feature_lens"][i:i + 1],
             "targets": batch["targets"][i:i + 1, :int(batch["target_lens"][i])],
             "target_lens": batch["target_lens"][i:i + 1], "cut_ids": [cut_id]}
            for i, cut_id in enumerate(batch["cut_ids"])]


# ------------------------------------------------------------------------------------------- the schedule
#
# An epoch belongs to a phase: "fixed" (schedule fixed), or "noiseless" then "noisy" (schedule paper); after
# the last, the phase is "done". Each epoch's history record names its phase, so that the best epoch of a phase
# and the epochs since it (patience) follow from the history, which every checkpoint holds: a resume in any
# phase continues exactly.

FIXED, NOISELESS, NOISY, DONE = "fixed", "noiseless", "noisy", "done"


def first_phase(training: TrainingConfig, pretrained: bool) -> str:
    """The phase of epoch 1: a model started from pretrained parts trains with noise from the start (the
    paper's PRETRANS, whose parts were trained through both phases)."""
    if training.schedule == "fixed":
        return FIXED
    return NOISY if pretrained and training.weight_noise_std > 0 else NOISELESS


def selection_key(phase: str) -> str:
    """The history value whose lowest picks a phase's best epoch: the noiseless phase stops at the highest dev
    log-probability (lowest loss), the others at the lowest dev error rate."""
    return "dev_loss" if phase == NOISELESS else "dev_error_rate"


def best_record(history: List[Dict[str, Any]], phase: str, key: str) -> Dict[str, Any]:
    """The best epoch of a phase, by the lowest history value ``key``: the last of the lowest (schedule fixed,
    as it always was), or the first of the lowest (schedule paper: an epoch that only equals the best is no
    improvement)."""
    records = [h for h in history if h["phase"] == phase]
    lowest = min(h[key] for h in records)
    ties = [h for h in records if h[key] == lowest]
    return ties[-1] if phase == FIXED else ties[0]


def next_phase(training: Union[TrainingConfig, PhoneLmConfig], history: List[Dict[str, Any]], phase: str,
               key: str) -> str:
    """The phase of the epoch after the history's last (``done``: training is over); ``key``: the history
    value whose lowest is the phase's best.

    A paper phase ends after ``patience`` epochs without improvement or at ``num_epochs`` epochs; then the
    noiseless phase is followed by the noisy one (if there is noise), and the noisy one by the end.
    """
    records = [h for h in history if h["phase"] == phase]
    if phase == FIXED:
        return DONE if len(records) >= training.num_epochs else FIXED
    since_best = records[-1]["epoch"] - best_record(history, phase, key)["epoch"]
    if since_best < training.patience and len(records) < training.num_epochs:
        return phase
    return NOISY if phase == NOISELESS and training.weight_noise_std > 0 else DONE


def is_noisy(training: TrainingConfig, phase: str, epoch: int) -> bool:
    if phase == FIXED:
        return training.weight_noise_std > 0 and epoch >= training.weight_noise_start_epoch
    return phase == NOISY


def restarts_from_best(training: TrainingConfig, history: List[Dict[str, Any]], phase: str, epoch: int,
                       best_path: Path) -> bool:
    """Whether this epoch restarts from best.pt with a fresh optimiser: the first epoch of the paper's noisy
    phase after a noiseless one, or (schedule fixed) the epoch weight noise starts, if a best.pt was written."""
    if phase == FIXED:
        return is_noisy(training, phase, epoch) and epoch == training.weight_noise_start_epoch and best_path.exists()
    return phase == NOISY and any(h["phase"] == NOISELESS for h in history) \
        and not any(h["phase"] == NOISY for h in history)


def set_aside_foreign_best(best_path: Path, digest: str, resuming: bool) -> None:
    """Move aside a best.pt that this run did not write: any, on a fresh start, or one of other options.

    best.pt is no Snakemake output and outlives the checkpoints set aside by :func:`latest_checkpoint`; a
    noise phase restarting from another run's model would train the wrong model, or fail on its shapes.
    """
    if not best_path.exists():
        return
    if resuming and load_checkpoint(best_path).get("options_digest") == digest:
        return
    stale = best_path.with_name(f"best.stale-{int(time.time())}.pt")
    logging.warning(f"{best_path} is not this run's ({'other options' if resuming else 'no checkpoint of this run'}): "
                    f"moved to {stale}")
    shutil.move(str(best_path), str(stale))


def load_best(best_path: Path, digest: str) -> Dict[str, torch.Tensor]:
    """The weights of this run's best.pt; refuses one of other options."""
    if not best_path.exists():
        raise ValueError(f"{best_path} is missing (removed, or set aside as not this run's): the noise phase "
                         f"restarts from it; remove {best_path.parent / 'checkpoints'} to train afresh")
    best = load_checkpoint(best_path)
    if best.get("options_digest") != digest:
        raise ValueError(f"{best_path} was written with other options (digest {best.get('options_digest')}, "
                         f"this run's {digest}): refusing to restart from it")
    return best["model"]


def rng_state(device: torch.device) -> Dict[str, torch.Tensor]:
    """The state of the global RNGs that dropout draws from (the CPU's, and the GPU's on CUDA)."""
    return {"cpu": torch.get_rng_state(), **({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}


def set_rng_state(state: Dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore :func:`rng_state`'s states. A checkpoint written on the CPU resumed on a GPU has no CUDA state:
    the GPU's RNG is seeded from the CPU's restored one, so the resumed run is still reproducible."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda":
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], device)
        else:
            torch.cuda.manual_seed(int(torch.randint(2 ** 62, (1,)).item()))
            logging.info("the checkpoint was written without a GPU: the GPU's RNG (dropout) is seeded afresh")


def steps(loader: Iterator[Dict], batches_per_step: int) -> Iterator[List[Dict]]:
    """The loader's batches in groups of ``batches_per_step`` (this process's batches of one optimiser step)."""
    iterator = iter(loader)
    while group := list(itertools.islice(iterator, batches_per_step)):
        yield group


class SkipBatches:
    """A sampler that leaves out its first ``count`` batches: resuming an epoch after ``count`` batches.

    We do not resume from the lhotse sampler's own ``state_dict``: the DataLoader draws batches ahead of the
    training loop, so that state runs ahead of what was trained on. Seeded with the same seed and epoch, the
    sampler yields the same batches again, and skipping the consumed ones (cuts only, no feature loading)
    continues exactly where training stopped.
    """

    def __init__(self, sampler, count: int):
        self.sampler, self.count = sampler, count

    def __iter__(self):
        return itertools.islice(iter(self.sampler), self.count, None)


def prune_checkpoints(checkpoint_dir: Path, keep: int) -> None:
    """Keep the last ``keep`` end-of-epoch checkpoints (for averaging) and the newest mid-epoch one."""
    epochs = training_checkpoints(checkpoint_dir)
    ends = [p for p in epochs if is_end_of_epoch(p)]
    inside = [p for p in epochs if not is_end_of_epoch(p)]
    newest = epochs[-1]
    for old in ends[:-keep] + [p for p in inside if p != newest]:
        old.unlink()


class InfeasibleError(ValueError):
    """Too many utterances have fewer encoder frames than their tokens need (see :func:`feasible_cuts`)."""


def feasible_cuts(cuts: CutSet, name: str, model: AcousticModel, loss_options: Any, tokens: TokenTable,
                  units: Units, max_infeasible_fraction: float) -> CutSet:
    """The cuts of set ``name`` whose tokens ``model``'s loss can align over their encoder frames.

    The others have no alignment: their loss is infinite, and zeroing it would train on nothing while counting
    them in the average. A few (up to ``max_infeasible_fraction`` of the set) are left out with a warning; more
    mean that the corpus and the config do not fit (e.g. ``model.stack_frames`` too high): stop, naming them.
    """
    stack = model.encoder.stack_frames
    infeasible: Dict[str, str] = {}  # cut id -> what it lacks
    for cut in cuts:
        frames = -(-cut.num_frames // stack)  # the encoder's steps: ceil(T / stack_frames)
        needed = model.frames_needed(token_ids(cut, tokens, units), loss_options)
        if frames < needed:
            infeasible[cut.id] = (f"{cut.id}: {frames} encoder frames ({cut.num_frames} / stack_frames {stack}) "
                                  f"for {needed} needed by its tokens")
    problems = list(infeasible.values())
    if len(problems) > max_infeasible_fraction * len(cuts):
        raise_problems(problems, InfeasibleError,
                       f"of {len(cuts)} {name} utterances are too short for their tokens, more than "
                       f"training.max_infeasible_fraction {max_infeasible_fraction} (lower model.stack_frames?)")
    if problems:
        logging.warning(f"left out {len(problems)} of {len(cuts)} {name} utterances, too short for their "
                        f"tokens: {problems[0]}{' ...' if len(problems) > 1 else ''}")
        cuts = cuts.filter(lambda cut: cut.id not in infeasible).to_eager()
    return cuts


def check_processes(training: TrainingConfig, group: ProcessGroup, device: torch.device) -> None:
    """The processes running are those the options ask for, and the mixed precision asked for runs here."""
    if training.num_processes != group.world_size:
        raise ValueError(f"training.num_processes is {training.num_processes} but {group.world_size} process(es) "
                         f"run: launch with torchrun --standalone --nproc_per_node {training.num_processes} "
                         f"-m asrkit.training.train ... (the recipe does)")
    if training.amp_dtype == "float16" and device.type != "cuda":
        raise ValueError(f"training.amp {training.amp!r}: float16 mixed precision needs a CUDA GPU (the CPU's "
                         f"LSTM kernels have no float16 version), and this run's device is {device.type}: set "
                         f"training.amp: bfloat16, which runs on the CPU, or false")


# ------------------------------------------------------------------------------------------------ the loop

#: the float16 loss scaler's first scale (torch's default): too high at first, lowered by the scaler's skips
FLOAT16_INIT_SCALE = 2.0 ** 16
#: ``training.amp``'s dtypes as torch's
AUTOCAST_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """Mixed precision (``training.amp``): the autocast dtype (None: float32 throughout) and the loss scaler,
    which float16 needs (its small gradients underflow unscaled) and bfloat16 does not (disabled, it does
    nothing)."""

    dtype: Optional[torch.dtype]
    scaler: torch.amp.GradScaler

    @classmethod
    def of(cls, training: TrainingConfig, device: torch.device) -> "Precision":
        dtype = AUTOCAST_DTYPES.get(training.amp_dtype)
        return cls(dtype, torch.amp.GradScaler(device.type, init_scale=FLOAT16_INIT_SCALE,
                                               enabled=training.amp_dtype == "float16"))

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)


@dataclass(frozen=True)
class WeightNoise:
    """Gaussian weight noise of ``std``, drawn once per training utterance (:func:`noise_generator`)."""

    std: float
    seed: int
    epoch: int

    def add(self, model: torch.nn.Module, cut_id: str) -> List[torch.Tensor]:
        return add_weight_noise(model, self.std, noise_generator(self.seed, self.epoch, cut_id))


#: How an optimiser step ended: it updated the weights; or the float16 loss scaler skipped it while calibrating
#: (the scaled gradients overflowed, and the scaler lowers its scale); or the loss or the gradient was not
#: finite whatever the scale (a divergence), and the step was skipped.
UPDATED, SCALER_SKIP, NON_FINITE = "updated", "scaler_skip", "non_finite"


@dataclass(frozen=True)
class StepOutcome:
    """One optimiser step: its loss and utterances summed over the processes (0 if skipped), and how it ended."""

    loss: float
    utterances: int
    outcome: str


def optimizer_step(net: torch.nn.Module, model: AcousticModel, optimizer: torch.optim.Optimizer,
                   precision: Precision, step_batches: List[Dict], device: torch.device, global_batches: int,
                   grad_clip: Optional[float], noise: Optional[WeightNoise] = None,
                   group: ProcessGroup = ProcessGroup()) -> StepOutcome:
    """One optimiser step on this process's ``step_batches`` (their gradients accumulated): forward and backward
    under ``precision``'s autocast and loss scaling, each utterance at weights perturbed for it alone if
    ``noise`` (see the module's docstring), the gradient clipped to norm ``grad_clip`` (None or 0: not clipped),
    and no update if it is not finite.

    ``net``: :class:`TrainingLoss` of ``model``, or DistributedDataParallel around it (``group``'s processes),
    which averages the processes' gradients at the step's last backward alone (``no_sync`` before it).
    """
    optimizer.zero_grad()
    accumulate = len(step_batches)
    step_totals = torch.zeros(2, dtype=torch.float64)  # loss, utterances
    for i, batch in enumerate(step_batches):
        batch = to_device(batch, device)
        num_utts = len(batch["cut_ids"])
        pieces = utterances(batch) if noise is not None else [batch]
        for j, piece in enumerate(pieces):
            saved = noise.add(model, piece["cut_ids"][0]) if noise is not None else None
            last = i == accumulate - 1 and j == len(pieces) - 1
            with net.no_sync() if group.world_size > 1 and not last else nullcontext():
                with precision.autocast(device):
                    loss = net(piece, global_batches)
                # each of a step's batches weighs 1 / accumulate (DDP averages over the processes)
                precision.scaler.scale(loss / (num_utts * accumulate)).backward()
            if saved is not None:
                remove_weight_noise(model, saved)
            step_totals += torch.tensor([loss.item(), len(piece["cut_ids"])], dtype=torch.float64)
    precision.scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    step_loss, step_utts = group.sum(step_totals).tolist()  # the same in every process, as the gradient
    if torch.isfinite(grad_norm):
        precision.scaler.step(optimizer)
        outcome = UPDATED
    else:  # nor does its loss count in the epoch's training loss
        # the losses are float32 under autocast too: a finite loss whose scaled gradient overflowed is the
        # scaler's calibration, not a divergence
        outcome = SCALER_SKIP if precision.scaler.is_enabled() and math.isfinite(step_loss) else NON_FINITE
        step_loss, step_utts = 0.0, 0
    precision.scaler.update()
    return StepOutcome(step_loss, int(step_utts), outcome)


@dataclass
class TrainingState:
    """Where a training stands between two optimiser steps: with the weights and the states of the optimiser,
    lr schedule, loss scaler and RNGs, what a checkpoint holds. :meth:`checkpoint` and :meth:`from_checkpoint`
    are the one place it is saved and read."""

    phase: str
    epoch: int = 1
    #: optimiser steps of this epoch, each on num_processes x accumulate_batches batches
    batches_done: int = 0
    #: this epoch's summed training loss, its utterances and its seconds so far
    totals: List[float] = field(default_factory=lambda: [0.0, 0, 0.0])
    #: optimiser steps of all epochs: the transducer's warm-up counts them
    global_batches: int = 0
    #: steps of this epoch skipped for a loss or gradient that was not finite
    skipped_steps: int = 0
    #: steps of this epoch that the float16 loss scaler skipped while lowering its scale
    scaler_skipped_steps: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)

    def add_step(self, step: StepOutcome, seconds: float) -> None:
        self.batches_done += 1
        self.global_batches += 1
        self.skipped_steps += step.outcome == NON_FINITE
        self.scaler_skipped_steps += step.outcome == SCALER_SKIP
        self.totals = [self.totals[0] + step.loss, self.totals[1] + step.utterances, seconds]

    def train_loss(self) -> Optional[float]:
        """The epoch's mean loss per utterance so far; None while every step was skipped."""
        return self.totals[0] / self.totals[1] if self.totals[1] else None

    def next_epoch(self) -> None:
        self.epoch, self.batches_done, self.totals = self.epoch + 1, 0, [0.0, 0, 0.0]
        self.skipped_steps = self.scaler_skipped_steps = 0

    def checkpoint(self, epoch_finished: bool) -> Dict[str, Any]:
        """The state's entries of a checkpoint (``batches_done`` None: after the epoch's last step)."""
        return {"epoch": self.epoch, "batches_done": None if epoch_finished else self.batches_done,
                "totals": self.totals, "global_batches": self.global_batches, "history": self.history,
                "phase": self.phase, "skipped_steps": self.skipped_steps,
                "scaler_skipped_steps": self.scaler_skipped_steps}

    @classmethod
    def from_checkpoint(cls, checkpoint: Dict[str, Any]) -> "TrainingState":
        """The state to go on from: after a finished epoch, the next one's start."""
        state = cls(phase=checkpoint["phase"], epoch=checkpoint["epoch"], batches_done=checkpoint["batches_done"] or 0,
                    totals=checkpoint["totals"], global_batches=checkpoint["global_batches"],
                    skipped_steps=checkpoint["skipped_steps"], history=checkpoint["history"],
                    scaler_skipped_steps=checkpoint.get("scaler_skipped_steps", 0))  # older checkpoints lack it
        if checkpoint["batches_done"] is None:
            state.next_epoch()
        return state


@dataclass
class TrainingRun:
    """What a training works with, set up once: the model and its loss, the optimiser and lr schedule (new ones
    at the paper schedule's restart), the precision, the data, and where it writes."""

    setup: TrainingSetup
    digest: str
    device: torch.device
    group: ProcessGroup
    model: AcousticModel
    #: the model with its loss as ``forward``, in DistributedDataParallel under torchrun
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LrSchedule
    precision: Precision
    dataset: RecognitionDataset
    train_set: CutSet
    dev_loader: torch.utils.data.DataLoader
    tokens: TokenTable
    units: Units
    exp_dir: Path
    #: what decoding and transcription read besides the weights: every checkpoint and model.pt hold it
    model_info: Dict[str, Any]
    writer: Optional[SummaryWriter]

    @property
    def checkpoint_dir(self) -> Path:
        return self.exp_dir / "checkpoints"

    @property
    def best_path(self) -> Path:
        return self.exp_dir / "best.pt"

    def save(self, state: TrainingState, epoch_finished: bool) -> None:
        """A checkpoint of ``state``. Every process calls it (each one's RNG state is saved); rank 0 writes."""
        rng_states = self.group.all_gather(rng_state(self.device))
        if self.group.is_main:
            name = checkpoint_name(state.epoch, None if epoch_finished else state.batches_done)
            save_checkpoint(self.checkpoint_dir / name, {
                "model": self.model.state_dict(), **self.model_info, **state.checkpoint(epoch_finished),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.precision.scaler.state_dict(), "rng_states": rng_states})
            prune_checkpoints(self.checkpoint_dir, self.setup.training.keep_last_checkpoints)

    def resume(self, path: Path) -> TrainingState:
        """Load a checkpoint of this run's options into the model, optimiser, lr schedule, scaler and RNGs."""
        checkpoint = load_checkpoint(path)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"]:  # a disabled scaler's (no float16) is empty
            self.precision.scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng_states"][self.group.rank], self.device)
        return TrainingState.from_checkpoint(checkpoint)

    def restart_from_best(self, epoch: int) -> None:
        """The paper's restart: best.pt's weights, a fresh optimiser and lr schedule (the noiseless phase's
        momentum points where noise is absent)."""
        self.model.load_state_dict(load_best(self.best_path, self.digest))
        self.optimizer = make_optimizer(self.model, self.setup.training)
        self.scheduler = LrSchedule(self.optimizer, self.setup.training)
        logging.info(f"epoch {epoch}: restarting from {self.best_path} (epoch "
                     f"{load_checkpoint(self.best_path)['epoch']}) with a fresh optimiser and weight noise "
                     f"{self.setup.training.weight_noise_std}")


def train_one_epoch(run: TrainingRun, state: TrainingState) -> float:
    """Train the rest of ``state.epoch``, from step ``state.batches_done`` on, checkpointing every
    ``checkpoint_every_batches`` steps; the time.time() at which the epoch would have started unbroken."""
    training, group = run.setup.training, run.group
    accumulate = training.accumulate_batches
    noise = WeightNoise(training.weight_noise_std, run.setup.seed, state.epoch) \
        if is_noisy(training, state.phase, state.epoch) else None
    started = time.time() - state.totals[2]
    shards = range(group.rank * accumulate, (group.rank + 1) * accumulate)  # this process's batches of a step
    sampler = training_sampler(run.train_set, training.max_duration, run.setup.seed, state.epoch, shards,
                               group.world_size * accumulate)
    spec_augment = SpecAugment.for_epoch(training, run.setup.seed, state.epoch) if training.spec_augment else None
    loader = make_loader(run.dataset.augmented(spec_augment), sampler, run.setup.seed, training.num_workers,
                         state.epoch, skip_batches=state.batches_done * accumulate)
    cap = f"/{training.num_epochs}" if state.phase == FIXED else f" ({state.phase})"
    progress = progress_bar(steps(loader, accumulate), desc=f"epoch {state.epoch}{cap}", unit="batch",
                            leave=False, initial=state.batches_done, disable=not group.is_main)
    for step_batches in progress:
        step = optimizer_step(run.net, run.model, run.optimizer, run.precision, step_batches, run.device,
                              state.global_batches, training.grad_clip, noise, group)
        if step.outcome == NON_FINITE:
            logging.warning(f"epoch {state.epoch}, step {state.batches_done + 1}: loss or gradient not finite, "
                            f"step skipped ({state.skipped_steps + 1} this epoch)")
        elif step.outcome == SCALER_SKIP:
            logging.info(f"epoch {state.epoch}, step {state.batches_done + 1}: float16 gradient overflow, step "
                         f"skipped and the loss scale lowered to {run.precision.scaler.get_scale():g}")
        state.add_step(step, time.time() - started)
        if state.train_loss() is not None:
            progress.set_postfix(loss=f"{state.train_loss():.2f}")
        if state.batches_done % training.checkpoint_every_batches == 0:
            run.save(state, epoch_finished=False)
    return started


def end_epoch(run: TrainingRun, state: TrainingState, started: float) -> None:
    """After the epoch's last step: evaluate on dev (rank 0), keep best.pt, step the lr schedule, choose the
    next phase, checkpoint, and move ``state`` to the next epoch."""
    group, history = run.group, state.history
    record = None
    if group.is_main:  # dev evaluation: rank 0 alone, the others wait for its record
        record = {"epoch": state.epoch, "phase": state.phase, "lr": run.scheduler.lr(),
                  "train_loss": state.train_loss(), "skipped_steps": state.skipped_steps,
                  "scaler_skipped_steps": state.scaler_skipped_steps,
                  **evaluate(run.model, run.dev_loader, run.tokens, run.units, run.setup.transducer, run.device),
                  "seconds": time.time() - started}
        for key in ("train_loss", "dev_loss", "dev_error_rate"):
            if record[key] is not None:
                run.writer.add_scalar(key, record[key], state.epoch)
        train_loss = "none (every step skipped)" if record["train_loss"] is None else f"{record['train_loss']:.3f}"
        logging.info(f"epoch {state.epoch} ({state.phase}): train loss {train_loss}, "
                     f"dev loss {record['dev_loss']:.3f}, dev {record['dev_metric']} "
                     f"{record['dev_error_rate']:.2f}% ({record['seconds']:.0f} s)")
    history.append(group.broadcast(record))
    if group.is_main and best_record(history, state.phase, selection_key(state.phase)) is history[-1]:
        save_checkpoint(run.best_path, {"model": run.model.state_dict(), **run.model_info, "epoch": state.epoch})
    run.scheduler.step(history[-1]["dev_loss"])
    state.phase = next_phase(run.setup.training, history, state.phase, selection_key(state.phase))
    run.save(state, epoch_finished=True)
    group.barrier()  # best.pt is written before any process can read it (weight noise restarts from it)
    state.next_epoch()


def train(train_cuts: Path, dev_cuts: Path, stats_path: Path, tokens_path: Path, exp_dir: Path,
          setup: TrainingSetup, device: str = "auto") -> None:
    """Train on ``setup.training``'s schedule, resuming where an earlier run stopped (mid-epoch too).

    In every process of a torchrun launch (``training.num_processes`` of them), or alone.
    """
    training, seed = setup.training, setup.seed
    # Checkpoints are resumable only under the same settings and the same pretrained parts. The number of
    # processes is among them: with it change the float summation order and the ranks' dropout masks.
    digest = setup.digest()
    torch_device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    if setup.model_type == "transducer":
        check_device(torch_device)  # a CPU-only RNN-T loss would fail at the first batch, after all the set-up
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # nccl uses the current device
    group = start_process_group(torch_device)
    check_processes(training, group, torch_device)
    tokens = TokenTable.load(tokens_path)
    units = load_units(setup.units, tokens_path.parent)
    stats = load_stats(stats_path)
    dataset = RecognitionDataset(tokens, units, setup.features, stats)
    train_set, dev_set = CutSet.from_file(train_cuts).to_eager(), CutSet.from_file(dev_cuts).to_eager()

    torch.manual_seed(seed)
    dim = input_dim(setup.features)
    model_options = stored_model_options(setup.model_type, setup.model, setup.transducer)
    model = build_model(model_options, dim, len(tokens))
    if training.init == "uniform":
        initialise_uniformly(model)
    initialise(model, setup.init)
    train_set, dev_set = (feasible_cuts(cuts, name, model, setup.transducer, tokens, units,
                                        training.max_infeasible_fraction)
                          for cuts, name in ((train_set, "train"), (dev_set, "dev")))
    model.to(torch_device)
    if group.rank > 0:  # the ranks' batches differ: so do their dropout masks
        torch.manual_seed(seed + group.rank)
    optimizer = make_optimizer(model, training)
    net = TrainingLoss(model, setup.transducer)
    if dist.is_initialized():  # averages the gradients of the processes in backward() (nccl/gloo, even for 1)
        # find_unused_parameters: a transducer's prediction network keeps its phone-LM output layer, unused here
        net = DistributedDataParallel(net, device_ids=[torch_device.index] if torch_device.type == "cuda" else None,
                                      find_unused_parameters=True)
    dev_sampler = SimpleCutSampler(dev_set, max_duration=training.max_duration, shuffle=False, world_size=1, rank=0)
    # Everything needed to use the model without the recipe: decoding and transcription read only this.
    model_info = {"model_options": model_options, "input_dim": dim, "vocab_size": len(tokens),
                  "tokens": tokens.symbols, "units": units.state(), "feature_options": asdict(setup.features),
                  "stats": stats, "options_digest": digest}
    run = TrainingRun(setup, digest, torch_device, group, model, net, optimizer, LrSchedule(optimizer, training),
                      Precision.of(training, torch_device), dataset, train_set,
                      make_loader(dataset, dev_sampler, seed, training.num_workers, 0), tokens, units, exp_dir,
                      model_info, SummaryWriter(str(exp_dir / "tensorboard")) if group.is_main else None)

    state = TrainingState(phase=first_phase(training, pretrained=bool(setup.init)))
    resume_from = group.broadcast(latest_checkpoint(run.checkpoint_dir, digest) if group.is_main else None)
    if group.is_main:
        set_aside_foreign_best(run.best_path, digest, resuming=resume_from is not None)
    group.barrier()  # no process sees a best.pt that is being set aside
    if resume_from is not None:
        state = run.resume(resume_from)
        logging.info(f"resuming from {resume_from}: epoch {state.epoch} ({state.phase}), after "
                     f"{state.batches_done} batches")
    num_params = sum(p.numel() for p in model.parameters())
    logging.info(f"model: {model_options}, {num_params / 1e6:.2f}M parameters, input {dim} dims, "
                 f"{len(tokens)} tokens; {len(train_set)} training cuts, {len(dev_set)} dev cuts; on {torch_device}"
                 f"{f' ({training.amp_dtype} mixed precision)' if training.amp_dtype else ''}, "
                 f"{group.world_size} process(es) x {training.accumulate_batches} batch(es) per step")
    while state.phase != DONE:
        if state.batches_done == 0 and restarts_from_best(training, state.history, state.phase, state.epoch,
                                                          run.best_path):
            run.restart_from_best(state.epoch)
        started = train_one_epoch(run, state)
        end_epoch(run, state, started)
    if not group.is_main:
        return
    run.writer.close()

    history = state.history
    final_phase = history[-1]["phase"]
    best = best_record(history, final_phase, selection_key(final_phase))
    logging.info(f"best dev {best['dev_metric']} {best['dev_error_rate']:.2f}% at epoch {best['epoch']} "
                 f"({final_phase}); {sum(h['seconds'] for h in history):.0f} s of training")
    final = {**load_checkpoint(run.best_path), "num_params": num_params, "num_epochs": len(history)}
    save_checkpoint(exp_dir / "model.pt", final)
    with atomic_output(exp_dir / "history.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    logging.info(f"model -> {exp_dir}/model.pt, history -> {exp_dir}/history.json")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-cuts", type=Path, required=True, help="training cut manifest with features")
    parser.add_argument("--dev-cuts", type=Path, required=True, help="dev cut manifest (model selection)")
    parser.add_argument("--stats", type=Path, required=True, help="global mean/std from the feature stage")
    parser.add_argument("--tokens", type=Path, required=True, help="tokens.txt from the units stage (data/lang; a sentencepiece model is read beside it)")
    parser.add_argument("--exp-dir", type=Path, required=True, help="where checkpoints and the model go")
    parser.add_argument("--model-type", choices=MODEL_TYPES, required=True, help="the network to train")
    parser.add_argument("--init-encoder", type=Path, help="start the encoder from this CTC model.pt (PRETRANS)")
    parser.add_argument("--init-decoder", type=Path, help="start the prediction network from this token LM model.pt")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default): a CUDA GPU if torch finds one, else the CPU")
    config.add_top_level_flag(parser, "seed")
    config.add_flags(parser, UnitsConfig)
    config.add_flags(parser, FeatureConfig, leave_out=FeatureConfig.COMPUTE_ONLY_KEYS)
    config.add_flags(parser, AugmentationConfig)
    config.add_flags(parser, ModelConfig)
    config.add_flags(parser, TransducerConfig)
    config.add_flags(parser, TrainingConfig)
    args = parser.parse_args(argv)
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    # rank 0 tells the story; the others speak up only for warnings and errors
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s [train{f' rank {rank}' if world_size > 1 else ''}] "
                               f"%(message)s")
    args.exp_dir.mkdir(parents=True, exist_ok=True)
    init = {part: path for part, path in (("encoder", args.init_encoder), ("decoder", args.init_decoder)) if path}
    setup = TrainingSetup(args.seed, config.from_flags(args, UnitsConfig), config.from_flags(args, FeatureConfig),
                          config.from_flags(args, AugmentationConfig), args.model_type, config.from_flags(args, ModelConfig),
                          config.from_flags(args, TransducerConfig), config.from_flags(args, TrainingConfig), init)
    # the job's threads are shared by its processes; more than the cores it was given slows it many times over
    torch.set_num_threads(max(1, (setup.training.num_threads or torch.get_num_threads()) // world_size))
    try:
        train(args.train_cuts, args.dev_cuts, args.stats, args.tokens, args.exp_dir, setup, args.device)
    finally:
        end_process_group()


if __name__ == "__main__":
    main()
