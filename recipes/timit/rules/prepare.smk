# TIMIT stage 1: the standard-set manifests of the corpus (an LDC copy, or the synthetic demo corpus of stage 0;
# CORPUS_DIR and DEMO come from asrkit/workflow/rules/corpus.smk).


rule manifests:
    input:
        CORPUS_DIR if DEMO else [],
    output:
        [manifest(kind, split) for kind in ("recordings", "supervisions") for split in SPLITS],
    params:
        script=RECIPE_DIR / "local/prepare_timit.py",
        corpus_dir=CORPUS_DIR,
        # the full LDC corpus must give the published set sizes; the demo corpus is smaller by design
        standard_sizes="--standard-sizes" if config["data"]["require_standard_sizes"] and not DEMO else "",
    threads: config["num_jobs"]
    log:
        "logs/1_manifests.log",
    shell:
        "{PY} {params.script} --corpus-dir {params.corpus_dir:q} --output-dir data/manifests"
        " --num-jobs {threads} {params.standard_sizes} 2>&1 | tee {log}"
