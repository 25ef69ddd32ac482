# __NAME__ stage 1: manifests from <corpus_dir>/<part>/<utterance>.{wav,txt} (CORPUS_DIR and corpus_args() come
# from asrkit/workflow/rules/corpus.smk; this recipe has no demo corpus, so corpus_dir must be set).


rule manifests:
    output:
        [manifest(kind, split) for kind in ("recordings", "supervisions") for split in SPLITS],
    params:
        script=RECIPE_DIR / "local/prepare.py",
        parts=corpus_args(),
    log:
        "logs/1_manifests.log",
    shell:
        "{PY} {params.script:q} --corpus-dir {CORPUS_DIR:q} --output-dir data/manifests --recipe {RECIPE}"
        " {params.parts} 2>&1 | tee {log}"
