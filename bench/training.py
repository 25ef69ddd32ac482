"""Training speed: the encoder against a bare LSTM, frames/s of the BiLSTM-CTC and the transducer, LSTM FLOP/s.

Usage: python bench/training.py [--cuts DEMO/data/features/cuts_train.jsonl.gz --ctc DEMO/exp/ctc/model.pt
       --transducer DEMO/exp/transducer/model.pt --batches 10 --device cpu --results]

The encoder against the bare LSTM: asrkit's BiLstmEncoder (the module both the CTC model and the transducers
train) forward + backward on real bucketed training batches, against torch's ``nn.LSTM`` of the same size on
the same (frame-stacked) padded batches, at the paper's shape (3 x 250, no stacking) and the demo's
(2 x 128, 3 frames stacked), each with its config's dropout, in training mode. Also timed: the encoder's
other path (packed on the CPU, the path it took before issue 14; padded on CUDA), so that the choice of
path per device is measured. Real frames/s: unpadded input frames (10 ms) per wall second.

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
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.data.dataset import RecognitionDataset
from asrkit.config import TrainingConfig, TransducerConfig
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.frame_stacking import stack_frames
from asrkit.training.batches import make_loader, training_sampler
from asrkit.training.step import batch_loss
from report import DEMO, add_common_options, median_seconds, parse_args, publish, read_cuts, table

LATE_BATCH = 10 ** 9  # a batch index past the transducer's warm-up: the pruned loss counts fully
#: encoder shapes timed against the bare LSTM: name, layers, hidden size, frames stacked, dropout (the configs')
SHAPES = [("paper: 3 x 250, no stacking", 3, 250, 1, 0.0), ("demo: 2 x 128, 3 frames stacked", 2, 128, 3, 0.2)]


def synchronized(device: torch.device, step: Callable[[], object]) -> Callable[[], None]:
    """``step`` followed by waiting for the device, so that its wall time covers the device's work."""
    def run() -> None:
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return run


def encoder_against_bare_lstm(args: argparse.Namespace) -> List[List[object]]:
    """Rows: shape, what, real frames/s, ratio to the bare LSTM. Variants alternate within each repeat, so that
    all see the same load; the median of ``args.repeats`` passes over ``args.encoder_batches`` batches."""
    path = args.ctc if args.ctc.exists() else args.transducer
    dataset = RecognitionDataset.for_model(load_checkpoint(path))  # features with deltas, normalised
    sampler = training_sampler(read_cuts(args.cuts), args.max_duration, seed=0, epoch=1, shards=[0], num_shards=1)
    device = torch.device(args.device)
    batches: List[Tuple[torch.Tensor, torch.Tensor]] = [
        (batch["features"].to(device), batch["feature_lens"])
        for batch in itertools.islice(make_loader(dataset, sampler, seed=0, num_workers=0, epoch=1), args.encoder_batches)]
    real_frames = sum(int(lens.sum()) for _, lens in batches)
    other_path = "padded" if device.type == "cuda" else "packed"
    rows = []
    for name, layers, hidden, stack, dropout in SHAPES:
        torch.manual_seed(0)
        encoder = BiLstmEncoder(batches[0][0].size(2), hidden, layers, stack, dropout).to(device).train()
        bare = nn.LSTM(encoder.lstm.input_size, hidden, layers, batch_first=True, bidirectional=True,
                       dropout=dropout).to(device).train()
        stacked = [stack_frames(x, lens, encoder.stack_frames) for x, lens in batches]
        other = getattr(encoder.lstm, f"_{other_path}")
        variants = {"bare padded nn.LSTM": lambda: [bare(x)[0].sum().backward() for x, _ in stacked],
                    "BiLstmEncoder": lambda: [encoder(x, lens)[0].sum().backward() for x, lens in batches],
                    f"its {other_path} path": lambda: [other(x, lens).sum().backward() for x, lens in stacked]}
        times: Dict[str, List[float]] = {variant: [] for variant in variants}
        for _ in range(args.repeats):
            for variant, step in variants.items():
                times[variant].append(median_seconds(synchronized(device, step), 1, warmup=0 if times[variant] else 1))
        seconds = {variant: sorted(values)[len(values) // 2] for variant, values in times.items()}
        base = seconds["bare padded nn.LSTM"]
        rows += [[name, variant, real_frames / value, base / value] for variant, value in seconds.items()]
    return rows


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
    """Achieved FLOP/s of the recipe's encoder's training pass (the CTC model's, else the transducer's) and
    torch.mm's FLOP/s at three shapes."""
    path = args.ctc if args.ctc.exists() else args.transducer  # the same encoder options in a recipe
    options = load_checkpoint(path)["model_options"]
    hidden, layers = options["hidden_size"], options["num_layers"]
    encoder = load_model(path).encoder.train()
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
    parser.add_argument("--encoder-batches", type=int, default=3,
                        help="batches per pass of the encoder against the bare LSTM (default 3)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu",
                        help="device of the encoder against the bare LSTM, e.g. cuda (default cpu); the other "
                        "sections run on the CPU")
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.batches, args.encoder_batches, args.repeats, args.flops_steps = 2, 1, 2, 30
    encoder_rows = encoder_against_bare_lstm(args)
    body = (f"`{args.cuts}`, bucketed batches of up to {args.max_duration:g} s.\n\n"
            f"The encoder against the bare LSTM, forward + backward on {args.device}, {args.encoder_batches} "
            f"batches, median of {args.repeats} passes:\n\n"
            + table(["shape", "what", "real frames/s", "/ bare LSTM"], encoder_rows))
    rows = frames_per_second(args)
    flops = lstm_flops(args)
    peak = flops["mm (1024, 1024) x (1024, 1024)"]
    publish("bench/training.py" + (" --quick" if args.quick else ""), "Training: frames per second and FLOP/s",
            body + f"\n\nTraining steps, {args.batches} per figure; models from `{args.ctc}` and "
            f"`{args.transducer}`:\n\n"
            + table(["model", "frames/s, batches in memory", "frames/s, loader 0 workers", "frames/s, 1 worker",
                     "1 worker / 0 workers"], rows)
            + f"\n\nEncoder FLOP/s (median of {args.repeats}; {args.flops_batch} utterances x {args.flops_steps} "
            "LSTM steps):\n\n"
            + table(["what", "GFLOP/s", "share of the large mm"], [[k, v / 1e9, v / peak] for k, v in flops.items()]),
            args.results)


if __name__ == "__main__":
    main()
