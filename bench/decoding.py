"""Real-time factor of decoding (asrkit.decoding.decode.search) per search and beam, and batched vs one at a time.

Usage: python bench/decoding.py [--cuts DEMO/data/features/cuts_test.jsonl.gz --ctc DEMO/exp/ctc/model.pt
       --transducer DEMO/exp/transducer/model.pt --beams 1 4 10 100 --utterances 64 --results]

RTF is wall time per second of audio (lower is faster), of ``asrkit.decoding.decode.search`` on batches of up to
``--max-duration`` seconds: encoder plus search. The encoder's own RTF is a row of its own, so a search's
share is its RTF minus the encoder's. The batching table decodes the same utterances one at a time.
With ``--baseline DIR`` each search is also timed with the search code (asrkit/decoding: prefix_trie,
ctc_search, transducer_search) of another checkout, e.g. the main branch or ``git archive`` of an older commit,
alternating with this tree's so that both see the same load; the table gains the ratio baseline / this tree:
the speed-up of this branch. Both give the same hypotheses (tests/test_graves_search.py).
A model path that does not exist is skipped with a note (e.g. a transducer still training).
"""

import argparse
import importlib
import importlib.util
import statistics
import sys
from pathlib import Path
from typing import Dict, List

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.data.dataset import RecognitionDataset
from asrkit.search.searches import SEARCH_METHODS, search
from report import DEMO, add_common_options, median_seconds, parse_args, publish, read_cuts, table

Batch = Dict[str, torch.Tensor]


def load_batches(cuts: CutSet, model_path: Path, max_duration: float) -> List[Batch]:
    """The batches asrkit.decoding.decode builds (normalised features with deltas), all in memory."""
    checkpoint = load_checkpoint(model_path)
    dataset = RecognitionDataset.for_model(checkpoint)
    return [dataset[batch] for batch in SimpleCutSampler(cuts, max_duration=max_duration)]


def one_at_a_time(batches: List[Batch]) -> List[Batch]:
    """Each utterance of ``batches`` as a batch of its own, cut to its length."""
    return [{"features": b["features"][i : i + 1, : int(n)], "feature_lens": b["feature_lens"][i : i + 1]}
            for b in batches for i, n in enumerate(b["feature_lens"])]


#: the search functions the models' ``search`` calls, by the module that defines them
DECODE_NAMES = {"ctc_greedy_search": "search.ctc_search", "ctc_prefix_beam_search": "search.ctc_search",
                "greedy_search_batch": "search.transducer_search", "beam_search": "search.transducer_search",
                "modified_beam_search": "search.transducer_search"}


#: the modules a --baseline swaps in
SEARCH_MODULES = ("search.prefix_trie", "search.ctc_search", "search.transducer_search")


