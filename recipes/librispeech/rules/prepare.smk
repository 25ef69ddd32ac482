# LibriSpeech stage 1: the manifests of the corpus parts in `corpus.parts` (a LibriSpeech copy, or the synthetic
# demo corpus of stage 0; CORPUS_DIR, DEMO and corpus_args() come from asrkit/workflow/rules/corpus.smk).


rule manifests:
    input:
        CORPUS_DIR if DEMO else [],
    output:
        [manifest(kind, split) for kind in ("recordings", "supervisions") for split in SPLITS],
    params:
        script=RECIPE_DIR / "local/prepare_librispeech.py",
        corpus_dir=CORPUS_DIR,
        parts=corpus_args(),
    threads: config["num_jobs"]
    log:
        "logs/1_manifests.log",
    shell:
        "{PY} {params.script:q} --corpus-dir {params.corpus_dir:q} --output-dir data/manifests {params.parts}"
        " --num-jobs {threads} 2>&1 | tee {log}"
