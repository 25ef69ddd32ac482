"""Ablation of the beyond-the-paper ingredients on the demo corpus: each one switched on alone over demo.yaml.

Usage: python bench/ablation.py --work DIR [--seeds 42 43] [--variants NAME ...] [--jobs 2] [--results]

For each seed, a base run (``run.sh --config demo.yaml`` with the seed, the CTC and TRANS models and one
decoding each: CTC prefix beam 10, TRANS Graves beam 10) goes into ``DIR/seed<S>/base``; each variant is the
same config plus one switch, run in ``DIR/seed<S>/<variant>`` on the base run's corpus, features and models
(hard links, with Snakemake's records copied, so that only what the switch changes is redone: the training, for
the audio augmentations the train features too, for checkpoint averaging the decoding alone). A base run has
``--jobs`` cores; variants run ``--jobs`` at a time, one core each (``training.num_threads: 1``). The table gives dev, test and (when the demo corpus holds voices out) held-out
PER of each variant and its difference from the base of its seed; with several seeds, their mean and spread.
A finished run is reused, so the script can be rerun to add seeds or variants.
"""

import argparse
import shutil
import statistics
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

from report import publish, table

ROOT = Path(__file__).resolve().parents[1]
RUN_SH = ROOT / "recipes/timit/run.sh"
#: what every run of the ablation trains and decodes (on top of demo.yaml): one decoding per model
BASE = {
    "models": ["ctc", "transducer"],
    "decoding": {"ctc": ["prefix_beam"], "transducer": ["beam"], "beams": [10]},
    "training": {"num_threads": 1},
}
#: variant -> (the model it is measured on, what it switches on over BASE, what it is)
VARIANTS: Dict[str, Tuple[str, dict, str]] = {
    "spec_augment": ("ctc", {"training": {"spec_augment": True}}, "SpecAugment (training batches)"),
    "speed_perturb": ("ctc", {"augmentation": {"speed_perturb": [0.9, 1.1]}}, "speed perturbation 0.9/1.0/1.1"),
    "noise_reverb": ("ctc", {"augmentation": {"noise": 1, "reverb": 1}}, "babble noise + reverberation copies"),
    "wider_dropout": ("ctc", {"model": {"num_layers": 3, "hidden_size": 192, "dropout": 0.3}},
                      "3 x 192 BiLSTM, dropout 0.3 (demo: 2 x 128, 0.2)"),
    "plateau": ("ctc", {"training": {"lr_schedule": "plateau", "lr_decay": 1.0}},
                "lr halved on a dev plateau (instead of x0.85 per epoch)"),
    "average": ("ctc", {"decoding": {"avg": 3}}, "average of the last 3 epoch checkpoints"),
    "ctc_aux": ("transducer", {"transducer": {"ctc_loss_scale": 0.3}}, "CTC auxiliary loss 0.3 (TRANS)"),
}
LABELS = {"ctc": ("CTC", "prefix beam 10"), "transducer": ("TRANS", "beam 10")}


def merged(base: dict, extra: dict) -> dict:
    """``base`` with ``extra``'s keys replacing its own, section by section."""
    out = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in extra.items():
        out[key] = {**out.get(key, {}), **value} if isinstance(value, dict) else value
    return out


def run_recipe(work: Path, config: dict, cores: int) -> None:
    """``run.sh --config demo.yaml`` with ``config`` on top, into ``work`` on ``cores`` cores (its log in
    ``work/run.log``)."""
    work.mkdir(parents=True, exist_ok=True)
    overlay = work / "ablation.yaml"
    overlay.write_text(yaml.safe_dump(config, sort_keys=False))
    with open(work / "run.log", "w") as log:
        result = subprocess.run([str(RUN_SH), "--config", "demo.yaml", "--config", str(overlay), "--dir", str(work),
                                 "--cores", str(cores)], stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"error: the run in {work} failed; see {work / 'run.log'}")


