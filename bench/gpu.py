"""GPU training and decoding speed at the paper's sizes, on a TIMIT-size corpus of random features.

Usage: python bench/gpu.py [--device cuda] [--batches 40] [--quick] [--results]

The corpus: 3696 utterances (TIMIT's training set), lengths drawn from a normal distribution with TIMIT's mean
(3.03 s) and spread (0.9 s, clipped to 1-7.8 s), about 3.1 h in all; 123 random input features per 10 ms frame,
12.5 phones per second as labels (61 tokens with blank). Batches of up to ``max_duration`` 60 s of audio,
utterances of similar length together (as the recipe's bucketing sampler makes them).

Seconds per epoch: ``--batches`` batches drawn at random from the epoch are each trained as asrkit.training.train
trains (its optimizer_step: autocast, and loss scaling for float16, backward, gradient clipping, Adam step), in
float32 and in both amp dtypes (the CPU: float32 and bfloat16); the time
per input frame, times the epoch's frames, is the epoch's time. The tensors are on the device already: data
loading (lilcom reads, a loader worker) is not counted. Models: CTC-3L-250H and TRANS-3L-250H (3 x 250
bidirectional LSTM, a one-layer 250 prediction network and a 250 joiner; pruned RNN-T loss after warm-up).
GPU/CPU: the same CTC training step on this machine's CPU (all its cores), on a few batches.

Pruned vs full RNN-T loss: forward + backward of the transducer on one batch of the longest bucket, time and
peak memory (CUDA: torch.cuda.max_memory_allocated; on the CPU no memory is measured).
Decoding: greedy search, batched, on 400 utterances (TIMIT's dev set size): real-time factor.
"""

import argparse
import math
import os
import random
import statistics
import time
from typing import Dict, List, Optional, Tuple

import torch

from asrkit.config import TrainingConfig, TransducerConfig
from asrkit.model.registry import build_model
from asrkit.search.searches import search
from asrkit.training.step import Precision, TrainingLoss, optimizer_step
from report import add_common_options, parse_args, publish, table

INPUT_DIM, VOCAB = 123, 62  # 40 fbank + energy with deltas; blank + 61 TIMIT phones
FRAMES_PER_SECOND, PHONES_PER_SECOND = 100, 12.5
PAPER_EPOCHS = 124  # CTC-3L-250H's schedule in the paper
LATE_BATCH = 10 ** 9  # past the transducer's warm-up: the pruned loss counts fully
ENCODER = {"num_layers": 3, "hidden_size": 250, "stack_frames": 1, "dropout": 0.0}
MODELS = {"CTC-3L-250H": {"type": "ctc", **ENCODER},
          "TRANS-3L-250H": {"type": "transducer", **ENCODER, "decoder_embedding_dim": 250,
                            "decoder_hidden_size": 250, "decoder_num_layers": 1, "joiner_dim": 250}}


def timit_lengths(count: int, seed: int) -> List[int]:
    """Utterance lengths in frames, TIMIT-like: mean 3.03 s, sd 0.9 s, within 1-7.8 s."""
    rng = random.Random(seed)
    return [int(min(7.8, max(1.0, rng.gauss(3.03, 0.9))) * FRAMES_PER_SECOND) for _ in range(count)]


def make_batches(lengths: List[int], max_duration: float) -> List[List[int]]:
    """Lengths grouped into batches of at most ``max_duration`` seconds, similar lengths together."""
    batches, batch = [], []
    for n in sorted(lengths):
        if batch and (len(batch) + 1) * n / FRAMES_PER_SECOND > max_duration:  # padded to the longest
            batches.append(batch)
            batch = []
        batch.append(n)
    return batches + [batch]


