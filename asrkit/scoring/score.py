"""Stage 9: score hypotheses in the units' metrics (PER on 39 phones; WER and CER for words); plots; RESULTS.md.

Subcommands (run as ``python -m asrkit.scoring.score <command> --help``; the recipe's Snakemake rules do):
  report   score one decoded split: a sclite-style report per metric, a JSON summary, a confusion matrix PNG
           (39 phones, or the characters of the CER)
  curves   loss and dev error rate per epoch (PNG) from a training history
  results  collect summaries into RESULTS.md, one row per model and decoding method
  forget   remove models' decodings, plots and RESULTS.md rows (a training starts with it)
"""

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Dict, List, Optional

from lhotse import CutSet

from asrkit.checkpoint import load_checkpoint
from asrkit.io import atomic_output
from asrkit.scoring.plots import plot_confusion_matrix, plot_training_curves
from asrkit.scoring.results import mark_results, remove_model_rows, update_results_table
from asrkit.scoring.error_rates import DELETION, INSERTION, confusion_matrix, format_totals, score_utterances, write_report
from asrkit.scoring.hypotheses import read_hyps, scoring_views
from asrkit.data.units import Units, units_from_state
from asrkit.workflow.stages import MODEL_PLOTS, MODEL_RESULTS, RECIPE_MODELS

#: RESULTS.md columns after the model, decoding and error-rate columns
RESULTS_TAIL = ["ins", "del", "sub", "params", "epochs", "RTF"]


def score_split(cuts_path: Path, hyps_path: Path, units: Units, title: str, report_paths: List[Path],
                summary_path: Path, confusion_path: Path, summary_fields: Dict) -> Dict:
    """Score in each of the units' metrics, write a report per metric (in ``units.metrics`` order), the
    confusion matrix of the last one and a JSON summary; return the summary.

    The summary holds each metric's rate under its name, and the first metric's counts (errors, ref_count,
    ins, del, sub) and the decoding's real-time factor.
    """
    if len(report_paths) != len(units.metrics):
        raise ValueError(f"{len(report_paths)} report paths for the {len(units.metrics)} metrics {units.metrics}")
    refs, hyps = scoring_views(CutSet.from_file(cuts_path), read_hyps(hyps_path), units)
    summary = dict(summary_fields)
    for metric, report_path in zip(units.metrics, report_paths):
        report = score_utterances({u: v[metric] for u, v in refs.items()}, {u: v[metric] for u, v in hyps.items()})
        write_report(report, report_path, f"{title}, {metric}", unit=metric)
        totals = report.totals
        summary[metric] = totals.rate
        if metric == units.metrics[0]:
            summary.update({"errors": totals.errors, "ref_count": totals.ref_count, "ins": totals.insertions,
                            "del": totals.deletions, "sub": totals.substitutions})
        logging.info(f"{title}: {format_totals(totals, metric)} -> {report_path}")
    labels = units.confusion_labels({label for pair in report.pair_counts for label in pair} - {INSERTION, DELETION})
    plot_confusion_matrix(confusion_matrix(report, labels), labels, confusion_path, f"{title}, {metric}")
    timing_path = hyps_path.with_suffix(".json")
    summary["RTF"] = json.loads(timing_path.read_text())["rtf"] if timing_path.exists() else None
    summary["metrics"] = list(units.metrics)
    with atomic_output(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=1))
    return summary


def write_results(summaries: List[Dict], results_path: Path) -> None:
    """One RESULTS.md row per (model, decoding): dev and test error rates in each metric (and the held-out
    set's, when it was decoded), the first metric's test error counts, and the real-time factor; each model's
    result, the test error rate of its decoding of lowest dev error rate in the first metric, marked in the
    ``result`` column (:func:`~asrkit.scoring.results.mark_results`)."""
    metrics = list(dict.fromkeys(m for s in summaries for m in s["metrics"]))
    splits = [split for split in ("dev", "test", "heldout") if any(s["split"] == split for s in summaries)]
    columns = ["model", "decoding"] + [f"{split} {m}" for m in metrics for split in splits] + RESULTS_TAIL
    rows: Dict[tuple, Dict] = {}
    for s in summaries:
        row = rows.setdefault((s["model"], s["decoding"]), {"model": s["model"], "decoding": s["decoding"],
                                                             "params": s.get("params"), "epochs": s.get("epochs")})
        row.update({f"{s['split']} {m}": s[m] for m in s["metrics"]})
        if s["split"] == "test":
            row.update({"ins": s["ins"], "del": s["del"], "sub": s["sub"], "RTF": s["RTF"]})
    for row in rows.values():
        update_results_table(results_path, {k: v for k, v in row.items() if v is not None}, columns=columns)
    mark_results(results_path, metrics[0])  # each model's result: its decoding chosen on dev
    logging.info(f"{len(rows)} result rows -> {results_path}:\n\n{results_path.read_text()}")


