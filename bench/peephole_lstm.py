"""Time forward + backward of PeepholeLstm against torch's fused nn.LSTM of the same size on the CPU.

Usage: python bench/peephole_lstm.py [--batch 16 --frames 100 --input 123 --hidden 128 --layers 2 --threads 1]
Prints the median time per forward + backward of each and their ratio. The fused LSTM is timed both on the
padded batch and packed (how BiLstmEncoder runs it on CUDA); sequence lengths are random in [frames/2, frames].
"""

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.model.peephole_lstm import PeepholeLstm


def median_seconds(step: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median wall time of ``step().sum().backward()`` over ``repeats`` runs, after one warm-up run."""
    times = []
    for k in range(repeats + 1):
        start = time.perf_counter()
        step().sum().backward()
        if k > 0:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--input", type=int, default=123)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    x = torch.randn(args.batch, args.frames, args.input, requires_grad=True)
    lens = torch.randint(args.frames // 2, args.frames + 1, (args.batch,))
    lens[0] = args.frames
    peephole = PeepholeLstm(args.input, args.hidden, args.layers)
    fused = nn.LSTM(args.input, args.hidden, num_layers=args.layers, batch_first=True, bidirectional=True)

    def fused_packed() -> torch.Tensor:
        packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(fused(packed)[0], batch_first=True)[0]

    timings = {
        "PeepholeLstm": median_seconds(lambda: peephole(x, lens), args.repeats),
        "nn.LSTM padded": median_seconds(lambda: fused(x)[0], args.repeats),
        "nn.LSTM packed": median_seconds(fused_packed, args.repeats),
    }
    print(f"N={args.batch} T={args.frames} C={args.input} H={args.hidden} layers={args.layers} bidirectional, "
          f"{args.threads} thread(s); median of {args.repeats} forward+backward passes")
    for name, seconds in timings.items():
        print(f"{name:16s} {seconds * 1e3:8.1f} ms")
    for name in ("nn.LSTM padded", "nn.LSTM packed"):
        print(f"PeepholeLstm / {name}: {timings['PeepholeLstm'] / timings[name]:.2f}")


if __name__ == "__main__":
    main()