def make_batch(lengths: List[int], device: torch.device) -> Dict[str, torch.Tensor]:
    """Random features and labels of a batch, in the form asrkit's dataset gives them."""
    labels = [max(1, int(n / FRAMES_PER_SECOND * PHONES_PER_SECOND)) for n in lengths]
    return {"features": torch.randn(len(lengths), max(lengths), INPUT_DIM, device=device),
            "feature_lens": torch.tensor(lengths, device=device),
            "targets": torch.randint(1, VOCAB, (len(lengths), max(labels)), device=device),
            "target_lens": torch.tensor(labels, device=device), "cut_ids": [str(i) for i in range(len(lengths))]}


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def epoch_seconds(model_options: Dict, batches: List[List[int]], sample: List[List[int]], device: torch.device,
                  amp: Optional[str]) -> Tuple[float, int]:
    """Seconds per epoch of ``batches``, from training steps on ``sample`` (after one warm-up step), in
    precision ``amp`` (None: float32; float16 or bfloat16: ``training.amp``); and the number of steps timed."""
    torch.manual_seed(0)
    model = build_model(model_options, INPUT_DIM, VOCAB).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    training = TrainingConfig.from_dict({"num_epochs": 1, "max_duration": 60, "amp": amp or False})
    precision, net = Precision.of(training, device), TrainingLoss(model, TransducerConfig.from_dict({}))

    def step(lengths: List[int]) -> None:  # the training's own step
        optimizer_step(net, model, optimizer, precision, [make_batch(lengths, device)], device, LATE_BATCH,
                       TrainingConfig.default("grad_clip"))

    step(sample[0])  # cuDNN's plans, the allocator's pools
    synchronise(device)
    start = time.perf_counter()
    for lengths in sample:
        step(lengths)
    synchronise(device)
    seconds_per_frame = (time.perf_counter() - start) / sum(len(b) * max(b) for b in sample)  # padded frames
    return seconds_per_frame * sum(len(b) * max(b) for b in batches), len(sample)


def loss_step(variant: str, lengths: List[int], device: torch.device, repeats: int) -> Tuple[float, float]:
    """Median seconds of forward + backward of TRANS-3L-250H with the pruned or the full loss on one batch,
    and the peak memory it took on the GPU in MiB (nan on the CPU)."""
    torch.manual_seed(0)
    model = build_model(MODELS["TRANS-3L-250H"], INPUT_DIM, VOCAB).to(device).train()
    batch = make_batch(lengths, device)
    loss = TransducerConfig.from_dict({"loss": variant})  # the recipe's loss settings, with the schema's defaults

    def step() -> None:
        simple, transducer = model(batch["features"], batch["feature_lens"], batch["targets"], batch["target_lens"],
                                   prune_range=loss.prune_range, am_scale=loss.am_scale, lm_scale=loss.lm_scale,
                                   loss=loss.loss)
        (0.5 * simple + transducer).backward()
        synchronise(device)

    step()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20 if device.type == "cuda" else math.nan
    return statistics.median(times), peak


