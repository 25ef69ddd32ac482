"""Pruned vs full RNN-T loss: time and peak memory of forward + backward at TIMIT-like sizes.

Usage: python bench/rnnt_loss.py [--batch 8 --frames 300 --labels 80 --vocab 62 --prune-range 5 --results]

Both variants run asrkit.model.transducer.Transducer.forward (prediction network, simple loss, joiner, loss;
``loss="pruned"`` or ``"full"``) on synthetic encoder output: the encoder is an identity, since it costs the
same in both. Memory: torch's CPU allocations are invisible to tracemalloc, so each variant runs in a fresh
subprocess that reports its peak resident set size (``ru_maxrss``) minus its resident size just before the
first forward pass: the most memory the step itself ever held, allocator caching included.
"""

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Dict, Tuple

import torch
from torch import nn

from asrkit.config import TransducerConfig
from asrkit.model.decoder import Decoder
from asrkit.model.joiner import Joiner
from asrkit.model.transducer import Transducer
from report import add_common_options, median_seconds, parse_args, publish, table

VARIANTS = ("pruned", "full")


class IdentityEncoder(nn.Module):
    """Stands for the encoder: its input is already the encoder output (N, T, output_dim)."""

    def __init__(self, output_dim: int):
        super().__init__()
        self.output_dim = output_dim

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x, x_lens


def resident_mib() -> float:
    """This process's resident set size now, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def measure(args: argparse.Namespace) -> Dict[str, float]:
    """Median seconds of forward + backward of one variant and the peak memory it added, in MiB."""
    torch.manual_seed(0)
    model = Transducer(IdentityEncoder(args.encoder_dim), Decoder(args.vocab, args.decoder_dim, args.decoder_dim),
                       Joiner(args.encoder_dim, args.decoder_dim, args.joiner_dim, args.vocab), args.vocab)
    x = torch.randn(args.batch, args.frames, args.encoder_dim, requires_grad=True)
    x_lens = torch.randint(args.frames * 3 // 4, args.frames + 1, (args.batch,))
    x_lens[0] = args.frames
    y_lens = torch.clamp(x_lens * args.labels // args.frames, min=1)
    y = torch.randint(1, args.vocab, (args.batch, args.labels))

    def step() -> None:
        simple, transducer = model(x, x_lens, y, y_lens, prune_range=args.prune_range, loss=args.variant,
                                   am_scale=TransducerConfig.default("am_scale"),
                                   lm_scale=TransducerConfig.default("lm_scale"))
        (0.5 * simple + transducer).backward()

    before = resident_mib()
    seconds = median_seconds(step, args.repeats)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"seconds": seconds, "peak_mib": peak - before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="utterances per batch (default 8)")
    parser.add_argument("--frames", type=int, default=300, help="encoder frames T of the longest (default 300)")
    parser.add_argument("--labels", type=int, default=80, help="labels U of the longest (default 80 phones)")
    parser.add_argument("--vocab", type=int, default=62, help="tokens, blank included (default 62)")
    parser.add_argument("--encoder-dim", type=int, default=500, help="default 500: 2 x 250 as the paper's")
    parser.add_argument("--decoder-dim", type=int, default=250)
    parser.add_argument("--joiner-dim", type=int, default=250)
    parser.add_argument("--prune-range", type=int, default=5, help="asrkit's default")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", choices=VARIANTS, help="measure this one in this process, print JSON")
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.batch, args.frames, args.labels, args.repeats = 2, 100, 30, 2
    if args.variant:
        print(json.dumps(measure(args)))
        return

    results = {}
    for variant in VARIANTS:
        argv = [sys.executable, __file__, "--variant", variant] + [
            f"--{name.replace('_', '-')}={getattr(args, name)}" for name in
            ("batch", "frames", "labels", "vocab", "encoder_dim", "decoder_dim", "joiner_dim", "prune_range",
             "repeats", "threads")]
        output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        results[variant] = json.loads(output.splitlines()[-1])
    pruned, full = results["pruned"], results["full"]
    rows = [[v, r["seconds"] * 1e3, r["peak_mib"]] for v, r in results.items()]
    publish("bench/rnnt_loss.py" + (" --quick" if args.quick else ""), "Training: pruned vs full RNN-T loss",
            f"N={args.batch}, T={args.frames}, U={args.labels}, V={args.vocab}, encoder {args.encoder_dim}, "
            f"prediction network {args.decoder_dim}, joiner {args.joiner_dim}, prune range {args.prune_range}; "
            f"forward + backward of Transducer.forward (simple + transducer loss), median of {args.repeats}. "
            f"Peak memory: peak RSS of a fresh process per variant minus its RSS before the first step.\n\n"
            + table(["loss", "ms per step", "peak MiB"], rows)
            + f"\n\nfull / pruned: time **{full['seconds'] / pruned['seconds']:.2f}x**, "
            f"peak memory **{full['peak_mib'] / pruned['peak_mib']:.2f}x**.", args.results)


if __name__ == "__main__":
    main()
