"""Padding fraction of training batches: DynamicBucketingSampler (asrkit.training.train.training_sampler) vs plain shuffling.

Usage: python bench/padding.py [--cuts DEMO/data/features/cuts_train.jsonl.gz --max-duration 60 --epochs 3 --results]

A padded batch costs the LSTM N x T_max frames for sum(T_n) real ones; the padding fraction is
1 - sum(T_n) / (N x T_max) summed over an epoch's batches. Bucketing groups utterances of similar length;
SimpleCutSampler(shuffle=True) is plain shuffling into batches of the same ``max_duration`` (lhotse counts
it with padding, so more padding means more batches). The ratio printed is frames stepped through (padding
included) with shuffling / with bucketing: the encoder compute per epoch that bucketing saves.
"""

import argparse
from pathlib import Path
from typing import Iterable, Tuple

from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrkit.training.batches import training_sampler
from report import DEMO, add_common_options, parse_args, publish, read_cuts, table


def padded_frames(batches: Iterable[CutSet]) -> Tuple[int, int, int]:
    """(number of batches, real frames, frames of the padded batches) over ``batches``."""
    count, real, padded = 0, 0, 0
    for batch in batches:
        frames = [cut.num_frames for cut in batch]
        count += 1
        real += sum(frames)
        padded += len(frames) * max(frames)
    return count, real, padded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=Path, default=DEMO / "data/features/cuts_train.jsonl.gz",
                        help="training cut manifest with features (default: the demo's)")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds per batch (default 60, the demo's)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs (shuffles) averaged over (default 3)")
    parser.add_argument("--seed", type=int, default=42)
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.epochs = 1
    cuts = read_cuts(args.cuts)
    samplers = {
        "DynamicBucketingSampler (asrkit.training.train)":
            lambda epoch: training_sampler(cuts, args.max_duration, seed=args.seed, epoch=epoch, shards=[0],
                                           num_shards=1),
        "SimpleCutSampler, shuffled":
            lambda epoch: _epoch(SimpleCutSampler(cuts, max_duration=args.max_duration, shuffle=True,
                                                  seed=args.seed), epoch),
    }
    totals = {}
    for name, make in samplers.items():
        counts = [padded_frames(make(epoch)) for epoch in range(args.epochs)]
        totals[name] = tuple(sum(c[k] for c in counts) for k in range(3))
    rows = [[name, batches / args.epochs, 1 - real / padded, padded / real] for name, (batches, real, padded)
            in totals.items()]
    bucketed, shuffled = (totals[name][2] for name in samplers)
    publish("bench/padding.py" + (" --quick" if args.quick else ""), "Training: padding with bucketing vs shuffling",
            f"`{args.cuts}`: {len(cuts)} cuts, {sum(c.duration for c in cuts) / 3600:.2f} h; batches of up to "
            f"{args.max_duration:g} s, {args.epochs} epoch(s), seed {args.seed}.\n\n"
            + table(["sampler", "batches per epoch", "padding fraction", "frames stepped / real frames"], rows)
            + f"\n\nFrames the encoder steps through, shuffled / bucketed: **{shuffled / bucketed:.2f}x**.",
            args.results)


def _epoch(sampler: SimpleCutSampler, epoch: int) -> SimpleCutSampler:
    sampler.set_epoch(epoch)
    return sampler


if __name__ == "__main__":
    main()
