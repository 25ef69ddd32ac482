# __NAME__ stages 0-1: manifests from <corpus_dir>/<part>/<utterance>.{wav,txt}.

if config["corpus_dir"] is None:
    raise WorkflowError(f"set corpus_dir in {RECIPE_DIR}/config.yaml: the folder holding the corpus parts")
CORPUS_DIR = str(RECIPE_DIR / config["corpus_dir"])  # relative to the recipe, or absolute
PARTS = config["corpus"]["parts"]


rule manifests:
    output:
        [manifest(kind, split) for kind in ("recordings", "supervisions") for split in SPLITS],
    params:
        script=RECIPE_DIR / "local/prepare.py",
        parts=" ".join(f"--{split}-part {PARTS[split]}" for split in SPLITS),
    log:
        "logs/1_manifests.log",
    shell:
        "{PY} {params.script:q} --corpus-dir {CORPUS_DIR:q} --output-dir data/manifests --recipe {RECIPE}"
        " {params.parts} 2>&1 | tee {log}"


rule stage_0:
    output:
        touch(stage_done(0)),


rule stage_1:
    output:
        touch(stage_done(1)),
    input:
        rules.manifests.output,
