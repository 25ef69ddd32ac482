# asrkit's workflow: a recipe's numbered stages, as in Kaldi's run.sh. Users call recipes/<recipe>/run.sh, which
# runs this with the recipe's config.yaml. The stages, their rules and the modules they run are listed in one
# table, asrkit/workflow/stages.py; the rules are in asrkit/workflow/rules/ and, for stages 0-1, the recipe's
# rules/prepare.smk.
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

from asrkit.config import check_across_keys, write_schema
from asrkit.workflow.run_summary import print_summary
from asrkit.workflow.stages import MODEL_PLOTS, MODEL_RESULTS, NGRAM_LM, PHONE_LM, RECIPE_MODELS, STAGES

min_version("9.0")

WORKFLOW = Path(workflow.basedir) / "asrkit" / "workflow"  # the generic rules
# Before anything runs, the config against the schema derived from asrkit/config.py (which also fills in the
# defaults): a typo stops here, named.
validate(config, write_schema(Path(".snakemake/asrkit/config.schema.json").resolve()))
try:
    check_across_keys(config)  # what the schema cannot say: settings that contradict each other
except ValueError as e:
    raise WorkflowError(str(e)) from None
unknown_models = [m for m in config["models"] if m not in RECIPE_MODELS]
if unknown_models:
    raise WorkflowError(f"models: {', '.join(map(repr, unknown_models))} not known; expected some of "
                        f"{', '.join(RECIPE_MODELS)} (asrkit/workflow/stages.py)")
undecoded = [m for m in config["models"] if not config["decoding"][RECIPE_MODELS[m].type]]
if undecoded:  # else every stage would run, and scoring find nothing to score
    raise WorkflowError(f"decoding.{RECIPE_MODELS[undecoded[0]].type}: empty, so {undecoded[0]} would be trained and "
                        f"never decoded; name a search, or leave {undecoded[0]} out of models")
RECIPE = config["recipe"]
RECIPE_DIR = Path(config.get("recipe_dir") or Path(workflow.basedir) / "recipes" / RECIPE)

include: WORKFLOW / "rules/common.smk"
include: WORKFLOW / "rules/corpus.smk"          # stage 0, and what stage 1 shares across recipes
include: RECIPE_DIR / "rules/prepare.smk"       # stage 1: the corpus-specific manifests
include: WORKFLOW / "rules/features.smk"        # stage 2
include: WORKFLOW / "rules/lang.smk"            # stage 3
include: WORKFLOW / "rules/train.smk"           # stages 4-7
include: WORKFLOW / "rules/score.smk"           # stages 8-9


# What each stage makes for this config; `run.sh --stage N --stop-stage M` asks for stage_N .. stage_M. The
# models are named by every stage from 4 on that reads them: Snakemake only rebuilds a missing file that a target
# names or that a job it reruns reads, so a model.pt deleted (by hand, or by Snakemake after a failed retrain)
# under results that still exist would otherwise count as finished.
TRAINED = [f"exp/{m}/model.pt" for m in MODELS]
STAGE_TARGETS = {
    0: [CORPUS_DIR] if DEMO else [],
    1: rules.manifests.output,
    2: [*expand(rules.features.output.cuts, split=SPLITS), *rules.feature_stats.output],
    3: rules.lang.output,
    **{stage: [f"exp/{m}/model.pt" for m in MODELS if RECIPE_MODELS[m].stage == stage]
       for stage in {recipe_model.stage for recipe_model in RECIPE_MODELS.values()}},
    5: [f"exp/{NGRAM_LM}/{NGRAM_ORDER}gram.arpa",  # the n-gram LM (its rule reports the dev perplexity)
        *([f"exp/{PHONE_LM}/model.pt"] if any(PHONE_LM in RECIPE_MODELS[m].init.values() for m in MODELS)
          or "neural" in DECODING["lm"] else [])],
    8: [*TRAINED, *decoded(rules.decode.output.hyps)],
    9: [*TRAINED, *rules.results.output, *decoded(rules.score.output.reports[0]),
        *[f"exp/{model}/{plot}.png" for model in MODELS for plot in MODEL_PLOTS],
        *[f"exp/{model}/{MODEL_RESULTS}" for model in MODELS]],
}


rule all:
    default_target: True
    input:
        STAGE_TARGETS[9],


# A stage is a target without outputs of its own, like `all`: Snakemake checks each of its files on every run,
# so a stage whose files were deleted is redone (a marker file would stand for them and hide the loss), and a
# rerun with everything up to date has nothing to do. A stage with nothing to make for this config names the
# Snakefile, which exists: a target without input or output would run every time.
for stage in STAGES:

    rule:
        name:
            f"stage_{stage.number}"
        input:
            STAGE_TARGETS[stage.number] or [workflow.main_snakefile],
        localrule: True


# At the end of a successful run: the time of each stage (when it ran jobs), then the results.
onsuccess:
    print_summary(log, "RESULTS.md")  # log: the paths of Snakemake's log files of this run
