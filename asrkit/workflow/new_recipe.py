"""``asrkit new-recipe NAME``: a working recipe from the template in ``asrkit/workflow/templates/recipe``.

The new recipe reads a corpus laid out as ``<corpus_dir>/<part>/<utterance>.wav`` + ``<utterance>.txt`` and
uses sentencepiece units; every stage after its manifests is the shared workflow. docs/new_recipe.md says how
to adapt it.
"""

import os
import re
import shutil
from importlib import resources
from pathlib import Path

#: a recipe name is also its manifests' prefix and a config value: lower case, digits and underscores
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: the repository holding the Snakefile and local/run_recipe.sh (asrkit's parent folder)
ROOT = Path(__file__).resolve().parents[2]


def create_recipe(name: str, recipes_dir: Path) -> Path:
    """Copy the template to ``recipes_dir/name`` with its name and the way to the shared driver filled in.

    Returns the recipe folder. Refuses a bad name and an existing folder.
    """
    if not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"recipe name {name!r}: use lower-case letters, digits and underscores, starting with "
                         f"a letter")
    recipe_dir = Path(recipes_dir).resolve() / name
    if recipe_dir.exists():
        raise ValueError(f"{recipe_dir} exists already: choose another name or remove it")
    # relative, so that the repository and its recipes can move together
    root = os.path.relpath(ROOT, recipe_dir)
    with resources.as_file(resources.files("asrkit.workflow") / "templates" / "recipe") as template:
        shutil.copytree(template, recipe_dir, ignore=shutil.ignore_patterns("__pycache__"))
    for path in recipe_dir.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace("__NAME__", name).replace("__ROOT__", root))
    for script in (recipe_dir / "run.sh", recipe_dir / "local" / "prepare.py"):
        script.chmod(0o755)
    return recipe_dir
