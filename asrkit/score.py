"""Stage 6: score hypotheses against the references after folding to 39 phones; plots; RESULTS.md.

Subcommands (run as ``python -m asrkit.score <command> --help``; the recipe's Snakemake rules do):
  per      score one decoded split: sclite-style report, JSON summary, 39x39 confusion matrix PNG
  curves   loss and dev PER per epoch (PNG) from a training history
  results  collect summaries into RESULTS.md, one row per model and decoding method
"""

import argparse
import json
import logging
from pathlib import Path
from typing import Dict, List, Optional

from lhotse import CutSet

from asrkit.checkpoint import load_checkpoint
from asrkit.decode import read_hyps
from asrkit.io import atomic_output
from asrkit.lang import supervision_phones
from asrkit.phones import fold, phone_set
from asrkit.plots import plot_confusion_matrix, plot_training_curves
from asrkit.results import update_results_table
from asrkit.scoring import confusion_matrix, format_totals, score_utterances, write_report

SCORING_PHONES = 39
RESULTS_COLUMNS = ["model", "decoding", "dev PER", "test PER", "ins", "del", "sub", "params", "epochs", "RTF"]


def reference_phones(cuts: CutSet) -> Dict[str, List[str]]:
    """Reference phone sequences by cut id, folded to the 39 scoring phones."""
    return {cut.id: fold([p for s in cut.supervisions for p in supervision_phones(s, 60)], 60, SCORING_PHONES)
            for cut in cuts}


def score_split(cuts_path: Path, hyps_path: Path, num_phones: int, title: str, report_path: Path,
                summary_path: Path, confusion_path: Path, summary_fields: Dict) -> Dict:
    """Fold, score, write the report, the confusion matrix and a JSON summary; return the summary."""
    refs = reference_phones(CutSet.from_file(cuts_path))
    hyps = {utt: fold(phones, num_phones, SCORING_PHONES) for utt, phones in read_hyps(hyps_path).items()}
    report = score_utterances(refs, hyps)
    write_report(report, report_path, title)
    plot_confusion_matrix(confusion_matrix(report, phone_set(SCORING_PHONES)), phone_set(SCORING_PHONES),
                          confusion_path, title)
    totals = report.totals
    timing_path = hyps_path.with_suffix(".json")
    summary = {**summary_fields, "PER": totals.rate, "errors": totals.errors, "ref_count": totals.ref_count,
               "ins": totals.insertions, "del": totals.deletions, "sub": totals.substitutions,
               "RTF": json.loads(timing_path.read_text())["rtf"] if timing_path.exists() else None}
    with atomic_output(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    logging.info(f"{title}: {format_totals(totals)} -> {report_path}")
    return summary


def write_results(summaries: List[Dict], results_path: Path) -> None:
    """One RESULTS.md row per (model, decoding): dev and test PER, test error counts and real-time factor."""
    rows: Dict[tuple, Dict] = {}
    for s in summaries:
        row = rows.setdefault((s["model"], s["decoding"]), {"model": s["model"], "decoding": s["decoding"],
                                                             "params": s.get("params"), "epochs": s.get("epochs")})
        row[f"{s['split']} PER"] = s["PER"]
        if s["split"] == "test":
            row.update({"ins": s["ins"], "del": s["del"], "sub": s["sub"], "RTF": s["RTF"]})
    for row in rows.values():
        update_results_table(results_path, {k: v for k, v in row.items() if v is not None}, columns=RESULTS_COLUMNS)
    logging.info(f"{len(rows)} result rows -> {results_path}")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    per = sub.add_parser("per", help="score one decoded split")
    per.add_argument("--cuts", type=Path, required=True, help="cut manifest holding the references")
    per.add_argument("--hyps", type=Path, required=True, help="hypotheses from the decode stage")
    per.add_argument("--phone-set", type=int, choices=[60, 48], default=60, help="phone set of the hypotheses")
    per.add_argument("--model-name", required=True)
    per.add_argument("--decoding", required=True, help="decoding method as shown in RESULTS.md")
    per.add_argument("--split", required=True)
    per.add_argument("--model", type=Path, help="model.pt, to report its size and epochs")
    per.add_argument("--report", type=Path, required=True)
    per.add_argument("--summary", type=Path, required=True)
    per.add_argument("--confusion", type=Path, required=True, help="confusion matrix PNG")
    curves = sub.add_parser("curves", help="plot the training history")
    curves.add_argument("--history", type=Path, required=True)
    curves.add_argument("--output", type=Path, required=True)
    results = sub.add_parser("results", help="write RESULTS.md from summaries")
    results.add_argument("--summaries", type=Path, nargs="+", required=True)
    results.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [score] %(message)s")
    if args.command == "per":
        fields = {"model": args.model_name, "decoding": args.decoding, "split": args.split}
        if args.model:
            checkpoint = load_checkpoint(args.model)
            fields.update(params=checkpoint["num_params"], epochs=checkpoint["num_epochs"])
        score_split(args.cuts, args.hyps, args.phone_set, f"{args.model_name} {args.decoding} on {args.split}",
                    args.report, args.summary, args.confusion, fields)
    elif args.command == "curves":
        plot_training_curves(json.loads(args.history.read_text()), args.output)
    else:
        write_results([json.loads(p.read_text()) for p in args.summaries], args.output)


if __name__ == "__main__":
    main()
