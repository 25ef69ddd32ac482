# Stages 8-9: decode dev and test with every configured search and beam; score (PER on 39 phones, or WER and
# CER for sentencepiece units), plot, RESULTS.md.

METRICS = ["per"] if PHONES else ["wer", "cer"]  # the units' error rates, in asrkit.data.units' order


def decodings(model):
    """Decoding settings of a model: 'greedy', or '<method>_<beam>' for each configured beam width."""
    for method in DECODING[RECIPE_MODELS[model].type]:
        yield from ["greedy"] if method == "greedy" else [f"{method}_{beam}" for beam in DECODING["beams"]]


def decoded(pattern):
    return [pattern.format(model=model, decoding=decoding, split=split)
            for model in MODELS for decoding in decodings(model) for split in DECODING["splits"]]


def method_and_beam(decoding):
    method, _, beam = decoding.rpartition("_") if decoding != "greedy" else ("greedy", "", "1")
    return method, int(beam)


def decoding_label(decoding):
    """How RESULTS.md names a decoding, e.g. 'prefix beam 10'."""
    method, beam = method_and_beam(decoding)
    label = "greedy" if method == "greedy" else f"{method.replace('_', ' ')} {beam}"
    return label + (f", avg {DECODING['avg']}" if DECODING["avg"] > 1 else "")


wildcard_constraints:
    decoding="greedy|[a-z_]+_[0-9]+",
    model="|".join(RECIPE_MODELS),


# Decoding, scoring and a model's table go before other jobs that are ready (a training started from this model):
# the first results show as soon as they can.
rule decode:
    input:
        model="exp/{model}/model.pt",
        cuts="data/features/cuts_{split}.jsonl.gz",
    output:
        hyps="exp/{model}/decode_{decoding}/hyps_{split}.txt",
        timing="exp/{model}/decode_{decoding}/hyps_{split}.json",
    priority: 1
    params:
        method=lambda w: method_and_beam(w.decoding)[0],
        beam=lambda w: method_and_beam(w.decoding)[1],
        avg=flags("decoding", {"avg": DECODING["avg"]}),
    log:
        "logs/8_decode_{model}_{decoding}_{split}.log",
    shell:
        ": > {log} && " + VERIFY_FEATURES.format(cuts="{input.cuts}")
        + " && {PY} -m asrkit.decoding.decode --cuts {input.cuts} --model {input.model} --method {params.method}"
        " --beam {params.beam} {params.avg} --device {DEVICE} --output {output.hyps} 2>&1 | tee -a {log}"


rule score:
    input:
        cuts="data/features/cuts_{split}.jsonl.gz",
        hyps=rules.decode.output.hyps,
        model="exp/{model}/model.pt",
    output:
        reports=[f"exp/{{model}}/decode_{{decoding}}/{metric}_{{split}}.txt" for metric in METRICS],
        summary="exp/{model}/decode_{decoding}/summary_{split}.json",
        confusion="exp/{model}/decode_{decoding}/confusion_{split}.png",
    priority: 1
    params:
        name=lambda w: RECIPE_MODELS[w.model].label,
        label=lambda w: decoding_label(w.decoding),
    log:
        "logs/9_score_{model}_{decoding}_{split}.log",
    shell:
        "{PY} -m asrkit.scoring.score report --cuts {input.cuts} --hyps {input.hyps} --model {input.model}"
        " --model-name {params.name} --decoding {params.label:q} --split {wildcards.split}"
        " --reports {output.reports} --summary {output.summary} --confusion {output.confusion} 2>&1 | tee {log}"


rule training_curves:
    input:
        "exp/{model}/history.json",
    output:
        "exp/{model}/training.png",
    log:
        "logs/9_training_curves_{model}.log",
    shell:
        "{PY} -m asrkit.scoring.score curves --history {input} --output {output} 2>&1 | tee {log}"


rule sensitivity:
    input:
        model="exp/{model}/model.pt",
        cuts="data/features/cuts_test.jsonl.gz",
    output:
        "exp/{model}/sensitivity.png",
    log:
        "logs/9_sensitivity_{model}.log",
    shell:
        "{PY} -m asrkit.cli sensitivity --model {input.model} --cuts {input.cuts} --device {DEVICE} --output {output}"
        " 2>&1 | tee {log}"


# A model's rows as soon as its own decodings are scored (printed too), so that a first result shows up while the
# other models still train; RESULTS.md gathers every model's when all are done.
rule model_results:
    input:
        lambda w: [f"exp/{w.model}/decode_{decoding}/summary_{split}.json"
                   for decoding in decodings(w.model) for split in DECODING["splits"]],
    output:
        f"exp/{{model}}/{MODEL_RESULTS}",
    priority: 1
    log:
        "logs/9_results_{model}.log",
    shell:
        "{PY} -m asrkit.scoring.score results --summaries {input} --output {output} 2>&1 | tee {log}"


rule results:
    input:
        decoded("exp/{model}/decode_{decoding}/summary_{split}.json"),
    output:
        "RESULTS.md",
    log:
        "logs/9_results.log",
    shell:
        "{PY} -m asrkit.scoring.score results --summaries {input} --output {output} 2>&1 | tee {log}"


# Cheap (a table, plots of one utterance and of the loss curves): on a cluster they run where Snakemake runs
# instead of waiting in the queue. Decoding and scoring, whose cost grows with the test sets, are jobs.
localrules:
    model_results,
    results,
    training_curves,
    sensitivity,
