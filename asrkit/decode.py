"""Stage 5: decode a cut set with a trained CTC model (greedy or prefix beam search).

Writes ``<output>``: one ``utterance-id phone phone ...`` line per utterance (training phone set), and
``<output>.json`` beside it with the decoding time and real-time factor.

Run as ``python -m asrkit.decode --help``; the recipe's Snakemake rule does.
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

from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.ctc_decoding import ctc_greedy_search, ctc_prefix_beam_search
from asrkit.dataset import PhoneRecognitionDataset
from asrkit.io import atomic_output
from asrkit.progress import progress_bar
from asrkit.lang import TokenTable

METHODS = ("greedy", "prefix_beam")


def decode(cuts: CutSet, model_path: Path, method: str, beam: int, max_duration: float = 200.0
           ) -> Dict[str, List[str]]:
    """Phone sequences (training phone set) by cut id."""
    if method not in METHODS:
        raise ValueError(f"unknown decoding method {method!r}: expected one of {METHODS}")
    checkpoint = load_checkpoint(model_path)
    model = load_model(model_path)
    tokens = TokenTable(checkpoint["tokens"])
    dataset = PhoneRecognitionDataset(tokens, checkpoint["num_phones"], checkpoint["feature_options"],
                                      checkpoint["stats"])
    loader = torch.utils.data.DataLoader(dataset, sampler=SimpleCutSampler(cuts, max_duration=max_duration),
                                         batch_size=None)
    hyps = {}
    with torch.no_grad():
        for batch in progress_bar(loader, desc=f"decoding ({method})", unit="batch"):
            log_probs, lens = model(batch["features"], batch["feature_lens"])
            if method == "greedy":
                ids = ctc_greedy_search(log_probs, lens)
            else:
                ids = ctc_prefix_beam_search(log_probs, lens, beam=beam)
            hyps.update(zip(batch["cut_ids"], (tokens.decode(i) for i in ids)))
    return hyps


def write_hyps(hyps: Dict[str, List[str]], path: Path) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{utt} {' '.join(phones)}\n" for utt, phones in sorted(hyps.items())))


def read_hyps(path: Path) -> Dict[str, List[str]]:
    hyps = {}
    for line in Path(path).read_text().splitlines():
        utt, *phones = line.split()
        hyps[utt] = phones
    return hyps


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, required=True, help="cut manifest with features")
    parser.add_argument("--model", type=Path, required=True, help="model.pt from the training stage")
    parser.add_argument("--method", choices=METHODS, default="greedy")
    parser.add_argument("--beam", type=int, default=10, help="beam width for prefix_beam (paper: 100)")
    parser.add_argument("--output", type=Path, required=True, help="hypothesis file to write")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [decode] %(message)s")
    cuts = CutSet.from_file(args.cuts).to_eager()
    if len(cuts) == 0:
        raise SystemExit(f"error: {args.cuts}: no utterances to decode")
    torch.set_num_threads(1)  # decoding jobs run side by side, one per core
    started = time.time()
    hyps = decode(cuts, args.model, args.method, args.beam)
    seconds = time.time() - started
    audio_seconds = sum(c.duration for c in cuts)
    write_hyps(hyps, args.output)
    timing = {"method": args.method, "beam": args.beam if args.method != "greedy" else 1, "seconds": seconds,
              "audio_seconds": audio_seconds, "rtf": seconds / audio_seconds}
    with atomic_output(args.output.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(timing, indent=1))
    logging.info(f"{len(hyps)} utterances decoded in {seconds:.1f} s (RTF {timing['rtf']:.4f}) -> {args.output}")


if __name__ == "__main__":
    main()
