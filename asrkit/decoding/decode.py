"""Decode a cut set with a trained CTC model or transducer (greedy or beam searches).

Writes ``<output>``: one ``utterance-id token token ...`` line per utterance (token symbols: training phones
or sentencepiece pieces), and ``<output>.json`` beside it with the decoding time and real-time factor.

Run as ``python -m asrkit.decoding.decode --help``; the recipe's Snakemake rule does.
"""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrkit import config
from asrkit.config import DecodingConfig
from asrkit.training.checkpoint import is_end_of_epoch, load_checkpoint, load_model, training_checkpoints
from asrkit.data.dataset import RecognitionDataset, to_device
from asrkit.device import DEVICE_CHOICES, resolve_device
from asrkit.io import atomic_output
from asrkit.progress import progress_bar
from asrkit.model.registry import ALL_SEARCH_METHODS, model_class, model_options

#: the search when none is named (``--method``, ``--beam``, :class:`asrkit.inference.transcribe.Transcriber`)
DEFAULT_METHOD, DEFAULT_BEAM = "greedy", 10


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """``--method`` and ``--beam``: the search of a decoding (here and in ``asrkit transcribe``)."""
    parser.add_argument("--method", choices=ALL_SEARCH_METHODS, default=DEFAULT_METHOD,
                        help=f"CTC: greedy, prefix_beam; transducer: greedy, beam (Graves), modified_beam "
                             f"(default: {DEFAULT_METHOD})")
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM,
                        help=f"beam width of the beam searches (default: {DEFAULT_BEAM}; paper: 100)")


def averaged_checkpoints(model_path: Path, avg: int) -> List[Path]:
    """The last ``avg`` end-of-epoch checkpoints beside ``model_path``; none for avg 1 (the best model).

    They must be of one phase of the training schedule: the paper schedule's noise phase restarts from an earlier
    epoch, so the epochs before it are not on the path of the weights after it, and averaging them is no
    smoothing of one trajectory.
    """
    if avg <= 1:
        return []
    checkpoint_dir = model_path.parent / "checkpoints"
    ends = [p for p in training_checkpoints(checkpoint_dir) if is_end_of_epoch(p)]
    if len(ends) < avg:
        raise ValueError(f"decoding.avg {avg}: only {len(ends)} epoch checkpoints in {checkpoint_dir} "
                         f"(raise training.keep_last_checkpoints)")
    phases = [load_checkpoint(p)["history"][-1]["phase"] for p in ends[-avg:]]
    if len(set(phases)) > 1:
        raise ValueError(f"decoding.avg {avg}: the last {avg} epoch checkpoints in {checkpoint_dir} span the "
                         f"phases {phases} of the training schedule, and a phase can restart from an earlier "
                         f"epoch: lower decoding.avg to at most {phases.count(phases[-1])}, the last phase's epochs")
    return ends[-avg:]


def decode(cuts: CutSet, model_path: Path, method: str, beam: int, avg: int, max_duration: float = 200.0,
           device: str = "auto") -> Dict[str, List[str]]:
    """Token symbol sequences by cut id. avg: the config's ``decoding.avg``; device: auto, cpu or cuda (see
    asrkit.device)."""
    checkpoint = load_checkpoint(model_path)
    model_type = model_options(checkpoint["model_options"])["type"]
    methods = model_class(model_type).search_methods
    if method not in methods:
        raise ValueError(f"{model_path}: a {model_type} model decodes with {methods}, not {method!r}")
    torch_device = resolve_device(device)
    model = load_model(model_path, average=averaged_checkpoints(model_path, avg)).to(torch_device)
    dataset = RecognitionDataset.for_model(checkpoint)
    # world_size 1: all cuts, also where torchrun's environment variables would make lhotse shard them
    sampler = SimpleCutSampler(cuts, max_duration=max_duration, world_size=1, rank=0)
    loader = torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None)
    hyps = {}
    with torch.no_grad():
        for batch in progress_bar(map(lambda b: to_device(b, torch_device), loader), desc=f"decoding ({method})",
                                  unit="batch"):
            ids = model.search(method, beam, batch["features"], batch["feature_lens"])
            hyps.update(zip(batch["cut_ids"], (dataset.tokens.decode(i) for i in ids)))
    return hyps


def write_hyps(hyps: Dict[str, List[str]], path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{utt} {' '.join(symbols)}\n" for utt, symbols in sorted(hyps.items())))


def read_hyps(path: Path) -> Dict[str, List[str]]:
    hyps = {}
    for line in Path(path).read_text().splitlines():
        utt, *symbols = line.split()
        hyps[utt] = symbols
    return hyps


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, required=True, help="cut manifest with features")
    parser.add_argument("--model", type=Path, required=True, help="model.pt from the training stage")
    add_search_flags(parser)
    config.add_flags(parser, DecodingConfig, keys=("avg",))
    parser.add_argument("--output", type=Path, required=True, help="hypothesis file to write")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default): a CUDA GPU if torch finds one, else the CPU")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [decode] %(message)s")
    cuts = CutSet.from_file(args.cuts)  # lhotse reads an empty manifest as None
    cuts = cuts.to_eager() if cuts is not None else CutSet()
    if len(cuts) == 0:
        raise SystemExit(f"error: {args.cuts}: no utterances to decode")
    torch.set_num_threads(1)  # decoding jobs run side by side, one per core
    started = time.time()
    avg = getattr(args, "decoding.avg")
    hyps = decode(cuts, args.model, args.method, args.beam, avg, device=args.device)
    seconds = time.time() - started
    audio_seconds = sum(c.duration for c in cuts)
    write_hyps(hyps, args.output)
    timing = {"method": args.method, "beam": args.beam if args.method != "greedy" else 1, "avg": avg,
              "seconds": seconds,
              "audio_seconds": audio_seconds, "rtf": seconds / audio_seconds}
    with atomic_output(args.output.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(timing, indent=1))
    logging.info(f"{len(hyps)} utterances decoded in {seconds:.1f} s (RTF {timing['rtf']:.4f}) -> {args.output}")


if __name__ == "__main__":
    main()
