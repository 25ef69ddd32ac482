# Stage 2: static features per split (kaldifeat via lhotse), and the training set's mean/variance.
# Each split is computed in features.num_shards jobs (parallel on a cluster), whose manifests are merged.

# How the features are computed, not what they are: the shard count changes no feature (tested), so it is
# kept out of the options that the feature, statistics and training rules read (and rerun on).
FEATURE_OPTIONS = {k: v for k, v in config["features"].items() if k != "num_shards"}
SHARDS = [f"{i}-of-{config['features']['num_shards']}" for i in range(1, config["features"]["num_shards"] + 1)]


rule feature_shard:
    input:
        recordings=manifest("recordings", "{split}"),
        supervisions=manifest("supervisions", "{split}"),
    output:
        cuts="data/features/shards/cuts_{split}_{shard}.jsonl.gz",
        storage=directory("data/features/feats_{split}/{shard}"),
    wildcard_constraints:
        shard=r"\d+-of-\d+",
    params:
        options=json.dumps(FEATURE_OPTIONS, sort_keys=True),
    threads: config["num_jobs"]
    log:
        "logs/2_features_{split}_{shard}.log",
    shell:
        "{PY} -m asrkit.data.features compute --recordings {input.recordings} --supervisions {input.supervisions}"
        " --shard {wildcards.shard} --cuts {output.cuts} --storage-dir {output.storage} --num-jobs {threads}"
        " --options {params.options:q} 2>&1 | tee {log}"


rule features:
    input:
        expand(rules.feature_shard.output.cuts, shard=SHARDS, allow_missing=True),
    output:
        cuts="data/features/cuts_{split}.jsonl.gz",
    log:
        "logs/2_features_{split}.log",
    shell:
        "{PY} -m asrkit.data.features merge --shards {input} --cuts {output.cuts} 2>&1 | tee {log}"


rule feature_stats:
    input:
        "data/features/cuts_train.jsonl.gz",
    output:
        "data/features/stats.pt",
    params:
        options=json.dumps(FEATURE_OPTIONS, sort_keys=True),
    log:
        "logs/2_feature_stats.log",
    shell:
        "{PY} -m asrkit.data.features stats --cuts {input} --output {output} --options {params.options:q} 2>&1 | tee {log}"


# Cheap: on a cluster they run where Snakemake runs instead of waiting in the queue.
localrules:
    features,
