# Stages 4-7: the models of asrkit/workflow/stages.py's RECIPE_MODELS (CTC, TRANS, PRETRANS), one rule each, and the
# phone LM (the prediction network pretrained on the tokens: phones or pieces). Each resumes from its
# exp/<model>/checkpoints after a crash. Only the config's `models`, and what they start from, are trained.

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
    " --tokens {input.tokens} --exp-dir {params.exp_dir} --options {params.options:q}"
    " --run-options {RUN_OPTIONS:q} --num-threads {threads} {params.init} 2>&1 | tee {log}"
)


DECODER_SIZES = ("decoder_embedding_dim", "decoder_hidden_size", "decoder_num_layers")


def model_options(model_type):
    """The encoder config, with the model type and, for transducers, the prediction network/joiner sizes."""
    options = {**config["model"], "type": model_type}
    if model_type == "transducer":
        options.update({k: v for k, v in config.get("transducer", {}).items() if k in DECODER_SIZES + ("joiner_dim",)})
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


# One rule per model, named train_<model>, logged as logs/<stage>_train_<model>.log.
for recipe_model in RECIPE_MODELS.values():

    rule:
        name:
            f"train_{recipe_model.name}"
        input:
            **TRAIN_INPUTS,
            **{part: f"exp/{source}/model.pt" for part, source in recipe_model.init.items()},
        output:
            model=f"exp/{recipe_model.name}/model.pt",
            history=f"exp/{recipe_model.name}/history.json",
        params:
            options=training_options(recipe_model.type),
            exp_dir=f"exp/{recipe_model.name}",
            init=" ".join(f"--init-{part} exp/{source}/model.pt" for part, source in recipe_model.init.items()),
        threads: workflow.cores
        log:
            f"logs/{recipe_model.stage}_train_{recipe_model.name}.log",
        shell:
            TRAIN_SHELL


rule phone_lm:
    input:
        train=TRAIN_INPUTS["train"],
        dev=TRAIN_INPUTS["dev"],
        tokens=TRAIN_INPUTS["tokens"],
        lang=TRAIN_INPUTS["lang"],
    output:
        model=f"exp/{PHONE_LM}/model.pt",
        history=f"exp/{PHONE_LM}/history.json",
    params:
        # the prediction network's sizes, not the encoder's: an encoder setting must not retrain the phone LM
        options=json.dumps({"seed": config["seed"], "units": UNITS,
                            "model": {k: v for k, v in model_options("transducer").items() if k in DECODER_SIZES},
                            "phone_lm": config.get("phone_lm", {})}, sort_keys=True),
    log:
        "logs/5_phone_lm.log",
    shell:
        "{PY} -m asrkit.training.phone_lm --train-cuts {input.train} --dev-cuts {input.dev} --tokens {input.tokens}"
        " --exp-dir exp/phone_lm --options {params.options:q} 2>&1 | tee {log}"
