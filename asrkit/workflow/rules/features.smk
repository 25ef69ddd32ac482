# Stage 2: static features per split (kaldifeat via lhotse), and the training set's mean/variance.
# Each split is computed in features.num_shards jobs (parallel on a cluster), whose manifests are merged.

# How the features are computed, not what they are (FeatureConfig.run_only_keys(): the shard count changes no
# feature, tested) is kept out of the settings that the feature, statistics and training rules read (and rerun on).
FEATURE_SETTINGS = {k: v for k, v in config["features"].items() if k not in FeatureConfig.run_only_keys()}
SHARDS = [f"{i}-of-{config['features']['num_shards']}" for i in range(1, config["features"]["num_shards"] + 1)]
# The train split's augmented copies (asrkit/data/augmentation.py): flags of the train features (with the seed of
# their random choices) and of the trainings alone, so that a change recomputes the train features and retrains,
# while dev and test are never recomputed. Off, no flag: the commands are those of a recipe before augmentation.
AUGMENTATION = config.get("augmentation", {})
AUGMENTATION_FLAGS = flags("augmentation", AUGMENTATION) if AugmentationConfig.from_dict(AUGMENTATION).enabled else ""
TRAIN_AUGMENTATION_FLAGS = f" {flags(None, {'seed': config['seed']})} {AUGMENTATION_FLAGS}" if AUGMENTATION_FLAGS else ""

# What a job that reads features runs first (cuts: its cut manifests): an archive that differs from the size and
# SHA-256 recorded when it was written is named and its shard's folder removed, and the job fails; the rerun then
# recomputes that shard, and what follows from it (asrkit/data/feature_archives.py).
VERIFY_FEATURES = "{{PY}} -m asrkit.data.feature_archives --remove-damaged --cuts {cuts} 2>&1 | tee -a {{log}}"


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
        features=lambda wildcards: flags("features", FEATURE_SETTINGS)
        + (TRAIN_AUGMENTATION_FLAGS if wildcards.split == "train" else ""),
    threads: config["num_jobs"]
    log:
        "logs/2_features_{split}_{shard}.log",
    shell:
        "{PY} -m asrkit.data.features compute --recordings {input.recordings} --supervisions {input.supervisions}"
        " --shard {wildcards.shard} --cuts {output.cuts} --storage-dir {output.storage} --num-jobs {threads}"
        " {params.features} 2>&1 | tee {log}"


# The shards' storage is an input too, though only their manifests are read: a shard whose storage is missing (a
# damaged archive's, removed by VERIFY_FEATURES) is then computed again, and the merge after it.
rule features:
    input:
        shards=expand(rules.feature_shard.output.cuts, shard=SHARDS, allow_missing=True),
        storage=expand(rules.feature_shard.output.storage, shard=SHARDS, allow_missing=True),
    output:
        cuts="data/features/cuts_{split}.jsonl.gz",
    log:
        "logs/2_features_{split}.log",
    shell:
        "{PY} -m asrkit.data.features merge --shards {input.shards} --cuts {output.cuts} 2>&1 | tee {log}"


rule feature_stats:
    input:
        "data/features/cuts_train.jsonl.gz",
    output:
        "data/features/stats.pt",
    params:
        features=flags("features", FEATURE_SETTINGS),
    log:
        "logs/2_feature_stats.log",
    shell:
        ": > {log} && " + VERIFY_FEATURES.format(cuts="{input}")
        + " && {PY} -m asrkit.data.features stats --cuts {input} --output {output} {params.features} 2>&1 | tee -a {log}"


# Cheap: on a cluster they run where Snakemake runs instead of waiting in the queue.
localrules:
    features,