def forget_results(exp_dir: Path, model_name: str, results_path: Path) -> None:
    """Delete what was made from the model in ``exp_dir``: its decodings (hyps, reports, summaries, confusion
    plots), its plots, its own results table, and its rows (``model_name``) in RESULTS.md.

    A (re)training runs this first: once it starts, those results describe a model that is being replaced,
    and if it fails they must not stay behind to describe a model that no longer exists.
    """
    made = [*sorted(exp_dir.glob("decode_*")), *(exp_dir / f"{plot}.png" for plot in MODEL_PLOTS),
            exp_dir / MODEL_RESULTS]
    for path in made:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    rows = remove_model_rows(results_path, model_name)
    logging.info(f"{exp_dir} is being (re)trained: removed its decodings and plots, and {rows} {model_name} "
                 f"row(s) of {results_path}")


def with_lm_weights(label: str, timing_path: Path) -> str:
    """A decoding's RESULTS.md label, with the LM weight and bonus it decoded with (chosen on dev) if it used an LM:
    the weights are part of the result."""
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    if "lm_weight" not in timing:
        return label
    return f"{label} (weight {timing['lm_weight']:g}, bonus {timing['lm_bonus']:g})"


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser("report", help="score one decoded split")
    report.add_argument("--cuts", type=Path, required=True, help="cut manifest holding the references")
    report.add_argument("--hyps", type=Path, required=True, help="hypotheses from the decode stage")
    report.add_argument("--model", type=Path, required=True,
                        help="the model.pt that decoded: its units say how to score, and its size and epochs are "
                             "reported")
    report.add_argument("--model-name", required=True)
    report.add_argument("--decoding", required=True, help="decoding method as shown in RESULTS.md")
    report.add_argument("--split", required=True)
    report.add_argument("--reports", type=Path, nargs="+", required=True,
                        help="one report per metric of the units: PER (phones); WER then CER (sentencepiece)")
    report.add_argument("--summary", type=Path, required=True)
    report.add_argument("--confusion", type=Path, required=True, help="confusion matrix PNG")
    curves = sub.add_parser("curves", help="plot the training history")
    curves.add_argument("--history", type=Path, required=True)
    curves.add_argument("--output", type=Path, required=True)
    results = sub.add_parser("results", help="write RESULTS.md from summaries")
    results.add_argument("--summaries", type=Path, nargs="+", required=True)
    results.add_argument("--output", type=Path, required=True)
    forget = sub.add_parser("forget", help="remove what was made from models that are about to be retrained")
    forget.add_argument("--models", nargs="+", choices=list(RECIPE_MODELS), required=True,
                        help="the recipe models (exp/<model>, named in RESULTS.md by their label)")
    forget.add_argument("--exp-root", type=Path, default=Path("exp"), help="the folder of the models' exp/<model>")
    forget.add_argument("--results", type=Path, required=True, help="RESULTS.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [score] %(message)s")
    if args.command == "report":
        checkpoint = load_checkpoint(args.model)
        decoding = with_lm_weights(args.decoding, args.hyps.with_suffix(".json"))
        fields = {"model": args.model_name, "decoding": decoding, "split": args.split,
                  "params": checkpoint["num_params"], "epochs": checkpoint["num_epochs"]}
        score_split(args.cuts, args.hyps, units_from_state(checkpoint["units"]),
                    f"{args.model_name} {decoding} on {args.split}", args.reports, args.summary,
                    args.confusion, fields)
    elif args.command == "curves":
        plot_training_curves(json.loads(args.history.read_text()), args.output)
    elif args.command == "forget":
        for model in args.models:
            forget_results(args.exp_root / model, RECIPE_MODELS[model].label, args.results)
    else:
        write_results([json.loads(p.read_text()) for p in args.summaries], args.output)


if __name__ == "__main__":
    main()
