# Stage 4: deep bidirectional LSTM trained with CTC. Resumes from exp/ctc/checkpoints after a crash.


rule train_ctc:
    input:
        train="data/features/cuts_train.jsonl.gz",
        dev="data/features/cuts_dev.jsonl.gz",
        stats="data/features/stats.pt",
        tokens="data/lang/tokens.txt",
    output:
        model="exp/ctc/model.pt",
        history="exp/ctc/history.json",
    params:
        options=options("seed", "data", "features", "model", "training"),
    threads: workflow.cores
    log:
        "logs/4_train_ctc.log",
    shell:
        "{PY} -m asrkit.train --train-cuts {input.train} --dev-cuts {input.dev} --stats {input.stats}"
        " --tokens {input.tokens} --exp-dir exp/ctc --options {params.options:q} --num-threads {threads}"
        " 2>&1 | tee {log}"


rule stage_4:
    output:
        touch(stage_done(4)),
    input:
        rules.train_ctc.output,
