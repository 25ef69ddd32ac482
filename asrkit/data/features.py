"""Stage 2: acoustic features with kaldifeat (through lhotse), stored with lhotse; deltas and global CMVN.

Static features (40 mel bands + energy by default, or MFCC) are computed once and stored compressed with
lhotse's ``LilcomChunkyWriter`` next to a cut manifest per split. Deltas, delta-deltas and the global
mean/variance normalisation (statistics from the training set) are applied when batches are built: they
cost little and keep the stored features three times smaller.

A split can be computed in shards (``--shard 2-of-4``: the second quarter of its cuts, sorted by ID), which
run as separate jobs, e.g. on a SLURM cluster, and ``merge`` joins their manifests. Every cut's features are
the same whatever the number of shards: each is computed from its own recording alone.

The train split may be augmented (``augmentation`` section, :mod:`asrkit.data.augmentation`): its manifest then
holds the original cuts and their augmented copies, whose features are stored like the others'. The copies are
made before the split is sharded, from the whole split, so a copy too is the same whatever the shards. The
global statistics are those of the original cuts alone, so that dev and test are normalised as without
augmentation.

Each shard's archives are recorded (size, SHA-256) beside them, and checked before training and decoding read
them (:mod:`asrkit.data.feature_archives`).

Run as ``python -m asrkit.data.features compute|merge|stats ...``; the recipe's Snakemake rules do.
"""

import argparse
import errno
import logging
import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from lhotse import CutSet, LilcomChunkyWriter, RecordingSet, SupervisionSet
from lhotse.features.base import FeatureExtractor
from lhotse.features.kaldifeat import KaldifeatFbank, KaldifeatFbankConfig, KaldifeatMfcc, KaldifeatMfccConfig
from lhotse.features.kaldifeat import KaldifeatMelOptions

from asrkit import config
from asrkit.config import AugmentationConfig, FeatureConfig
from asrkit.data.augmentation import augment, features_only, is_augmented
from asrkit.data.feature_archives import record_archives
from asrkit.io import atomic_output
from asrkit.progress import progress_bar

DELTA_WINDOW = 2  # Kaldi's add-deltas default
#: errors of writing, not of reading: a full disk or quota, a file size limit, no permission, a read-only disk
WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EROFS}
#: Audio seconds each feature worker process must have, or fewer workers are used. A spawned worker imports
#: torch, lhotse and kaldifeat (about 1.8 s on 2 cores; two start side by side in about the same time) while one
#: job reads, computes and stores about 900 audio seconds a second (bench/features.py): a second worker pays off
#: from about 2 x 1.8 x 900 s of audio, and at the demo's dev and test size it made the stage 5x slower.
MIN_SECONDS_PER_JOB = 1800.0


class FeatureWriteError(OSError):
    """Features could not be stored; the message names the outputs and the system's reason."""


def make_extractor(features: FeatureConfig) -> FeatureExtractor:
    """A kaldifeat extractor: log mel filterbank (+ log energy) or MFCC, 25 ms windows every 10 ms."""
    mel = KaldifeatMelOptions(num_bins=features.num_mel_bins)
    if features.type == "fbank":
        return KaldifeatFbank(KaldifeatFbankConfig(mel_opts=mel, use_energy=features.use_energy))
    if features.type == "mfcc":
        return KaldifeatMfcc(KaldifeatMfccConfig(mel_opts=mel, num_ceps=features.num_ceps,
                                                 use_energy=features.use_energy))
    raise ValueError(f"unknown feature type {features.type!r}: expected 'fbank' or 'mfcc'")


def input_dim(features: FeatureConfig) -> int:
    """Dimension of the network's input: static features, times three with deltas."""
    static = features.num_mel_bins + int(features.use_energy) if features.type == "fbank" else features.num_ceps
    return static * (3 if features.deltas else 1)


