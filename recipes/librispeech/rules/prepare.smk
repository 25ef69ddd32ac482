# LibriSpeech stages 0-1: the corpus (a LibriSpeech copy, or the synthetic demo corpus) and its manifests.

DEMO = config["corpus_dir"] is None
CORPUS_DIR = "data/demo_corpus" if DEMO else str(RECIPE_DIR / config["corpus_dir"])  # relative to the recipe
PARTS = config["corpus"]["parts"]
PART_ARGS = " ".join(f"--{split}-part {PARTS[split]}" for split in SPLITS)


rule demo_corpus:
    output:
        directory("data/demo_corpus"),
    params:
        script=RECIPE_DIR / "local/make_demo_corpus.py",
        seed=config["seed"],
        sizes=config["demo_corpus"],
        parts=PART_ARGS,
    threads: config["num_jobs"]
    log:
        "logs/0_demo_corpus.log",
    shell:
        "{PY} {params.script:q} --out {output} --seed {params.seed} --num-jobs {threads} {params.parts}"
        " --num-train-speakers {params.sizes[num_train_speakers]} --num-dev-speakers {params.sizes[num_dev_speakers]}"
        " --num-test-speakers {params.sizes[num_test_speakers]}"
        " --utterances-per-speaker {params.sizes[utterances_per_speaker]} 2>&1 | tee {log}"


rule manifests:
    input:
        CORPUS_DIR if DEMO else [],
    output:
        [manifest(kind, split) for kind in ("recordings", "supervisions") for split in SPLITS],
    params:
        script=RECIPE_DIR / "local/prepare_librispeech.py",
        corpus_dir=CORPUS_DIR,
        parts=PART_ARGS,
    threads: config["num_jobs"]
    log:
        "logs/1_manifests.log",
    shell:
        "{PY} {params.script:q} --corpus-dir {params.corpus_dir:q} --output-dir data/manifests {params.parts}"
        " --num-jobs {threads} 2>&1 | tee {log}"


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
