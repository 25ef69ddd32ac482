"""Time of a no-op rerun of a finished recipe, against its first run and Snakemake's dry run.

Usage: python bench/pipeline.py [--work /tmp/asrkit-bench-recipe --stop-stage 9 --repeats 3 --results]

Runs recipes/timit/run.sh on a tiny synthetic corpus (the end-to-end test's config) into ``--work`` with
one core, unless a run there has already finished; then reruns it with nothing changed (Snakemake checks
every output and does nothing) and with ``-- --dry-run`` (plans without checking locks or running). A
no-op rerun should cost seconds: the price of one command that is always safe to repeat.
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import List

from report import add_common_options, parse_args, publish, table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_recipe_end_to_end import RUN_SH, TINY  # noqa: E402 (every stage in minutes on one core)


def run_seconds(work: Path, config: Path, stop_stage: int, extra: List[str] = ()) -> float:
    """Wall seconds of one run.sh call; fails loudly with its output's end if the run fails."""
    start = time.perf_counter()
    result = subprocess.run([str(RUN_SH), "--config", str(config), "--dir", str(work), "--cores", "1",
                             "--stop-stage", str(stop_stage), *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"error: run.sh failed in {work}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/asrkit-bench-recipe"),
                        help="run folder (default /tmp/asrkit-bench-recipe); a finished run there is reused")
    parser.add_argument("--stop-stage", type=int, default=9, help="last stage (default 9: all)")
    parser.add_argument("--repeats", type=int, default=3, help="reruns timed; the median is kept")
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.stop_stage, args.repeats = 3, 1
    args.work.mkdir(parents=True, exist_ok=True)
    config = args.work / "tiny.yaml"
    config.write_text(TINY)
    fresh = not (args.work / "data").exists()
    first = run_seconds(args.work, config, args.stop_stage)  # the first run, or a rerun if one had finished
    rerun = statistics.median(run_seconds(args.work, config, args.stop_stage) for _ in range(args.repeats))
    dry = statistics.median(run_seconds(args.work, config, args.stop_stage, ["--", "--dry-run"])
                            for _ in range(args.repeats))
    rows = [["first run" if fresh else "first call (a run had finished there before)", first, first / rerun],
            ["no-op rerun", rerun, 1.0], ["dry run (`-- --dry-run`)", dry, dry / rerun]]
    publish("bench/pipeline.py" + (" --quick" if args.quick else ""), "Pipeline: no-op rerun",
            f"recipes/timit/run.sh, stages 0 to {args.stop_stage}, tiny synthetic corpus (the end-to-end test's "
            f"config), `--cores 1`, in `{args.work}`; median of {args.repeats}.\n\n"
            + table(["run", "wall s", "/ no-op rerun"], rows), args.results)


if __name__ == "__main__":
    main()
