"""Truth in results: no result outlives the model it came from, and no partial state passes for finished.

One finished tiny run is shared by the module; each case works on a copy of it: a retrain that fails, and
model.pt, best.pt, the checkpoints or one stage's outputs deleted by hand. Each rerun must redo exactly what is
missing or stale (the rules a dry run plans), and RESULTS.md must never show a row whose model is gone.
"""

import re
import shutil
from pathlib import Path
from typing import List, Set

import pytest
import torch

from asrkit.checkpoint import load_checkpoint
from tiny_recipe import Recipe, results_without_rtf

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

PLAN = re.compile(r"^(?:localrule|rule) (\w+):", re.M)
#: what retraining the CTC model reruns in the tiny recipe (stages 4, 8 and 9's RESULTS.md and curves)
RETRAIN = {"train_ctc", "decode", "score", "model_results", "results", "training_curves", "stage_4", "stage_8"}


@pytest.fixture(scope="module")
def finished(finished_tiny_run) -> Path:
    """The shared finished tiny run (tests/workflow/conftest.py), its config beside it as tiny.yaml."""
    return finished_tiny_run


def copy_of(finished: Path, tmp_path: Path) -> Recipe:
    """A copy of the finished run to damage (Snakemake's records included, so it is as finished as the original)."""
    shutil.copytree(finished / "work", tmp_path / "work", symlinks=True)
    return Recipe(tmp_path / "work", finished / "tiny.yaml")


def plan(recipe: Recipe, *args: str) -> Set[str]:
    """The rules a dry run would run."""
    dry = recipe.run(*args, snakemake=["--dry-run"], timeout=120)
    assert dry.returncode == 0, dry.stderr[-3000:]
    return set(PLAN.findall(dry.stdout))


def ran(result) -> Set[str]:
    return set(PLAN.findall(result.stdout + result.stderr))


def result_models(work: Path) -> List[str]:
    """The models RESULTS.md has rows of."""
    rows = [line.split("|")[1].strip() for line in (work / "RESULTS.md").read_text().splitlines()
            if line.startswith("|")]
    return sorted(set(rows[2:]))  # after the header and the |---| line


def assert_same_model_and_results(work: Path, finished: Path) -> None:
    rebuilt, original = (load_checkpoint(w / "exp/ctc/model.pt")["model"] for w in (work, finished / "work"))
    for name, weights in original.items():
        assert torch.equal(weights, rebuilt[name]), name
    assert results_without_rtf(work) == results_without_rtf(finished / "work")


def test_finished_run_has_nothing_to_do(finished, tmp_path):
    assert plan(copy_of(finished, tmp_path)) == set()


def test_failed_retrain_leaves_no_result_of_the_old_model_and_is_not_called_finished(finished, tmp_path):
    recipe = copy_of(finished, tmp_path)
    work = recipe.work
    changed = tmp_path / "amp.yaml"
    changed.write_text("training: {amp: true}\n")  # passes the schema; training refuses it on the CPU
    failed = recipe.run("--config", str(changed))
    assert failed.returncode != 0
    assert "training.amp True: float16 mixed precision needs a CUDA GPU" in failed.stdout + failed.stderr
    # the model is gone, and so is everything made from it
    assert not (work / "exp/ctc/model.pt").exists()
    assert not list((work / "exp/ctc").glob("decode_*")) and not (work / "exp/ctc/training.png").exists()
    assert result_models(work) == []

    # the same command again: training is redone (and fails the same way), not "Nothing to be done"
    assert "train_ctc" in plan(recipe, "--config", str(changed))
    # back to the old settings: the model and its results are rebuilt, the same as before
    assert plan(recipe) == RETRAIN
    rerun = recipe.run()
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert result_models(work) == ["CTC"]
    assert plan(recipe) == set()


