# Stage 3: the token table (blank + training phones) and the 60->48 and 60->39 folding tables.


rule lang:
    output:
        tokens="data/lang/tokens.txt",
        maps=expand("data/lang/phones.60-{n}.map", n=[48, 39]),
    params:
        phone_set=config["data"]["phone_set"],
    log:
        "logs/3_lang.log",
    shell:
        "{PY} -m asrkit.lang --lang-dir data/lang --phone-set {params.phone_set} 2>&1 | tee {log}"


rule stage_3:
    output:
        touch(stage_done(3)),
    input:
        rules.lang.output,


# Cheap: on a cluster they run where Snakemake runs instead of waiting in the queue.
localrules:
    lang,
    stage_3,