def seed_from_base(base: Path, work: Path) -> None:
    """Give ``work`` the base run's data and models (hard links: outputs are replaced by renaming, never written
    in place) and Snakemake's records of them (copied), so that the variant redoes only what its switch changes."""
    if (work / "data").exists():
        return
    work.mkdir(parents=True, exist_ok=True)
    for made in ("data", "exp"):
        subprocess.run(["cp", "-al", str(base / made), str(work / made)], check=True)
    shutil.copytree(base / ".snakemake/metadata", work / ".snakemake/metadata")


def read_rows(work: Path, model: str) -> Dict[str, float]:
    """dev/test/heldout PER of ``model``'s one decoding in ``work``."""
    name, decoding = LABELS[model]
    text = (work / f"exp/{model}/RESULTS.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    for line in lines[2:]:
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        if cells["model"] == name and cells["decoding"].startswith(decoding):
            return {column.split()[0]: float(value) for column, value in cells.items() if column.endswith(" PER")}
    raise SystemExit(f"error: no {name} {decoding} row in {work}/exp/{model}/RESULTS.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, required=True, help="where the runs go (kept: a rerun reuses them)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=2, help="variants run side by side, one core each")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: tabulate the runs already finished (each row over the seeds it has)")
    parser.add_argument("--results", type=Path, nargs="?", const=ROOT / "bench/RESULTS.md", default=None)
    args = parser.parse_args()

    def run_seed_base(seed: int) -> None:
        base = args.work / f"seed{seed}/base"
        if not (base / "exp/transducer/RESULTS.md").exists():
            run_recipe(base, merged(BASE, {"seed": seed}), cores=args.jobs)  # CTC and TRANS side by side

    def run_variant(seed_and_name: Tuple[int, str]) -> None:
        seed, name = seed_and_name
        model, switch, _ = VARIANTS[name]
        work = args.work / f"seed{seed}/{name}"
        if not (work / f"exp/{model}/RESULTS.md").exists():
            seed_from_base(args.work / f"seed{seed}/base", work)
            run_recipe(work, merged(merged(BASE, {"seed": seed, "models": [model]}), switch), cores=1)
        print(f"{name} (seed {seed}): {read_rows(work, model)}", flush=True)

    if not args.report:
        for seed in args.seeds:  # one base at a time, on all the jobs' cores
            run_seed_base(seed)
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_variant, [(seed, name) for seed in args.seeds for name in args.variants]))

    rows: List[List[object]] = []
    splits: List[str] = []
    for name in ["base"] + args.variants:
        for model in (["ctc", "transducer"] if name == "base" else [VARIANTS[name][0]]):
            seeds = [seed for seed in args.seeds if (args.work / f"seed{seed}/{name}/exp/{model}/RESULTS.md").exists()]
            if not seeds:
                continue
            base = [read_rows(args.work / f"seed{seed}/base", model) for seed in seeds]
            got = [read_rows(args.work / f"seed{seed}/{name}", model) for seed in seeds]
            splits = splits or list(got[0])
            row: List[object] = [name if name == "base" else VARIANTS[name][2], LABELS[model][0],
                                 ", ".join(map(str, seeds))]
            for split in splits:
                values = [g[split] for g in got]
                mean = statistics.mean(values)
                spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
                delta = statistics.mean(g[split] - b[split] for g, b in zip(got, base))
                row.append(f"{mean:.2f}{spread}" + ("" if name == "base" else f" ({delta:+.2f})"))
            rows.append(row)
    body = ("A seed makes its own demo corpus, model initialisation and data order. PER in percent, the mean over "
            "the row's seeds, ± their standard deviation; in brackets the mean difference from the base run of "
            "the same seed. Each variant is demo.yaml plus its switch alone, trained 12 epochs like the base "
            "(so an augmentation that adds copies also adds steps per epoch).\n\n"
            + table(["variant", "model", "seeds", *[f"{split} PER" for split in splits]], rows))
    publish("ablation", "Ablation: beyond the paper on the demo corpus", body, args.results)


if __name__ == "__main__":
    main()
