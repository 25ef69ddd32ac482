# Stages 4-7: CTC, the phone LM (prediction network pretraining on the tokens: phones or pieces), TRANS and
# PRETRANS. Each resumes from its exp/<model>/checkpoints after a crash. Only the models listed in the config's
# `models` are trained.

TRAIN_INPUTS = {
    "train": "data/features/cuts_train.jsonl.gz",
    "dev": "data/features/cuts_dev.jsonl.gz",
    "stats": "data/features/stats.pt",
    "tokens": "data/lang/tokens.txt",
    "lang": rules.lang.output.extra,  # the folding tables, or the sentencepiece model the tokens come from
}
# How a run trains, not what it trains: kept out of the params (and of the checkpoints' fingerprint), so that
# changing them neither retrains nor discards checkpoints. Resuming is exact, so they cannot change the model.
RUN_ONLY_KEYS = ("num_workers", "checkpoint_every_batches", "keep_last_checkpoints")
RUN_OPTIONS = json.dumps({k: v for k, v in config["training"].items() if k in RUN_ONLY_KEYS}, sort_keys=True)
# Several training processes are started by torchrun (`torchrun --standalone --nproc_per_node N -m ...`); the
# job's threads are shared among them.
NUM_PROCESSES = config["training"]["num_processes"]
TRAIN_LAUNCHER = f"{PY} -m torch.distributed.run --standalone --nproc_per_node {NUM_PROCESSES}" \
    if NUM_PROCESSES > 1 else PY
TRAIN_SHELL = (
    "{TRAIN_LAUNCHER} -m asrkit.training.train --device {DEVICE} --train-cuts {input.train} --dev-cuts {input.dev} --stats {input.stats}"
    " --tokens {input.tokens} --exp-dir exp/{wildcards.model} --options {params.options:q}"
    " --run-options {RUN_OPTIONS:q} --num-threads {threads} {params.init} 2>&1 | tee {log}"
)


def model_options(model_type):
    """The encoder config, with the model type and, for transducers, the prediction network/joiner sizes."""
    options = {**config["model"], "type": model_type}
    if model_type == "transducer":
        sizes = ("decoder_embedding_dim", "decoder_hidden_size", "decoder_num_layers", "joiner_dim")
        options.update({k: v for k, v in config.get("transducer", {}).items() if k in sizes})
    return options


def training_options(model_type):
    """What shapes the trained model: a change reruns the training (and resumes no stale checkpoint)."""
    options = {"seed": config["seed"], "features": FEATURE_OPTIONS}
    options["units"] = UNITS
    options["training"] = {k: v for k, v in config["training"].items() if k not in RUN_ONLY_KEYS}
    options["model"] = model_options(model_type)
    if model_type == "transducer":
        options["transducer"] = config.get("transducer", {})
    return json.dumps(options, sort_keys=True)


rule train_ctc:
    input:
        **TRAIN_INPUTS,
    output:
        model="exp/{model}/model.pt",
        history="exp/{model}/history.json",
    wildcard_constraints:
        model="ctc",
    params:
        options=training_options("ctc"),
        init="",
    threads: workflow.cores
    log:
        "logs/4_train_{model}.log",
    shell:
        TRAIN_SHELL


rule phone_lm:
    input:
        train=TRAIN_INPUTS["train"],
        dev=TRAIN_INPUTS["dev"],
        tokens=TRAIN_INPUTS["tokens"],
        lang=TRAIN_INPUTS["lang"],
    output:
        model="exp/phone_lm/model.pt",
        history="exp/phone_lm/history.json",
    params:
        options=json.dumps({"seed": config["seed"], "units": UNITS,
                            "model": model_options("transducer"),
                            "phone_lm": config.get("phone_lm", {})}, sort_keys=True),
    log:
        "logs/5_phone_lm.log",
    shell:
        "{PY} -m asrkit.training.phone_lm --train-cuts {input.train} --dev-cuts {input.dev} --tokens {input.tokens}"
        " --exp-dir exp/phone_lm --options {params.options:q} 2>&1 | tee {log}"


rule train_transducer:
    input:
        **TRAIN_INPUTS,
    output:
        model="exp/{model}/model.pt",
        history="exp/{model}/history.json",
    wildcard_constraints:
        model="transducer",
    params:
        options=training_options("transducer"),
        init="",
    threads: workflow.cores
    log:
        "logs/6_train_{model}.log",
    shell:
        TRAIN_SHELL


rule train_pretrained_transducer:
    input:
        **TRAIN_INPUTS,
        ctc="exp/ctc/model.pt",
        phone_lm="exp/phone_lm/model.pt",
    output:
        model="exp/{model}/model.pt",
        history="exp/{model}/history.json",
    wildcard_constraints:
        model="pretrained_transducer",
    params:
        options=training_options("transducer"),
        init=lambda w, input: f"--init-encoder {input.ctc} --init-decoder {input.phone_lm}",
    threads: workflow.cores
    log:
        "logs/7_train_{model}.log",
    shell:
        TRAIN_SHELL


rule stage_4:
    output:
        touch(stage_done(4)),
    input:
        [f"exp/ctc/model.pt"] if "ctc" in MODELS else [],


rule stage_5:
    output:
        touch(stage_done(5)),
    input:
        ["exp/phone_lm/model.pt"] if "pretrained_transducer" in MODELS else [],


rule stage_6:
    output:
        touch(stage_done(6)),
    input:
        ["exp/transducer/model.pt"] if "transducer" in MODELS else [],


rule stage_7:
    output:
        touch(stage_done(7)),
    input:
        ["exp/pretrained_transducer/model.pt"] if "pretrained_transducer" in MODELS else [],


localrules:  # stage markers: on a cluster they run where Snakemake runs instead of waiting in the queue
    stage_4,
    stage_5,
    stage_6,
    stage_7,
