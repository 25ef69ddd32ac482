"""Choose a decoding's LM weight and insertion bonus on dev (stage 8): a grid search, the test set never seen.

Decodes the dev cuts with the model, the beam search and the LM once per (weight, bonus) of the grid
(the config's ``decoding.lm_weight`` x ``decoding.lm_bonus``), scores each in the units' first metric (PER, or
WER), and writes ``--output`` (JSON): every grid point's error rate and decoding time, and the chosen
``weight`` and ``bonus``, those of the lowest dev error rate (the first in grid order on a tie: the
smallest weight, then the smallest bonus). The decodings of dev and test then read the chosen ones
(``asrkit.decoding.decode --lm-weights``).

Run as ``python -m asrkit.decoding.lm_weights --help``; the recipe's Snakemake rule does.
"""

import argparse
import itertools
import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch
from lhotse import CutSet

from asrkit import config
from asrkit.config import DecodingConfig
from asrkit.decoding.decode import LoadedModel, add_lm_flags, add_search_flags, check_lm_flags
from asrkit.device import DEVICE_CHOICES
from asrkit.io import atomic_output
from asrkit.scoring.hypotheses import error_rate


def choose_lm_weights(loaded: LoadedModel, dev: CutSet, method: str, beam: int, lm: str, lm_file: Path,
                      weights: Sequence[float], bonuses: Sequence[float]) -> Dict[str, Any]:
    """Decode ``dev`` at every (weight, bonus) of the grid; return the grid's results and the best point."""
    metric = loaded.dataset.units.metrics[0]
    grid: List[Dict[str, float]] = []
    for weight, bonus in itertools.product(sorted(weights), sorted(bonuses)):
        started = time.time()
        hyps = loaded.decode(dev, method, beam, loaded.fusion(lm, lm_file, weight, bonus))
        grid.append({"weight": weight, "bonus": bonus, metric: error_rate(dev, hyps, loaded.dataset.units),
                     "seconds": time.time() - started})
        logging.info(f"dev {metric} {grid[-1][metric]:.2f} with LM weight {weight:g}, bonus {bonus:g}")
    best = min(grid, key=lambda point: point[metric])  # min keeps the first of equal ones
    return {"lm": lm, "lm_file": str(lm_file), "method": method, "beam": beam, "metric": metric,
            "weight": best["weight"], "bonus": best["bonus"], f"dev_{metric}": best[metric], "grid": grid}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, required=True, help="the dev cut manifest with features")
    parser.add_argument("--model", type=Path, required=True, help="model.pt from the training stage")
    add_search_flags(parser)
    add_lm_flags(parser)
    config.add_flags(parser, DecodingConfig, keys=("avg", "lm_weight", "lm_bonus"))
    parser.add_argument("--output", type=Path, required=True, help="the JSON file of the grid and the choice")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    args = parser.parse_args(argv)
    check_lm_flags(parser, args)
    if args.lm == "none":
        parser.error("--lm ngram or neural: there are no weights to choose without an LM")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [lm_weights] %(message)s")
    dev = CutSet.from_file(args.cuts)
    dev = dev.to_eager() if dev is not None else CutSet()
    if len(dev) == 0:
        raise SystemExit(f"error: {args.cuts}: no utterances to choose the LM weights on")
    torch.set_num_threads(1)  # decoding jobs run side by side, one per core
    loaded = LoadedModel(args.model, getattr(args, "decoding.avg"), args.device)
    chosen = choose_lm_weights(loaded, dev, args.method, args.beam, args.lm, args.lm_file,
                               getattr(args, "decoding.lm_weight"), getattr(args, "decoding.lm_bonus"))
    with atomic_output(args.output) as tmp:
        tmp.write_text(json.dumps(chosen, indent=1))
    logging.info(f"chosen on dev: LM weight {chosen['weight']:g}, bonus {chosen['bonus']:g} "
                 f"({chosen['metric']} {chosen['dev_' + chosen['metric']]:.2f}) -> {args.output}")


if __name__ == "__main__":
    main()
