"""Time of a no-op rerun of a finished recipe, broken down, against a bare Snakemake on a trivial Snakefile.

Usage: python bench/pipeline.py [--work /tmp/asrkit-bench-recipe --repeats 5 --baseline DIR --results]

Runs recipes/timit/run.sh on a tiny synthetic corpus with all three models (the fault tests' config, tests/
tiny_recipe.py, with small transducers: the demo's workflow, trained in a few minutes) into ``--work``, unless a
run there has already finished; then times, alternating, each of the commands a no-op rerun is made of:
Python's start, Snakemake's import, a bare Snakemake on a trivial Snakefile (the floor), asrkit's Snakefile read
without building the DAG (``--list-rules``), Snakemake on it with nothing to do, run.sh's config-file check, and
run.sh itself (a no-op rerun and ``-- --dry-run``). ``--baseline DIR`` (another commit's files, e.g. ``git archive
COMMIT | tar -x -C DIR``) also times Snakemake with nothing to do on that checkout's Snakefile and asrkit, in the same
run folder: the before of a before/after ratio.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from report import add_common_options, parse_args, publish, table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from tiny_recipe import RUN_ARGS, SNAKEMAKE_ARGS, TINY  # noqa: E402 (every stage in a few minutes on two cores)

RUN_SH = ROOT / "recipes/timit/run.sh"
PYTHON = ROOT / ".venv/bin/python"
MODELS = ["ctc", "transducer", "pretrained_transducer"]
#: on top of TINY: the demo's three models and decoding, with transducers as small as its CTC model
THREE_MODELS = f"""
models: [{", ".join(MODELS)}]
transducer: {{decoder_embedding_dim: 16, decoder_hidden_size: 16, joiner_dim: 16, warmup_batches: 2}}
phone_lm: {{num_epochs: 1}}
decoding: {{ctc: [greedy, prefix_beam], transducer: [greedy, beam, modified_beam], beams: [4, 10], splits: [dev, test]}}
"""
#: what the recipe's first run makes and every rerun asks for again (stage 9's sensitivity figures need models
#: that have learnt to emit speech, which these tiny ones have not)
TARGETS = [*SNAKEMAKE_ARGS[:1], *[f"exp/{m}/training.png" for m in MODELS],
           "--set-threads", *[f"train_{m}=1" for m in MODELS]]
TRIVIAL_SNAKEFILE = 'rule all:\n    input: "out.txt"\n\nrule make:\n    output: "out.txt"\n    shell: "touch {output}"\n'


def seconds(command: Sequence[str], env: Optional[Dict[str, str]] = None, cwd: Optional[Path] = None,
            expect: str = "") -> float:
    """Wall seconds of one command; fails loudly with its output's end if it fails or does not say ``expect``."""
    start = time.perf_counter()
    result = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, cwd=cwd)
    elapsed = time.perf_counter() - start
    output = result.stdout + result.stderr
    if result.returncode != 0 or expect not in output:
        raise SystemExit(f"error: {' '.join(map(str, command))} failed or did not say {expect!r}:\n{output[-3000:]}")
    return elapsed


