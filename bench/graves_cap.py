"""Does the Graves beam search's cap on labels per frame change what it outputs? Beam 100 on trained transducers.

Usage: python bench/graves_cap.py [--cuts DEMO/data/features/cuts_dev.jsonl.gz --models DEMO/exp/transducer/model.pt
       DEMO/exp/pretrained_transducer/model.pt --beam 100 --caps 3 10 none --utterances N --results]

Graves 2012's algorithm lets a hypothesis gain any number of labels within one frame;
asrkit.search.transducer_search.beam_search can cap that (``max_symbols_per_frame``). For each model, the
utterances are decoded at ``--beam`` with each cap (none: no cap, the paper's search); the table gives, against
the last cap given (the reference, normally none), the number of utterances whose output differs, and each
cap's decoding time. The models and features are a finished demo run's (recipes/timit/run.sh --config demo.yaml).
"""

import argparse
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch

from asrkit.search.transducer_search import beam_search
from asrkit.checkpoint import load_model
from decoding import load_batches  # bench/decoding.py
from report import DEMO, add_common_options, parse_args, publish, read_cuts, table


def parse_cap(text: str) -> Optional[int]:
    return None if text == "none" else int(text)


def decode_all(model, batches: List[Dict[str, torch.Tensor]], beam: int, cap: Optional[int]) -> List[List[int]]:
    with torch.no_grad():
        outputs = []
        for batch in batches:
            encoder_out, lens = model.encoder(batch["features"], batch["feature_lens"])
            outputs += beam_search(model, encoder_out, lens, beam=beam, max_symbols_per_frame=cap)
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, default=DEMO / "data/features/cuts_dev.jsonl.gz")
    parser.add_argument("--models", type=Path, nargs="+",
                        default=[DEMO / "exp/transducer/model.pt", DEMO / "exp/pretrained_transducer/model.pt"])
    parser.add_argument("--beam", type=int, default=100)
    parser.add_argument("--caps", type=parse_cap, nargs="+", default=[3, 10, None],
                        help="labels per frame at most; none: no cap (the reference: the last given)")
    parser.add_argument("--utterances", type=int, default=None, help="the first N cuts (default: all)")
    parser.add_argument("--max-duration", type=float, default=30.0)
    add_common_options(parser)
    args = parse_args(parser)
    cuts = read_cuts(args.cuts, args.utterances)
    rows = []
    for model_path in args.models:
        model = load_model(model_path).eval()
        batches = load_batches(cuts, model_path, args.max_duration)
        outputs, seconds = {}, {}
        for cap in args.caps:
            start = time.perf_counter()
            outputs[cap] = decode_all(model, batches, args.beam, cap)
            seconds[cap] = time.perf_counter() - start
        reference = args.caps[-1]
        for cap in args.caps:
            differ = sum(a != b for a, b in zip(outputs[cap], outputs[reference]))
            labels = sum(map(len, outputs[cap]))
            rows.append([model_path.parent.name, "none" if cap is None else cap, len(outputs[cap]), differ,
                         labels, seconds[cap]])
    body = (f"{len(cuts)} utterances of {args.cuts.name}, Graves beam search at beam {args.beam}; 'differ': "
            f"outputs unlike those with cap {'none' if args.caps[-1] is None else args.caps[-1]}.\n\n"
            + table(["model", "labels per frame at most", "utterances", "differ", "labels output", "seconds"], rows))
    publish(f"graves_cap --beam {args.beam} --caps {' '.join('none' if c is None else str(c) for c in args.caps)}",
            "Graves beam search: the cap on labels per frame", body, args.results)


if __name__ == "__main__":
    main()
