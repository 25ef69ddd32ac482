# Stages 5-6: decode dev and test with each configured method, score on 39 phones, plot, RESULTS.md.


rule decode_ctc:
    input:
        model="exp/ctc/model.pt",
        cuts="data/features/cuts_{split}.jsonl.gz",
    output:
        hyps="exp/ctc/decode_{method}/hyps_{split}.txt",
        timing="exp/ctc/decode_{method}/hyps_{split}.json",
    params:
        beam=lambda w: DECODING["beam"] if w.method == "prefix_beam" else 1,
    log:
        "logs/5_decode_ctc_{method}_{split}.log",
    shell:
        "{PY} -m asrkit.decode --cuts {input.cuts} --model {input.model} --method {wildcards.method}"
        " --beam {params.beam} --output {output.hyps} 2>&1 | tee {log}"


rule score_ctc:
    input:
        cuts="data/features/cuts_{split}.jsonl.gz",
        hyps=rules.decode_ctc.output.hyps,
        model="exp/ctc/model.pt",
    output:
        report="exp/ctc/decode_{method}/per_{split}.txt",
        summary="exp/ctc/decode_{method}/summary_{split}.json",
        confusion="exp/ctc/decode_{method}/confusion_{split}.png",
    params:
        phone_set=config["data"]["phone_set"],
        decoding=lambda w: "greedy" if w.method == "greedy" else f"prefix beam {DECODING['beam']}",
    log:
        "logs/6_score_ctc_{method}_{split}.log",
    shell:
        "{PY} -m asrkit.score per --cuts {input.cuts} --hyps {input.hyps} --phone-set {params.phone_set}"
        " --model-name CTC --decoding {params.decoding:q} --split {wildcards.split} --model {input.model}"
        " --report {output.report} --summary {output.summary} --confusion {output.confusion} 2>&1 | tee {log}"


rule training_curves:
    input:
        "exp/{model}/history.json",
    output:
        "exp/{model}/training.png",
    log:
        "logs/6_training_curves_{model}.log",
    shell:
        "{PY} -m asrkit.score curves --history {input} --output {output} 2>&1 | tee {log}"


rule results:
    input:
        decoded("exp/ctc/decode_{method}/summary_{split}.json"),
    output:
        "RESULTS.md",
    log:
        "logs/6_results.log",
    shell:
        "{PY} -m asrkit.score results --summaries {input} --output {output} 2>&1 | tee {log}"


rule stage_5:
    output:
        touch(stage_done(5)),
    input:
        decoded(rules.decode_ctc.output.hyps),


rule stage_6:
    output:
        touch(stage_done(6)),
    input:
        rules.results.output,
        "exp/ctc/training.png",
        decoded(rules.score_ctc.output.report),


rule all:
    default_target: True
    input:
        rules.stage_6.input,