def parse_shard(shard: str) -> Tuple[int, int]:
    """``'2-of-4'`` -> ``(2, 4)``: the second of four shards (numbered from 1)."""
    match = re.fullmatch(r"(\d+)-of-(\d+)", shard)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise ValueError(f"bad shard {shard!r}: expected I-of-N with 1 <= I <= N, e.g. '2-of-4'")
    return int(match.group(1)), int(match.group(2))


def select_shard(cuts: CutSet, index: int, num_shards: int) -> CutSet:
    """The ``index``-th (from 1) of ``num_shards`` contiguous, near-equal parts of ``cuts`` sorted by ID.

    Sorting makes the shards independent of the manifest's order; a split with fewer cuts than shards leaves
    some shards empty.
    """
    ordered = sorted(cuts, key=lambda c: c.id)
    return CutSet.from_cuts(ordered[(index - 1) * len(ordered) // num_shards:index * len(ordered) // num_shards])


def choose_num_jobs(audio_seconds: float, max_jobs: int, min_seconds_per_job: float = MIN_SECONDS_PER_JOB) -> int:
    """How many processes compute features for ``audio_seconds`` of audio: at most ``max_jobs``, and few enough
    that each gets at least ``min_seconds_per_job`` of it; always at least one."""
    if min_seconds_per_job <= 0:
        return max_jobs
    return max(1, min(max_jobs, int(audio_seconds // min_seconds_per_job)))


@contextmanager
def one_thread_workers(num_jobs: int) -> Iterator[Optional[ProcessPoolExecutor]]:
    """lhotse's feature workers, each with one torch thread (None for one job: lhotse then works in-process).

    lhotse's own pool spawns workers with torch's default of one thread per core: num_jobs workers on as many
    cores then fight over them, several times slower than one thread each (bench/features.py measures it).
    """
    if num_jobs <= 1:
        yield None
        return
    with ProcessPoolExecutor(num_jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(1,)) as executor:
        yield executor


def compute_features(recordings: Path, supervisions: Path, cuts_path: Path, storage_dir: Path,
                     features: FeatureConfig, num_jobs: int = 1, shard: Tuple[int, int] = (1, 1),
                     min_seconds_per_job: float = MIN_SECONDS_PER_JOB,
                     augmentation: Optional[AugmentationConfig] = None, seed: Optional[int] = None) -> CutSet:
    """Compute and store features for one split, or one shard ``(index, num_shards)`` of it; write its cut
    manifest atomically. Up to ``num_jobs`` processes compute them, each with at least ``min_seconds_per_job``
    of audio (:func:`choose_num_jobs`; 0: exactly ``num_jobs``).

    ``augmentation`` (the train split's; its random choices drawn from ``seed``) adds augmented copies of the
    cuts before the shard is chosen; the copies are stored as their features alone
    (:func:`asrkit.data.augmentation.features_only`).

    The storage and the cut manifest (which points at the final storage) are both written under temporary
    names first and renamed only once both are complete, the storage first: a manifest on disk always refers
    to complete features, and a failed write (full disk, no permission) leaves the earlier ones as they were.
    """
    cuts = CutSet.from_manifests(
        recordings=RecordingSet.from_file(recordings), supervisions=SupervisionSet.from_file(supervisions)
    ).to_eager()
    if augmentation is not None and augmentation.enabled:
        if seed is None:
            raise ValueError("augmentation needs a seed (--seed) for its random choices")
        cuts = augment(cuts, augmentation, seed)
    cuts = select_shard(cuts, *shard)
    audio_seconds = sum(cut.duration for cut in cuts)
    num_jobs = choose_num_jobs(audio_seconds, num_jobs, min_seconds_per_job)
    extractor = make_extractor(features)
    try:
        # the inner (storage) is renamed into place first, then the outer (manifest)
        with atomic_output(cuts_path) as tmp_cuts, atomic_output(storage_dir) as tmp_storage:
            tmp_storage.mkdir()
            torch.set_num_threads(1)  # one thread per job: parallelism comes from num_jobs
            # lhotse writes feats.lca with one job and feats/feats-<i>.lca with several: both inside tmp_storage
            if len(cuts):  # an empty shard stores nothing
                with one_thread_workers(num_jobs) as executor:
                    cuts = cuts.compute_and_store_features(
                        extractor=extractor, storage_path=tmp_storage / "feats", num_jobs=num_jobs,
                        storage_type=LilcomChunkyWriter, executor=executor,
                    )
            record_archives(tmp_storage)
            cuts = CutSet.from_cuts(sorted((features_only(_relocate_storage(c, tmp_storage, storage_dir))
                                            for c in cuts), key=lambda c: c.id))
            cuts.to_file(tmp_cuts)
    except OSError as e:
        if e.errno not in WRITE_ERRORS:
            raise
        raise FeatureWriteError(
            f"could not write the features to {storage_dir} and {cuts_path}: {e.strerror or e}; "
            f"nothing was replaced: any earlier {storage_dir} and {cuts_path} are as they were") from e
    num_copies = sum(map(is_augmented, cuts))
    logging.info(f"{len(cuts)} cuts ({num_copies} of them augmented copies; {audio_seconds:.0f} s of audio, "
                 f"{num_jobs} job(s)), {extractor.name} features -> {storage_dir}, manifest -> {cuts_path}")
    return cuts


def _relocate_storage(cut, old: Path, new: Path):
    cut.features.storage_path = str(new / Path(cut.features.storage_path).relative_to(old))
    return cut


def merge_shards(shard_paths: List[Path], cuts_path: Path) -> CutSet:
    """Join the cut manifests of a split's shards into one, sorted by cut ID, written atomically.

    The cuts keep pointing at their shards' storage. A cut in two shards is an error naming both files.
    """
    merged: Dict[str, Any] = {}
    source: Dict[str, Path] = {}
    for path in shard_paths:
        for cut in CutSet.from_file(path) or []:  # lhotse reads an empty shard's manifest as None
            if cut.id in merged:
                raise ValueError(f"cut {cut.id} is in two shards: {source[cut.id]} and {path}")
            merged[cut.id], source[cut.id] = cut, path
    cuts = CutSet.from_cuts(merged[cut_id] for cut_id in sorted(merged))
    with atomic_output(cuts_path) as tmp:
        cuts.to_file(tmp)
    logging.info(f"{len(cuts)} cuts of {len(shard_paths)} shards -> {cuts_path}")
    return cuts


def add_deltas(features: torch.Tensor, window: int = DELTA_WINDOW) -> torch.Tensor:
    """Append deltas and delta-deltas exactly as Kaldi's ``add-deltas`` does.

    Kaldi filters the edge-replicated input once with the delta window for the deltas, and once with that
    window convolved with itself for the delta-deltas; filtering the first-order output (computed on a
    wider, replicated range) again with the delta window is the same thing.
    features: (T, D) -> (T, 3 * D)
    """
    denominator = 2 * sum(n * n for n in range(1, window + 1))
    weights = torch.arange(-window, window + 1, dtype=features.dtype) / denominator
    padded = torch.cat([features[:1].expand(2 * window, -1), features, features[-1:].expand(2 * window, -1)])
    first = padded.unfold(0, 2 * window + 1, 1) @ weights  # (T + 2w, D): deltas, w frames beyond each edge
    second = first.unfold(0, 2 * window + 1, 1) @ weights  # (T, D)
    return torch.cat([features, first[window:-window], second], dim=1)


def expand_features(static: torch.Tensor, features: FeatureConfig) -> torch.Tensor:
    """The network's input frames before normalisation: static features, plus deltas if configured."""
    return add_deltas(static) if features.deltas else static


def compute_global_stats(cuts: CutSet, features: FeatureConfig, stats_path: Path) -> Dict[str, torch.Tensor]:
    """Mean and standard deviation of the network's input over a (training) cut set, saved atomically.

    The augmented copies of an augmented training set are left out: the statistics are those of the original
    cuts, as without augmentation, since they normalise dev and test too.
    """
    total, total_sq, count = None, None, 0
    originals = [cut for cut in cuts if not is_augmented(cut)]
    for cut in progress_bar(originals, desc="global mean/variance", unit="cut"):
        frames = expand_features(torch.from_numpy(cut.load_features()).double(), features)
        total = frames.sum(0) if total is None else total + frames.sum(0)
        total_sq = (frames ** 2).sum(0) if total_sq is None else total_sq + (frames ** 2).sum(0)
        count += frames.shape[0]
    mean = total / count
    std = (total_sq / count - mean ** 2).clamp_min(1e-10).sqrt()
    stats = {"mean": mean.float(), "std": std.float(), "num_frames": torch.tensor(count)}
    with atomic_output(stats_path) as tmp:
        torch.save(stats, tmp)
    logging.info(f"statistics of {count} frames of the original cuts ({mean.numel()} dims) -> {stats_path}")
    return stats


def load_stats(stats_path: Path) -> Dict[str, torch.Tensor]:
    return torch.load(stats_path, weights_only=True)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    compute = sub.add_parser("compute", help="compute and store features of one split")
    compute.add_argument("--recordings", type=Path, required=True)
    compute.add_argument("--supervisions", type=Path, required=True)
    compute.add_argument("--cuts", type=Path, required=True, help="cut manifest to write")
    compute.add_argument("--storage-dir", type=Path, required=True, help="where the feature matrices go")
    compute.add_argument("--num-jobs", type=int, default=1,
                         help="processes computing features, at most (default: 1); fewer for a small split")
    compute.add_argument("--min-seconds-per-job", type=float, default=MIN_SECONDS_PER_JOB,
                         help=f"audio seconds each process must have, or fewer are used (default: {MIN_SECONDS_PER_JOB:g}, "
                              f"where a second worker starts to pay off; 0: exactly --num-jobs)")
    compute.add_argument("--shard", type=parse_shard, default=(1, 1), metavar="I-of-N",
                         help="compute only the I-th of N parts of the split's cuts, sorted by ID (default: 1-of-1)")
    config.add_top_level_flag(compute, "seed", required=False)  # only an augmentation reads it
    config.add_flags(compute, AugmentationConfig)
    merge = sub.add_parser("merge", help="join the cut manifests of a split's shards")
    merge.add_argument("--shards", type=Path, nargs="+", required=True, help="the shards' cut manifests")
    merge.add_argument("--cuts", type=Path, required=True, help="cut manifest to write")
    stats = sub.add_parser("stats", help="global mean/variance of the network input over a cut set")
    stats.add_argument("--cuts", type=Path, required=True)
    stats.add_argument("--output", type=Path, required=True)
    for p in (compute, stats):  # the shards are --shard's
        config.add_flags(p, FeatureConfig, leave_out=FeatureConfig.run_only_keys())
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [features] %(message)s")
    if args.command == "compute":
        if config.from_flags(args, AugmentationConfig).enabled and args.seed is None:
            parser.error("--augmentation.* needs --seed: it seeds the augmentation's random choices")
        try:
            compute_features(args.recordings, args.supervisions, args.cuts, args.storage_dir,
                             config.from_flags(args, FeatureConfig), args.num_jobs, args.shard,
                             args.min_seconds_per_job, config.from_flags(args, AugmentationConfig), args.seed)
        except FeatureWriteError as e:
            raise SystemExit(f"error: {e}")
    elif args.command == "merge":
        try:
            merge_shards(args.shards, args.cuts)
        except ValueError as e:
            raise SystemExit(f"error: {e}")
    else:
        compute_global_stats(CutSet.from_file(args.cuts), config.from_flags(args, FeatureConfig), args.output)


if __name__ == "__main__":
    main()
