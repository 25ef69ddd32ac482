# Stage 0, the demo corpus, and what every recipe's stage 1 (its rules/prepare.smk: the `manifests` rule) reads:
# the corpus folder, a configured copy or the demo corpus that the recipe's local/make_demo_corpus.py writes.

DEMO = config["corpus_dir"] is None
CORPUS_DIR = "data/demo_corpus" if DEMO else str(RECIPE_DIR / config["corpus_dir"])  # relative to the recipe
DEMO_SCRIPT = RECIPE_DIR / "local/make_demo_corpus.py"
if DEMO and not DEMO_SCRIPT.exists():
    raise WorkflowError(f"set corpus_dir in {RECIPE_DIR}/config.yaml: the folder holding the corpus "
                        f"({RECIPE} has no demo corpus, {DEMO_SCRIPT})")


def demo_corpus_args():
    """The demo_corpus section as the options of the recipe's demo script (`--num-train-speakers 200`, a list as its
    items); the held-out set's only when voices are held out, as only the TIMIT layout has one."""
    section = config.get("demo_corpus", {})
    if not HELDOUT:
        section = {k: v for k, v in section.items() if k not in ("heldout_voices", "num_heldout_speakers")}
    return " ".join(f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
                    for k, v in sorted(section.items()))


def corpus_args():
    """The recipe's `corpus.parts` as the --<split>-part options of its scripts (LibriSpeech-style layouts)."""
    parts = config.get("corpus", {}).get("parts", {})
    return " ".join(f"--{split}-part {parts[split]}" for split in SPLITS if split in parts)


rule demo_corpus:
    output:
        directory("data/demo_corpus"),
    params:
        script=DEMO_SCRIPT,
        seed=config["seed"],
        sizes=demo_corpus_args(),
        parts=corpus_args(),
    threads: config["num_jobs"]
    log:
        "logs/0_demo_corpus.log",
    shell:
        "{PY} {params.script:q} --out {output} --seed {params.seed} --num-jobs {threads} {params.sizes} {params.parts}"
        " 2>&1 | tee {log}"