def snakemake_command(root: Path, work: Path, configs: List[Path], *extra: str) -> List[str]:
    """The Snakemake command run.sh runs for this recipe (``root``: the checkout whose Snakefile is used)."""
    recipe = ROOT / "recipes/timit"
    return [str(PYTHON.parent / "snakemake"), "--snakefile", str(root / "Snakefile"), "--directory", str(work),
            "--configfile", str(recipe / "config.yaml"), *map(str, configs), "--config", f"recipe_dir={recipe}",
            "--cores", "2", "--printshellcmds", "--rerun-incomplete",
            *[f"stage_{s}" for s in range(9)], *TARGETS, *extra]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/asrkit-bench-recipe"),
                        help="run folder (default /tmp/asrkit-bench-recipe); a finished run there is reused")
    parser.add_argument("--repeats", type=int, default=5, help="times each command is timed; the median is kept")
    parser.add_argument("--baseline", type=Path, help="another checkout whose Snakefile and asrkit to time too")
    add_common_options(parser)
    args = parse_args(parser)
    if args.quick:
        args.repeats = 1
    args.work.mkdir(parents=True, exist_ok=True)
    configs = [args.work / "tiny.yaml", args.work / "three_models.yaml"]
    configs[0].write_text(TINY)
    configs[1].write_text(THREE_MODELS)
    run_sh = [RUN_SH, *[a for c in configs for a in ("--config", c)], "--dir", args.work, *RUN_ARGS, "--", *TARGETS]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    fresh = not (args.work / "exp").exists()
    first = seconds(run_sh, env)  # the first run, or a rerun if one had finished
    trivial = Path(tempfile.mkdtemp(prefix="bench-trivial-"))
    (trivial / "Snakefile").write_text(TRIVIAL_SNAKEFILE)
    bare = [PYTHON.parent / "snakemake", "--snakefile", trivial / "Snakefile", "--directory", trivial, "--cores", "1"]
    seconds(bare, env)  # its first run makes out.txt

    nothing = "Nothing to be done"
    commands = {
        "Python's start (`python -c pass`)": ([PYTHON, "-c", "pass"], env, ""),
        "Snakemake's import (`import snakemake.cli`)": ([PYTHON, "-c", "import snakemake.cli"], env, ""),
        "bare Snakemake, trivial Snakefile, no-op: the floor": (bare, env, nothing),
        "asrkit's Snakefile read, no DAG (`--list-rules`)": (snakemake_command(ROOT, args.work, configs, "--list-rules"),
                                                            env, "stage_9"),
        "Snakemake on asrkit's Snakefile, no-op": (snakemake_command(ROOT, args.work, configs), env, nothing),
        "run.sh's config-file check (`python -m asrkit.config_files`)":
            ([PYTHON, "-m", "asrkit.config_files", ROOT / "recipes/timit/config.yaml", *configs], env, ""),
        "run.sh, no-op rerun": (run_sh, env, nothing),
        "run.sh, dry run (`-- --dry-run`)": ([*run_sh, "--dry-run"], env, nothing),
    }
    if args.baseline:
        baseline_env = {**os.environ, "PYTHONPATH": str(args.baseline.resolve())}
        # the baseline's dry run first: a rule whose code or params changed would rerun, and the run would not be
        # the same any more
        seconds([*snakemake_command(args.baseline.resolve(), args.work, configs), "--dry-run"], baseline_env,
                expect=nothing)
        commands[f"Snakemake on `{args.baseline}`'s Snakefile, no-op (before)"] = (
            snakemake_command(args.baseline.resolve(), args.work, configs), baseline_env, nothing)
    times: Dict[str, List[float]] = {name: [] for name in commands}
    for _ in range(args.repeats):  # alternating, so that every command sees the same load
        for name, (command, command_env, expect) in commands.items():
            times[name].append(seconds(command, command_env, expect=expect))
    median = {name: statistics.median(values) for name, values in times.items()}
    rerun = median["run.sh, no-op rerun"]
    rows = [[name, value, f"{min(times[name]):.3g} to {max(times[name]):.3g}", value / rerun]
            for name, value in median.items()]

    ours = median["Snakemake on asrkit's Snakefile, no-op"]
    read = median["asrkit's Snakefile read, no DAG (`--list-rules`)"]
    floor = median["bare Snakemake, trivial Snakefile, no-op: the floor"]
    parts = [["Snakemake's floor (start, import, a trivial workflow)", floor],
             ["reading asrkit's workflow (its imports, the schema validation, the rules)", read - floor],
             ["building the DAG, checking every output and the rerun triggers", ours - read],
             ["run.sh: bash, the config-file check, the lock checks", rerun - ours]]
    summary = (f"{'first run' if fresh else 'first call (a run had finished there before)'}: {first:.1f} s.\n\n"
               + table(["command", "median wall s", "range", "/ run.sh no-op"], rows)
               + "\n\nA no-op rerun, by parts (differences of the medians above):\n\n"
               + table(["part", "wall s"], parts))
    if args.baseline:
        before = median[f"Snakemake on `{args.baseline}`'s Snakefile, no-op (before)"]
        summary += (f"\n\nBefore / after (Snakemake with nothing to do, `{args.baseline}` / this tree): "
                    f"**{before / ours:.2f}x** ({before:.2f} s against {ours:.2f} s).")
    publish("bench/pipeline.py" + (" --quick" if args.quick else ""), "Pipeline: no-op rerun",
            f"recipes/timit/run.sh, stages 0 to 8 and the training curves, tiny synthetic corpus with the demo's three "
            f"models and decoding (tests/tiny_recipe.py's config and {configs[1].name} above), `--cores 2`, in "
            f"`{args.work}`; each command {args.repeats} times, alternating.\n\n" + summary, args.results)


if __name__ == "__main__":
    main()
