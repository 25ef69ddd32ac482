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
# How a run trains, not what it trains (TrainingConfig.run_only_keys()): passed on the command line but kept out of
# the params (and of the checkpoints' fingerprint), so that changing them neither retrains nor discards
# checkpoints. Resuming is exact, so they cannot change the model (num_threads aside: on the CPU the thread count
# moves the last bits of the float sums).
TRAINING = config["training"]
# The job's threads (training.num_threads, null: all the run's cores; a profile's set-threads overrides) are passed as
# {threads}, what Snakemake gives the job.
RUN_FLAGS = flags("training", {k: v for k, v in TRAINING.items()
                               if k in TrainingConfig.run_only_keys() and k != "num_threads"})
# Several training processes are started by torchrun (`torchrun --standalone --nproc_per_node N -m ...`); the
# job's threads are shared among them.
NUM_PROCESSES = TRAINING["num_processes"]
TRAIN_LAUNCHER = f"{PY} -m torch.distributed.run --standalone --nproc_per_node {NUM_PROCESSES}" \
    if NUM_PROCESSES > 1 else PY
# A training first removes what was made from the model it replaces (decodings, plots, RESULTS.md rows), and that
# of the models started from it: were it to fail, they would describe a model that no longer exists (Snakemake
# deletes a failed job's model.pt). Then it checks the feature archives it reads (VERIFY_FEATURES).
TRAIN_SHELL = (
    "{params.forget} && " + VERIFY_FEATURES.format(cuts="{input.train} {input.dev}")
    + " && {TRAIN_LAUNCHER} -m asrkit.training.train --device {DEVICE} --train-cuts {input.train}"
    " --dev-cuts {input.dev} --stats {input.stats} --tokens {input.tokens} --exp-dir {params.exp_dir}"
    " --model-type {params.model_type} {params.settings} {RUN_FLAGS} --training.num_threads {threads} {params.init}"
    " 2>&1 | tee -a {log}"
)
TRANSDUCER = config.get("transducer", {})
NGRAM_ORDER = NgramLmConfig.from_dict(config.get("ngram_lm", {})).order
DECODER_SIZES = {k: v for k, v in TRANSDUCER.items() if k in TransducerConfig.DECODER_KEYS}


def started_from(model):
    """``model`` and the recipe models started from it, directly or through others."""
    found = [model]
    for other in RECIPE_MODELS.values():
        if model in other.init.values():
            found += [m for m in started_from(other.name) if m not in found]
    return found


def forget_command(model, log):
    """The command that removes the results of ``model`` and of the models started from it, logging to ``log``
    (which it starts afresh): one process for them all."""
    models = " ".join(m for m in started_from(model) if m in RECIPE_MODELS)
    return f"{PY} -m asrkit.scoring.score forget --models {models} --results RESULTS.md 2>&1 | tee {log}"


def training_settings(model_type):
    """What shapes the trained model, as flags: a change reruns the training (and resumes no stale checkpoint).
    A CTC model reads no transducer setting."""
    return " ".join([
        flags(None, {"seed": config["seed"]}), flags("units", UNITS), flags("features", FEATURE_SETTINGS),
        *([AUGMENTATION_FLAGS] if AUGMENTATION_FLAGS else []),  # off, not even a blank: the params stay as they were
        flags("model", config["model"]), flags("transducer", TRANSDUCER) if model_type == "transducer" else "",
        flags("training", {k: v for k, v in TRAINING.items() if k not in TrainingConfig.run_only_keys()})])


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
            model_type=recipe_model.type,
            settings=training_settings(recipe_model.type),
            exp_dir=f"exp/{recipe_model.name}",
            init=" ".join(f"--init-{part} exp/{source}/model.pt" for part, source in recipe_model.init.items()),
            forget=forget_command(recipe_model.name, f"logs/{recipe_model.stage}_train_{recipe_model.name}.log"),
        threads: TRAINING.get("num_threads") or workflow.cores
        log:
            f"logs/{recipe_model.stage}_train_{recipe_model.name}.log",
        shell:
            TRAIN_SHELL


# The n-gram LM of the training transcripts (the tokens the models train on), for decodings with decoding.lm ngram;
# the order in the file name (ngram_lm.order chooses which one decodings read).
rule ngram_lm:
    input:
        train=TRAIN_INPUTS["train"],
        dev=TRAIN_INPUTS["dev"],
        tokens=TRAIN_INPUTS["tokens"],
        lang=TRAIN_INPUTS["lang"],
    output:
        arpa=f"exp/{NGRAM_LM}/{{order}}gram.arpa",
        report=f"exp/{NGRAM_LM}/{{order}}gram.json",
    wildcard_constraints:
        order="[0-9]+",
    params:
        units=flags("units", UNITS),
    log:
        "logs/5_ngram_lm_{order}gram.log",
    shell:
        "{PY} -m asrkit.training.ngram_lm --train-cuts {input.train} --dev-cuts {input.dev} --tokens {input.tokens}"
        " {params.units} --ngram_lm.order {wildcards.order} --output {output.arpa} 2>&1 | tee {log}"


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
        forget=forget_command(PHONE_LM, "logs/5_phone_lm.log"),
        # the prediction network's sizes, not the encoder's: an encoder setting must not retrain the phone LM
        settings=" ".join([flags(None, {"seed": config["seed"]}), flags("units", UNITS),
                           flags("transducer", DECODER_SIZES), flags("phone_lm", config.get("phone_lm", {}))]),
    log:
        "logs/5_phone_lm.log",
    shell:
        "{params.forget} && {PY} -m asrkit.training.phone_lm --train-cuts {input.train} --dev-cuts {input.dev}"
        " --tokens {input.tokens} --exp-dir exp/phone_lm {params.settings} 2>&1 | tee -a {log}"
