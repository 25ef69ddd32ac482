"""What a training step trains on: bucketed, sharded batches of an epoch, their loader, resumed epochs, the
utterances of a batch one by one, and the cuts a model's loss can align at all."""

import itertools
import logging
import warnings
from typing import Any, Dict, Iterator, List, Sequence

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler

from asrkit.data.corpus import raise_problems
from asrkit.data.dataset import RecognitionDataset, token_ids
from asrkit.data.lang import TokenTable
from asrkit.data.units import Units
from asrkit.model.interface import AcousticModel


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


def steps(loader: Iterator[Dict], batches_per_step: int) -> Iterator[List[Dict]]:
    """The loader's batches in groups of ``batches_per_step`` (this process's batches of one optimiser step)."""
    iterator = iter(loader)
    while group := list(itertools.islice(iterator, batches_per_step)):
        yield group


def utterances(batch: Dict) -> List[Dict]:
    """A padded batch of :class:`RecognitionDataset` as batches of one utterance each, unpadded."""
    return [{"features": batch["features"][i:i + 1, :int(batch["feature_lens"][i])],
             "feature_lens": batch["feature_lens"][i:i + 1],
             "targets": batch["targets"][i:i + 1, :int(batch["target_lens"][i])],
             "target_lens": batch["target_lens"][i:i + 1], "cut_ids": [cut_id]}
            for i, cut_id in enumerate(batch["cut_ids"])]


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
