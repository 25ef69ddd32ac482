# Stages 8-9: decode dev and test with every configured search, beam and LM (the LM's weights chosen on dev
# first); score (PER on 39 phones, or WER and CER for sentencepiece units), plot, RESULTS.md.
import re

METRICS = ["per"] if PHONES else ["wer", "cer"]  # the units' error rates, in asrkit.data.units' order
# A decoding's name: 'greedy', or '<method>_<beam>', followed by '_<order>gram' or '_neural' with an LM.
LM_SUFFIX = {"none": "", "ngram": f"_{NGRAM_ORDER}gram", "neural": "_neural"}
DECODING_NAME = re.compile(r"(?P<method>greedy)|(?P<search>[a-z_]+?)_(?P<beam>[0-9]+)(?:_(?P<lm>[0-9]+gram|neural))?")


def decodings(model):
    """Decoding settings of a model: 'greedy', or '<method>_<beam><LM suffix>' for each configured beam width
    and LM (decoding.lm)."""
    for method in DECODING[RECIPE_MODELS[model].type]:
        yield from ["greedy"] if method == "greedy" else [
            f"{method}_{beam}{LM_SUFFIX[lm]}" for beam in DECODING["beams"] for lm in DECODING["lm"]]


def decoded(pattern):
    return [pattern.format(model=model, decoding=decoding, split=split)
            for model in MODELS for decoding in decodings(model) for split in DECODING["splits"]]


def parse_decoding(decoding):
    """A decoding's (method, beam, lm): lm is none, ngram or neural (decoding.lm)."""
    match = DECODING_NAME.fullmatch(decoding)
    if match["method"]:
        return "greedy", 1, "none"
    lm = match["lm"] or "none"
    return match["search"], int(match["beam"]), "neural" if lm == "neural" else ("none" if lm == "none" else "ngram")


def lm_file(decoding):
    """The file of a decoding's LM: the n-gram LM's ARPA file of the order in its name, or the phone LM."""
    lm = DECODING_NAME.fullmatch(decoding)["lm"]
    return f"exp/{PHONE_LM}/model.pt" if lm == "neural" else f"exp/{NGRAM_LM}/{lm}.arpa"


def decoding_label(decoding):
    """How RESULTS.md names a decoding, e.g. 'prefix beam 10' or 'prefix beam 10, 2-gram LM' (scoring adds the
    LM's weights, chosen on dev)."""
    method, beam, lm = parse_decoding(decoding)
    label = "greedy" if method == "greedy" else f"{method.replace('_', ' ')} {beam}"
    if lm != "none":
        label += ", neural LM" if lm == "neural" else f", {DECODING_NAME.fullmatch(decoding)['lm'][:-4]}-gram LM"
    return label + (f", avg {DECODING['avg']}" if DECODING["avg"] > 1 else "")


def lm_inputs(wildcards):
    """What a decoding with an LM reads besides the model: the LM and the weights chosen on dev."""
    if parse_decoding(wildcards.decoding)[2] == "none":
        return {}
    return {"lm": lm_file(wildcards.decoding),
            "lm_weights": f"exp/{wildcards.model}/decode_{wildcards.decoding}/lm_weights.json"}


wildcard_constraints:
    decoding="greedy|[a-z_]+_[0-9]+(_[0-9]+gram|_neural)?",
    model="|".join(RECIPE_MODELS),


# The LM weight and insertion bonus of a decoding with an LM: the best of decoding.lm_weight x decoding.lm_bonus on
# dev, never on test. The grid is a param: changing it chooses again, and the decodings that read the choice rerun.
rule lm_weights:
    input:
        model="exp/{model}/model.pt",
        cuts="data/features/cuts_dev.jsonl.gz",
        lm=lambda w: lm_file(w.decoding),
    output:
        "exp/{model}/decode_{decoding}/lm_weights.json",
    priority: 1
    params:
        method=lambda w: parse_decoding(w.decoding)[0],
        beam=lambda w: parse_decoding(w.decoding)[1],
        lm=lambda w: parse_decoding(w.decoding)[2],
        settings=flags("decoding", {k: DECODING[k] for k in ("avg", "lm_weight", "lm_bonus")}),
    log:
        "logs/8_lm_weights_{model}_{decoding}.log",
    shell:
        ": > {log} && " + VERIFY_FEATURES.format(cuts="{input.cuts}")
        + " && {PY} -m asrkit.decoding.lm_weights --cuts {input.cuts} --model {input.model} --method {params.method}"
        " --beam {params.beam} --lm {params.lm} --lm-file {input.lm} {params.settings} --device {DEVICE}"
        " --output {output} 2>&1 | tee -a {log}"


# Decoding, scoring and a model's table go before other jobs that are ready (a training started from this model):
# the first results show as soon as they can.
rule decode:
    input:
        unpack(lm_inputs),
        model="exp/{model}/model.pt",
        cuts="data/features/cuts_{split}.jsonl.gz",
    output:
        hyps="exp/{model}/decode_{decoding}/hyps_{split}.txt",
        timing="exp/{model}/decode_{decoding}/hyps_{split}.json",
    priority: 1
    params:
        method=lambda w: parse_decoding(w.decoding)[0],
        beam=lambda w: parse_decoding(w.decoding)[1],
        avg=flags("decoding", {"avg": DECODING["avg"]}),
        lm=lambda w, input: f"--lm {parse_decoding(w.decoding)[2]} --lm-file {input.lm} --lm-weights {input.lm_weights}"
        if "lm" in input.keys() else "",
    log:
        "logs/8_decode_{model}_{decoding}_{split}.log",
    shell:
        ": > {log} && " + VERIFY_FEATURES.format(cuts="{input.cuts}")
        + " && {PY} -m asrkit.decoding.decode --cuts {input.cuts} --model {input.model} --method {params.method}"
        " --beam {params.beam} {params.avg} {params.lm} --device {DEVICE} --output {output.hyps} 2>&1 | tee -a {log}"


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
