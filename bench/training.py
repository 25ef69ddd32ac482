"""Training speed: frames per second of the BiLSTM-CTC and the transducer, loader workers, LSTM FLOP/s vs matmul.

Usage: python bench/training.py [--cuts DEMO/data/features/cuts_train.jsonl.gz --ctc DEMO/exp/ctc/model.pt
       --transducer DEMO/exp/transducer/model.pt --batches 10 --results]

Frames per second: input frames (10 ms each) of real training batches (asrkit.training.train.make_loader, bucketed)
per wall second of asrkit.training.train's step: batch_loss (the transducer after warm-up: simple + pruned loss),
backward, gradient clipping, Adam. Models are built from the checkpoints' options (and weights). The step is
timed on batches already in memory, and end to end with the loader's ``num_workers`` 0 and 1: a worker
prepares the next batch (reading lilcom, deltas, normalising) while the model trains on this one.

FLOP/s: the encoder (fused bidirectional nn.LSTM as BiLstmEncoder runs it) forward + backward on a synthetic
batch, counted as 3 x the forward's 2 x 4H x (input + H) multiply-adds per step, direction and layer (the
elementwise gate work is left out), against this machine's torch.mm FLOP/s at three shapes: the
recurrent product of one step (N, H) x (H, 4H), the input projection of all steps (N T, I) x (I, 4H), and
a large square product.
"""

import argparse
import itertools
import time
from pathlib import Path
from typing import Dict, List

import torch

from asrkit.training.checkpoint import load_checkpoint, load_model
from asrkit.data.dataset import RecognitionDataset
from asrkit.config import TrainingConfig, TransducerConfig
from asrkit.training.train import batch_loss, make_loader, training_sampler
from report import DEMO, add_common_options, median_seconds, parse_args, publish, read_cuts, table

LATE_BATCH = 10 ** 9  # a batch index past the transducer's warm-up: the pruned loss counts fully


def train_steps(model: torch.nn.Module, batches, count: int) -> float:
    """Input frames per wall second over ``count`` training steps on ``batches`` (an iterable)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    frames = 0
    start = time.perf_counter()
    for batch in itertools.islice(batches, count):
        loss = batch_loss(model, batch, TransducerConfig.from_dict({}), LATE_BATCH)
        optimizer.zero_grad()
        (loss / len(batch["cut_ids"])).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), TrainingConfig.default("grad_clip"))
        optimizer.step()
        frames += int(batch["feature_lens"].sum())
    return frames / (time.perf_counter() - start)


def frames_per_second(args: argparse.Namespace) -> List[List[object]]:
    """Rows: model, frames/s in memory, frames/s with 0 and 1 loader workers, worker speed-up."""
    cuts = read_cuts(args.cuts)
    rows = []
    for kind, path in (("CTC", args.ctc), ("transducer", args.transducer)):
        if not path.exists():
            rows.append([kind, f"skipped: no {path}", "", "", ""])
            continue
        checkpoint = load_checkpoint(path)
        dataset = RecognitionDataset.for_model(checkpoint)
        model = load_model(path).train()

        def loader(workers: int):
            sampler = training_sampler(cuts, args.max_duration, seed=0, epoch=1, shards=[0], num_shards=1)
            return make_loader(dataset, sampler, seed=0, num_workers=workers, epoch=1)
        in_memory = list(itertools.islice(loader(0), args.batches + 1))
        train_steps(model, in_memory[:1], 1)  # warm-up
        speeds = [train_steps(model, in_memory[1:], args.batches)]
        speeds += [train_steps(model, iter(loader(workers)), args.batches) for workers in (0, 1)]
        rows.append([kind, *speeds, speeds[2] / speeds[1]])
    return rows


def lstm_flops(args: argparse.Namespace) -> Dict[str, float]:
    """Achieved FLOP/s of the CTC model's encoder's training pass and torch.mm's FLOP/s at three shapes."""
    options = load_checkpoint(args.ctc)["model_options"]
    hidden, layers = options["hidden_size"], options["num_layers"]
    encoder = load_model(args.ctc).encoder.train()
    input_dim = encoder.lstm.input_size
    n, steps = args.flops_batch, args.flops_steps
    x = torch.randn(n, steps * encoder.stack_frames, input_dim // encoder.stack_frames, requires_grad=True)
    lens = torch.full((n,), x.size(1))
    seconds = median_seconds(lambda: encoder(x, lens)[0].sum().backward(), args.repeats)
    per_step = sum(2 * 4 * hidden * ((input_dim if k == 0 else 2 * hidden) + hidden) for k in range(layers))
    achieved = 3 * per_step * 2 * n * steps / seconds  # x 2 directions

    def mm_flops(m: int, k: int, cols: int) -> float:
        a, b = torch.randn(m, k), torch.randn(k, cols)
        repeats = max(3, int(2e8 / (m * k * cols)))  # about 0.1 s of work or more
        return 2 * m * k * cols * repeats / median_seconds(lambda: [torch.mm(a, b) for _ in range(repeats)], 3)
    return {"LSTM training pass": achieved,
            f"mm ({n}, {hidden}) x ({hidden}, {4 * hidden}): one recurrent step": mm_flops(n, hidden, 4 * hidden),
            f"mm ({n * steps}, {input_dim}) x ({input_dim}, {4 * hidden}): input projection":
                mm_flops(n * steps, input_dim, 4 * hidden),
            "mm (1024, 1024) x (1024, 1024)": mm_flops(1024, 1024, 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=Path, default=DEMO / "data/features/cuts_train.jsonl.gz",
                        help="training cut manifest with features (default: the demo's)")
    parser.add_argument("--ctc", type=Path, default=DEMO / "exp/ctc/model.pt", help="CTC model.pt (its options)")
    parser.add_argument("--transducer", type=Path, default=DEMO / "exp/transducer/model.pt")
    parser.add_argument("--max-duration", type=float, default=60.0, help="seconds per batch (default 60, the demo's)")
    parser.add_argument("--batches", type=int, default=10, help="training steps timed per figure (default 10)")
    parser.add_argument("--flops-batch", type=int, default=20, help="utterances in the FLOP/s batch (default 20)")
    parser.add_argument("--flops-steps", type=int, default=100,
                        help="LSTM steps (after frame stacking) in the FLOP/s batch (default 100: 3 s at stack 3)")
    parser.add_argument("--repeats", type=int, default=5)
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.batches, args.repeats, args.flops_steps = 2, 2, 30
    rows = frames_per_second(args)
    flops = lstm_flops(args)
    peak = flops["mm (1024, 1024) x (1024, 1024)"]
    publish("bench/training.py" + (" --quick" if args.quick else ""), "Training: frames per second and FLOP/s",
            f"`{args.cuts}`, bucketed batches of up to {args.max_duration:g} s, {args.batches} steps per figure; "
            f"models from `{args.ctc}` and `{args.transducer}`.\n\n"
            + table(["model", "frames/s, batches in memory", "frames/s, loader 0 workers", "frames/s, 1 worker",
                     "1 worker / 0 workers"], rows)
            + f"\n\nEncoder FLOP/s (median of {args.repeats}; {args.flops_batch} utterances x {args.flops_steps} "
            "LSTM steps):\n\n"
            + table(["what", "GFLOP/s", "share of the large mm"], [[k, v / 1e9, v / peak] for k, v in flops.items()]),
            args.results)


if __name__ == "__main__":
    main()
