# Stage 2: static features per split (kaldifeat via lhotse), and the training set's mean/variance.


rule features:
    input:
        recordings=manifest("recordings", "{split}"),
        supervisions=manifest("supervisions", "{split}"),
    output:
        cuts="data/features/cuts_{split}.jsonl.gz",
        storage=directory("data/features/feats_{split}"),
    params:
        options=json.dumps(config["features"], sort_keys=True),
    threads: config["num_jobs"]
    log:
        "logs/2_features_{split}.log",
    shell:
        "{PY} -m asrkit.features compute --recordings {input.recordings} --supervisions {input.supervisions}"
        " --cuts {output.cuts} --storage-dir {output.storage} --num-jobs {threads} --options {params.options:q}"
        " 2>&1 | tee {log}"


rule feature_stats:
    input:
        "data/features/cuts_train.jsonl.gz",
    output:
        "data/features/stats.pt",
    params:
        options=json.dumps(config["features"], sort_keys=True),
    log:
        "logs/2_feature_stats.log",
    shell:
        "{PY} -m asrkit.features stats --cuts {input} --output {output} --options {params.options:q} 2>&1 | tee {log}"


rule stage_2:
    output:
        touch(stage_done(2)),
    input:
        expand(rules.features.output.cuts, split=SPLITS),
        rules.feature_stats.output,
