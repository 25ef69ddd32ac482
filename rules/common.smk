# Shared by all rules: the interpreter, config sections as JSON options, and the numbered stage targets.

PY = sys.executable  # the environment snakemake runs in (.venv): stage scripts run with it
SPLITS = ["train", "dev", "test"]
DECODING = config["decoding"]


def options(*sections):
    """Config sections as one JSON argument. Rules pass these as params, so changing a section reruns
    exactly the rules that read it (Snakemake's params rerun trigger)."""
    return json.dumps({s: config[s] for s in sections}, sort_keys=True)


def manifest(kind, split):
    return f"data/manifests/{RECIPE}_{kind}_{split}.jsonl.gz"


def decoded(pattern):
    return expand(pattern, method=DECODING["methods"], split=DECODING["splits"])


wildcard_constraints:
    split="|".join(SPLITS),
    method="greedy|prefix_beam",

# Numbered stages, as in Kaldi's run.sh: `run.sh --stage N --stop-stage M` asks for stage_N .. stage_M.
# Snakemake decides what is stale; a stage whose outputs are up to date is skipped. Each stage rule
# touches a marker once its outputs are complete, so a rerun with nothing changed has nothing to do.
STAGES = {
    0: "demo corpus (only when corpus_dir is null)",
    1: "manifests: standard sets with lhotse",
    2: "features: kaldifeat, stored with lhotse; global mean/variance",
    3: "lang: token table and phone folding tables",
    4: "train CTC",
    5: "decode",
    6: "score, plots, RESULTS.md",
}


def stage_done(n):
    return f"logs/stages/stage_{n}.done"
