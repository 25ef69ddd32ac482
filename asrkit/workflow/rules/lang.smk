# Stage 3, units: the token table (blank first) and what the units need beside it. Phones: the 61->48 and
# 61->39 folding tables. Sentencepiece: the model, trained on the training transcripts.

UNITS = config["units"]
PHONES = UNITS["type"] == "phones"


rule lang:
    input:
        [] if PHONES else manifest("supervisions", "train"),
    output:
        tokens="data/lang/tokens.txt",
        extra=expand("data/lang/phones.61-{n}.map", n=[48, 39]) if PHONES else ["data/lang/bpe.model"],
    params:
        units=flags("units", UNITS),
        train=lambda w, input: f"--train-supervisions {input[0]}" if input else "",
    log:
        "logs/3_lang.log",
    shell:
        "{PY} -m asrkit.data.lang --lang-dir data/lang {params.units} {params.train} 2>&1 | tee {log}"


# Cheap: on a cluster they run where Snakemake runs instead of waiting in the queue.
localrules:
    lang,