def decoding_rtf(model_options: Dict, lengths: List[int], max_duration: float, device: torch.device) -> float:
    """Real-time factor of batched greedy search over utterances of ``lengths`` (untrained weights: the
    search's work per frame does not depend on them much; the transducer's on how many labels it emits)."""
    model = build_model(model_options, INPUT_DIM, VOCAB).to(device).eval()
    batches = make_batches(lengths, max_duration)
    with torch.no_grad():
        search(model, "greedy", 1, *(make_batch(batches[0], device)[k] for k in ("features", "feature_lens")))
        synchronise(device)
        start = time.perf_counter()
        for lengths_ in batches:
            batch = make_batch(lengths_, device)
            search(model, "greedy", 1, batch["features"], batch["feature_lens"])
        synchronise(device)
    return (time.perf_counter() - start) / (sum(lengths) / FRAMES_PER_SECOND)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="default cuda")
    parser.add_argument("--batches", type=int, default=40, help="training steps timed per measurement (default 40)")
    parser.add_argument("--cpu-batches", type=int, default=2, help="CTC steps timed on the CPU (default 2)")
    parser.add_argument("--utterances", type=int, default=3696, help="the corpus (default 3696, TIMIT's train)")
    parser.add_argument("--max-duration", type=float, default=60, help="seconds of audio per batch (default 60)")
    add_common_options(parser)
    parser.set_defaults(threads=os.cpu_count())  # a GPU machine is the bench's own: all cores for the CPU figure
    args = parse_args(parser)
    if args.quick:
        args.batches, args.cpu_batches, args.utterances, args.max_duration = 2, 1, 200, 10
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda: torch finds no CUDA GPU here (--device cpu --quick for a smoke run)")
    card = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lengths = timit_lengths(args.utterances, seed=0)
    batches = make_batches(lengths, args.max_duration)
    rng = random.Random(1)
    sample = rng.sample(batches, min(args.batches, len(batches)))
    audio_hours = sum(lengths) / FRAMES_PER_SECOND / 3600
    started = time.perf_counter()

    rows, epochs = [], {}
    for name, options in MODELS.items():
        for amp in (None, "float16", "bfloat16") if device.type == "cuda" else (None, "bfloat16"):
            seconds, timed = epoch_seconds(options, batches, sample, device, amp)
            epochs[name, amp] = seconds
            rows.append([name, f"amp ({amp})" if amp else "float32", seconds, timed, hours(PAPER_EPOCHS * seconds)])
    ctc32 = epochs["CTC-3L-250H", None]
    cpu_line = ""
    if device.type == "cuda":
        cpu_sample = sample[:args.cpu_batches]
        cpu_seconds, _ = epoch_seconds(MODELS["CTC-3L-250H"], batches, cpu_sample, torch.device("cpu"), None)
        rows.append(["CTC-3L-250H", f"float32, CPU ({torch.get_num_threads()} threads)", cpu_seconds, len(cpu_sample),
                     hours(PAPER_EPOCHS * cpu_seconds)])
        cpu_line = f"GPU / CPU time (CTC float32): **{ctc32 / cpu_seconds:.3f}** ({cpu_seconds / ctc32:.0f}x faster). "
    amp_line = "".join(f"{amp} / float32 ({name}): **{epochs[name, amp] / epochs[name, None]:.2f}**. "
                       for name, amp in epochs if amp)

    longest = max(batches, key=lambda b: len(b) * max(b))
    loss_rows, losses = [], {}
    for variant in ("pruned", "full"):
        losses[variant] = loss_step(variant, longest, device, repeats=2 if args.quick else 5)
        loss_rows.append([variant, losses[variant][0] * 1e3, losses[variant][1]])
    (pruned_s, pruned_mib), (full_s, full_mib) = losses["pruned"], losses["full"]
    dev = lengths[:100 if args.quick else 400]
    rtf_rows = [[name, decoding_rtf(options, dev, args.max_duration, device)] for name, options in MODELS.items()]
    elapsed = time.perf_counter() - started

    body = (f"{card}. Corpus: {len(lengths)} utterances, {audio_hours:.2f} h of random 123-dim features (TIMIT's "
            f"length distribution), {len(batches)} batches of up to {args.max_duration:g} s per epoch. Each epoch time is extrapolated "
            f"from the steps timed (a random sample of the epoch's batches, per input frame); data loading is not "
            f"counted. Paper schedule: {PAPER_EPOCHS} epochs.\n\n"
            + table(["model", "precision", "s / epoch", "steps timed", f"{PAPER_EPOCHS} epochs"], rows)
            + f"\n\n{amp_line}{cpu_line}\n\nPruned vs full RNN-T loss (TRANS-3L-250H forward + backward, one batch of "
            f"{len(longest)} x {max(longest)} frames):\n\n"
            + table(["loss", "ms per step", "peak MiB"], loss_rows)
            + f"\n\npruned / full: time **{pruned_s / full_s:.2f}**"
            + (f", peak memory **{pruned_mib / full_mib:.2f}**" if device.type == "cuda" else "")
            + f".\n\nBatched greedy decoding, {len(dev)} utterances, untrained weights:\n\n"
            + table(["model", "RTF"], rtf_rows)
            + f"\n\nThe whole bench took {elapsed:.0f} s.")
    publish(f"bench/gpu.py --device {args.device}" + (" --quick" if args.quick else ""),
            f"GPU: epoch times, amp, pruned loss, decoding ({card})", body, args.results)


if __name__ == "__main__":
    main()
