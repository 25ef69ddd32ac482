# TIMIT stages 0-1: the corpus (LDC copy, or the synthetic demo corpus) and its standard-set manifests.

DEMO = config["corpus_dir"] is None
CORPUS_DIR = "data/demo_corpus" if DEMO else str(RECIPE_DIR / config["corpus_dir"])  # relative to the recipe


rule demo_corpus:
    output:
        directory("data/demo_corpus"),
    params:
        script=RECIPE_DIR / "local/make_demo_corpus.py",
        seed=config["seed"],
        sizes=config.get("demo_corpus", {}),
    threads: config["num_jobs"]
    log:
        "logs/0_demo_corpus.log",
    shell:
        "{PY} {params.script} --out {output} --seed {params.seed} --num-jobs {threads}"
        " --num-train-speakers {params.sizes[num_train_speakers]} --num-dev-speakers {params.sizes[num_dev_speakers]}"
        " --num-test-speakers {params.sizes[num_test_speakers]} 2>&1 | tee {log}"


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


rule stage_0:
    output:
        touch(stage_done(0)),
    input:
        "data/demo_corpus" if DEMO else [],


rule stage_1:
    output:
        touch(stage_done(1)),
    input:
        rules.manifests.output,


localrules:  # stage markers: on a cluster they run where Snakemake runs instead of waiting in the queue
    stage_0,
    stage_1,