def load_searches(root: Path) -> Dict[str, object]:
    """The search functions that asrkit.decoding.decode calls, from the asrkit of checkout ``root``: its
    search modules loaded beside this tree's (the model code is this tree's)."""
    saved = {name: sys.modules.get(f"asrkit.{name}") for name in SEARCH_MODULES}
    try:
        for name in SEARCH_MODULES:  # in dependency order: each imports the ones before from sys.modules
            path = root / "asrkit" / f"{name.replace('.', '/')}.py"
            spec = importlib.util.spec_from_file_location(f"asrkit.{name}", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[f"asrkit.{name}"] = module
            spec.loader.exec_module(module)
        return {name: getattr(sys.modules[f"asrkit.{module}"], name) for name, module in DECODE_NAMES.items()}
    finally:
        sys.modules.update(saved)


#: where the named searches (asrkit/search/searches.py) look the search functions up: what a --baseline swaps
SEARCH_NAMESPACES = {name: "asrkit.search.searches" for name in ("ctc_greedy_search", "ctc_prefix_beam_search",
                                                                  "greedy_search_batch", "beam_search",
                                                                  "modified_beam_search")}


def use_searches(functions: Dict[str, object]) -> None:
    for name, function in functions.items():
        setattr(sys.modules[SEARCH_NAMESPACES[name]], name, function)


def timings(args: argparse.Namespace) -> Dict[str, float]:
    """Seconds of decoding by "model method beam [batched|single|baseline]", and "model encoder"; and "audio".

    With ``args.baseline``, each batched search is timed alternately with this tree's searches and the
    baseline's (swapped in where the models look them up), so that both see the same load.
    """
    cuts = read_cuts(args.cuts, args.utterances)
    seconds: Dict[str, float] = {"audio": sum(c.duration for c in cuts)}
    importlib.import_module("asrkit.search.transducer_search")
    versions = {"batched": {name: getattr(sys.modules[module], name) for name, module in SEARCH_NAMESPACES.items()}}
    if args.baseline:
        versions["baseline"] = load_searches(args.baseline)
    for kind, path in (("ctc", args.ctc), ("transducer", args.transducer)):
        if not path.exists():
            continue
        model = load_model(path)
        batches = load_batches(cuts, path, args.max_duration)
        encoder = model.encoder
        with torch.no_grad():
            seconds[f"{kind} encoder"] = median_seconds(
                lambda: [encoder(b["features"], b["feature_lens"]) for b in batches], args.repeats)
            for method in SEARCH_METHODS[type(model)]:
                for beam in [1] if method == "greedy" else args.graves_beams if method == "beam" else args.beams:
                    def decode(batches: List[Batch] = batches) -> None:
                        for b in batches:
                            search(model, method, beam, b["features"], b["feature_lens"])
                    times: Dict[str, List[float]] = {version: [] for version in versions}
                    for _ in range(args.repeats):
                        for version, functions in versions.items():
                            use_searches(functions)
                            times[version].append(median_seconds(decode, 1, warmup=0))
                    use_searches(versions["batched"])
                    for version, values in times.items():
                        seconds[f"{kind} {method} {beam} {version}"] = statistics.median(values)
                    if beam == args.batching_beam or method == "greedy":
                        singles = one_at_a_time(batches)
                        seconds[f"{kind} {method} {beam} single"] = median_seconds(lambda: decode(singles),
                                                                                   args.repeats)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=Path, default=DEMO / "data/features/cuts_test.jsonl.gz",
                        help="cut manifest with features (default: the demo's test set)")
    parser.add_argument("--ctc", type=Path, default=DEMO / "exp/ctc/model.pt", help="CTC model.pt")
    parser.add_argument("--transducer", type=Path, default=DEMO / "exp/transducer/model.pt",
                        help="transducer model.pt")
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 4, 10, 100], help="beams of the beam searches")
    parser.add_argument("--graves-beams", type=int, nargs="+", default=[1, 4, 10, 100],
                        help="beams of the transducer's Graves search (one utterance at a time, the slowest)")
    parser.add_argument("--batching-beam", type=int, default=10,
                        help="beam at which the beam searches are also run one utterance at a time (default 10)")
    parser.add_argument("--utterances", type=int, default=64, help="first N utterances of --cuts (default 64)")
    parser.add_argument("--max-duration", type=float, default=200.0,
                        help="seconds of audio per batch (default 200, asrkit.decoding.decode's)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per figure; the median is kept")
    parser.add_argument("--baseline", type=Path, help="another checkout whose asrkit to time too, e.g. /work/main")
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.utterances, args.beams, args.graves_beams, args.repeats = 8, [1, 4], [1, 4], 1
        args.batching_beam = 4
    for path in (args.ctc, args.transducer):
        if not path.exists():
            print(f"note: {path} does not exist: its rows are skipped", file=sys.stderr)

    seconds = timings(args)
    audio = seconds.pop("audio")
    headers = ["model", "search", "beam", "RTF batched", "RTF one at a time", "one at a time / batched"]
    if args.baseline:
        headers += [f"RTF batched, {args.baseline}'s searches", "speed-up (baseline / this)"]
    rows = []
    for key, value in seconds.items():
        kind, method, *rest = key.split()
        if rest and rest[1] != "batched":
            continue
        beam = rest[0] if rest else "-"
        single = seconds.get(f"{kind} {method} {beam} single")
        row = [kind, method, beam, value / audio, single / audio if single else "", single / value if single else ""]
        if args.baseline:
            base = seconds.get(f"{kind} {method} {beam} baseline")
            row += [base / audio, base / value] if base else ["", ""]
        rows.append(row)
    publish("bench/decoding.py" + (" --quick" if args.quick else ""), "Decoding: real-time factor",
            f"{args.utterances} utterances of `{args.cuts}` ({audio:.1f} s of audio), batches of up to "
            f"{args.max_duration:g} s, median of {args.repeats}. RTF = wall seconds / audio seconds of "
            f"asrkit.decoding.decode.search (encoder included; the encoder row is the encoder alone).\n\n"
            + table(headers, rows), args.results)


if __name__ == "__main__":
    main()
