"""What every bench script shares: common options, timing, the machine's description and bench/RESULTS.md.

Each script owns one section of RESULTS.md, between ``<!-- begin NAME -->`` and ``<!-- end NAME -->``; with
``--results`` it replaces that section (or appends it) and leaves the others as they are. Every section
states the machine and its load when it was measured: on a shared machine only ratios measured in the same
run mean much.
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import time
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch
from lhotse import CutSet

from asrkit.io import atomic_output

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
DEMO = Path(__file__).resolve().parents[1] / "recipes/timit/demo"  # a finished demo run (recipes/timit/run.sh --config demo.yaml)


def read_cuts(path: Path, first: Optional[int] = None) -> CutSet:
    """A cut manifest with features, eager, optionally its first ``first`` cuts. Relative feature paths
    (a recipe writes them relative to its run folder) are made absolute: relative to the nearest folder
    above the manifest where the first cut's features exist."""
    cuts = CutSet.from_file(path).to_eager()
    cuts = cuts.subset(first=first) if first is not None else cuts
    storage = Path(cuts[0].features.storage_path)
    if not storage.is_absolute():
        root = next((p for p in Path(path).resolve().parents if (p / storage).exists()), None)
        if root is None:
            raise SystemExit(f"error: {path}: feature storage {storage} not found below any folder above it")
        cuts = cuts.with_features_path_prefix(str(root))
    return cuts


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--quick, --threads (default 1: the machine is shared) and --results."""
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats: a smoke run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--results", type=Path, nargs="?", const=RESULTS, default=None,
                        help=f"replace this script's section of RESULTS.md (default path {RESULTS})")


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse the command line and set torch's threads to ``--threads``."""
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    return args


def median_seconds(step: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``step()`` over ``repeats`` runs, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_seconds(step: Callable[[], object]) -> float:
    """CPU time (user + system, all threads) of this process while ``step()`` runs."""
    start = time.process_time()
    step()
    return time.process_time() - start


def machine() -> str:
    """One line: CPU model, CPUs, load average, torch version and threads, Python version."""
    model = next((line.split(":", 1)[1].strip() for line in
                  subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
                  if line.startswith("Model name")), platform.processor())
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{model}, nproc {os.cpu_count()}, load average {load} (1/5/15 min), torch {torch.__version__} "
            f"with {torch.get_num_threads()} thread(s), Python {platform.python_version()}")


def table(headers: Sequence[str], rows: List[Sequence[object]]) -> str:
    """A markdown table; floats are printed with 4 significant digits."""
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(name: str, title: str, body: str, results: Optional[Path] = None) -> None:
    """Print the section; with ``results``, also replace (or append) section ``name`` of that file."""
    section = f"## {title}\n\nCommand: `{name}`. Measured {time.strftime('%Y-%m-%d %H:%M')} on {machine()}.\n\n{body}\n"
    print(section)
    if results is None:
        return
    text = results.read_text() if results.exists() else "# asrkit benchmarks\n"
    key = name.split()[0]
    block = f"<!-- begin {key} -->\n{section}<!-- end {key} -->"
    pattern = re.compile(rf"<!-- begin {re.escape(key)} -->.*?<!-- end {re.escape(key)} -->", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip("\n") + f"\n\n{block}\n"
    with atomic_output(results) as tmp:
        tmp.write_text(text)
    print(f"section {key} -> {results}")
