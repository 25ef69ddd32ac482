# asrkit's workflow entry point: runs the recipe named in the config through its numbered stages.
# Users call recipes/<recipe>/run.sh, which calls this with the recipe's config.yaml.
import json
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

WORKFLOW = Path(workflow.basedir) / "asrkit" / "workflow"  # the generic rules and the config schema
validate(config, WORKFLOW / "schemas/config.schema.yaml")  # before anything runs: a typo stops here, named
RECIPE = config["recipe"]
RECIPE_DIR = Path(config.get("recipe_dir", Path(workflow.basedir) / "recipes" / RECIPE))

include: WORKFLOW / "rules/common.smk"
include: RECIPE_DIR / "rules/prepare.smk"      # stages 0-1: corpus-specific
include: WORKFLOW / "rules/features.smk"                  # stage 2
include: WORKFLOW / "rules/lang.smk"                      # stage 3: units
include: WORKFLOW / "rules/train.smk"                     # stages 4-7
include: WORKFLOW / "rules/score.smk"                     # stages 8-9