def test_deleted_model_is_retrained_and_its_results_redone(finished, tmp_path):
    recipe = copy_of(finished, tmp_path)
    (recipe.work / "exp/ctc/model.pt").unlink()
    assert plan(recipe) == RETRAIN
    rerun = recipe.run()
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert ran(rerun) == RETRAIN
    # training resumed from its last checkpoint: the same model, the same results
    assert "resuming from exp/ctc/checkpoints/epoch-2.pt" in (recipe.work / "logs/4_train_ctc.log").read_text()
    assert_same_model_and_results(recipe.work, finished)
    assert plan(recipe) == set()


@pytest.mark.parametrize("training_state", ["exp/ctc/best.pt", "exp/ctc/checkpoints"])
def test_deleted_training_state_reruns_nothing(finished, tmp_path, training_state):
    """best.pt and the checkpoints are how training resumes, not results: model.pt and all that was made from
    it still stand (decoding.avg 1 reads no checkpoint)."""
    recipe = copy_of(finished, tmp_path)
    path = recipe.work / training_state
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert plan(recipe) == set()


@pytest.mark.parametrize("result, redone", [("RESULTS.md", {"results"}),
                                            ("exp/ctc/RESULTS.md", {"model_results"}),
                                            ("exp/ctc/training.png", {"training_curves"})])
def test_a_deleted_result_file_is_redone_alone(finished, tmp_path, result, redone):
    recipe = copy_of(finished, tmp_path)
    (recipe.work / result).unlink()
    assert plan(recipe) == redone


def test_deleted_decodings_are_redone_and_nothing_else(finished, tmp_path):
    recipe = copy_of(finished, tmp_path)
    shutil.rmtree(recipe.work / "exp/ctc/decode_greedy")  # stage 8's (and 9's) outputs of one decoding
    rerun = recipe.run()
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert ran(rerun) == {"decode", "score", "model_results", "results", "stage_8"}
    assert "greedy" in rerun.stdout + rerun.stderr
    assert_same_model_and_results(recipe.work, finished)
    assert plan(recipe) == set()


@pytest.mark.parametrize("stage_outputs, redone", [
    ("data/lang", {"lang", "stage_3"}),
    ("data/features", {"feature_shard", "features", "feature_stats", "stage_2"}),
    ("data/manifests", {"manifests", "stage_1"}),
])
def test_deleted_stage_outputs_are_rebuilt_with_what_reads_them(finished, tmp_path, stage_outputs, redone):
    """A stage rebuilt writes new files: what reads them is redone too (Snakemake's provenance), training
    included."""
    recipe = copy_of(finished, tmp_path)
    shutil.rmtree(recipe.work / stage_outputs)
    assert redone | RETRAIN - {"stage_4", "stage_8"} <= plan(recipe)


def test_a_damaged_feature_archive_is_named_and_recomputed_by_the_rerun(finished, tmp_path):
    """A train feats.lca cut short (a full disk during a copy) failed a retraining inside lilcom, naming nothing,
    and the rerun changed nothing: Snakemake saw the features as up to date. Now the retraining names the archive
    and removes its shard and the manifest that reads it, and the next rerun recomputes them, with nothing deleted
    by hand."""
    recipe = copy_of(finished, tmp_path)
    work = recipe.work
    archive = sorted((work / "data/features/feats_train").rglob("*.lca"))[0]
    shard = Path("data/features/feats_train") / archive.relative_to(work / "data/features/feats_train").parts[0]
    data = archive.read_bytes()
    archive.write_bytes(data[:len(data) // 2])
    (work / "exp/ctc/model.pt").unlink()  # a retraining, which reads the train features
    failed = recipe.run()
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert (f"error: {archive.relative_to(work)}: damaged feature archive: {len(data) // 2} bytes, {len(data)} when "
            f"it was written (cut short); it holds the features of ") in output
    assert (f"removed {shard} and data/features/cuts_train.jsonl.gz: a rerun recomputes them (stage 2) and what "
            f"was made from them") in output
    assert "lilcom" not in output
    assert {"feature_shard", "features", "feature_stats"} | RETRAIN - {"stage_4", "stage_8"} <= plan(recipe)
    rerun = recipe.run()
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert archive.read_bytes() == data  # recomputed, the same
    assert_same_model_and_results(work, finished)
    assert plan(recipe) == set()
