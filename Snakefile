# asrkit's workflow entry point: runs the recipe named in the config through its numbered stages.
# Users call recipes/<recipe>/run.sh, which calls this with the recipe's config.yaml.
import json
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")

validate(config, "asrkit/schemas/config.schema.yaml")  # before anything runs: a typo stops here, named
RECIPE = config["recipe"]
RECIPE_DIR = Path(config.get("recipe_dir", Path(workflow.basedir) / "recipes" / RECIPE))

include: "rules/common.smk"
include: RECIPE_DIR / "rules/prepare.smk"      # stages 0-1: corpus-specific
include: "rules/features.smk"                  # stage 2
include: "rules/lang.smk"                      # stage 3: units
include: "rules/train.smk"                     # stages 4-7
include: "rules/score.smk"                     # stages 8-9
