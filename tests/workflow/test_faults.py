"""Nothing lost: the recipe survives a kill in any long stage and resumes exactly; a changed setting reruns
exactly what it affects; two runs in one folder are refused; a full disk while storing features replaces nothing.

Real processes throughout: run.sh is started in a session of its own and SIGKILLed as a whole process group
(Snakemake, its jobs and their workers at once, as the OOM killer or a lost machine would) at a random point
inside each long stage. One uninterrupted reference run is shared by the module; one more run is killed once
inside each of the five long stages in turn (demo corpus, manifests, features, training mid-epoch, decoding),
unlocked and restarted after each kill, and must end with exactly what the reference made.
"""

import gzip
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import psutil
import pytest
import torch
from lhotse import CutSet

from asrkit.checkpoint import load_checkpoint
from asrkit.data.features import compute_features
from process_groups import file_size_limited, group_members, kill_group, run_group
from asrkit.config import to_flags
from tiny_recipe import RUN_SH, TINY, Recipe, load_features, results_without_rtf
from timit_skeleton import FEATURES, training_flags

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

SEED = 4  # seeds the kill points: a failing sequence of kills can be replayed

WAIT_TIMEOUT = 600  # seconds to reach a kill point
PLAN = re.compile(r"^(?:localrule|rule) (\w+):", re.M)


# ----------------------------------------------------------------------------------------------------------
# Running and killing the recipe


def wait_for(condition: Callable[[], bool], process: subprocess.Popen, log: Path, what: str) -> None:
    """Poll ``condition`` until it holds; fail (and kill the run) if the run ends first or time runs out."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            ended = f"ended with exit code {process.returncode}" if process.poll() is not None else "timed out"
            kill_group(process)
            pytest.fail(f"the run {ended} before {what}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.02)


def command_lines(pgid: int) -> List[str]:
    lines = []
    for process in group_members(pgid):
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.Error:
            pass
    return lines


# ----------------------------------------------------------------------------------------------------------
# Where to kill


@dataclass
class KillPoint:
    """Inside a stage: wait until ``reached``, then a random extra delay of up to ``max_delay`` seconds."""

    stage: str
    command: str  # part of the command line of the stage's processes
    reached: Callable[[Path], bool]
    max_delay: float
    done: Callable[[Path], bool]  # the stage's outputs are all there


def demo_files_written(count: int) -> Callable[[Path], bool]:
    """The demo corpus stage has written ``count`` WAV files into its unfinished (partial) folder."""
    return lambda work: len(list(work.glob("data/.demo_corpus.*.partial/*/*/*/*.WAV"))) >= count


def mid_epoch_checkpoint(min_batches: int) -> Callable[[Path], bool]:
    """Training has written a checkpoint inside an epoch, after at least ``min_batches`` batches."""
    def reached(work: Path) -> bool:
        return any(int(p.stem.split("-")[3]) >= min_batches
                   for p in work.glob("exp/ctc/checkpoints/epoch-*-batch-*.pt"))
    return reached


def exists(pattern: str, count: int = 1) -> Callable[[Path], bool]:
    return lambda work: len(list(work.glob(pattern))) >= count


def kill_points(rng: random.Random) -> List[KillPoint]:
    # The demo corpus has 90 utterances and training about 20 batches an epoch (a checkpoint every 2): the
    # random thresholds stay well inside both. Every other stage's job spends its first seconds importing
    # torch and lhotse, and the features stage has three jobs in a row: the delays land inside.
    return [
        KillPoint("demo corpus", "make_demo_corpus.py", demo_files_written(rng.randint(1, 60)), 0.0,
                  done=exists("data/demo_corpus")),
        KillPoint("manifests", "prepare_timit.py", exists("logs/1_manifests.log"), 1.0,
                  done=exists("data/manifests/timit_*.jsonl.gz", 6)),
        KillPoint("features", "asrkit.data.features compute", exists("data/features/feats_*/.*-of-*.partial"), 0.3,
                  done=exists("data/features/cuts_*.jsonl.gz", 3)),
        KillPoint("training", "asrkit.training.train", mid_epoch_checkpoint(rng.choice([2, 4, 6])), 0.05,
                  done=exists("exp/ctc/model.pt")),
        KillPoint("decoding", "asrkit.decoding.decode", exists("logs/8_decode_*.log"), 1.0,
                  done=exists("exp/ctc/decode_*/hyps_test.txt", 2)),
    ]


@dataclass
class Kill:
    point: KillPoint
    delay: float
    running: List[str]  # command lines of the run's processes at the moment of the kill
    done: bool  # whether the stage's outputs were all there at that moment
    checkpoints: List[str]  # exp/ctc/checkpoints/ at that moment
    after_kill: subprocess.CompletedProcess  # run.sh started again, before unlocking
    unlock: str  # the command it printed
    second_run: Optional[subprocess.CompletedProcess] = None  # run.sh started while the run was working
    unlock_attempt: Optional[subprocess.CompletedProcess] = None  # run.sh -- --unlock, the same


def checkpoint_names(work: Path) -> List[str]:
    def order(p: Path):
        parts = p.stem.split("-")
        return int(parts[1]), int(parts[3]) if len(parts) == 4 else 10 ** 9
    return [p.name for p in sorted((work / "exp/ctc/checkpoints").glob("epoch-*.pt"), key=order)]


def kill_inside(recipe: Recipe, point: KillPoint, rng: random.Random, log: Path) -> Kill:
    """Start the recipe (it resumes whatever the last kill interrupted), kill it inside ``point.stage``."""
    process = recipe.start(log)
    second_run = unlock_attempt = None
    try:
        wait_for(lambda: point.reached(recipe.work), process, log, f"reaching the {point.stage} stage")
        if point.stage == "decoding":  # meanwhile, somebody starts a second run in the same folder, and unlocks it
            second_run = run_group(recipe.command(), timeout=60)
            unlock_attempt = run_group([str(RUN_SH), "--dir", str(recipe.work), "--", "--unlock"], timeout=60)
        delay = rng.uniform(0, point.max_delay)
        time.sleep(delay)
        os.killpg(process.pid, signal.SIGSTOP)  # freeze everything to see where the kill lands
        running, done, checkpoints = command_lines(process.pid), point.done(recipe.work), checkpoint_names(recipe.work)
    finally:
        kill_group(process)
    after_kill = recipe.run(timeout=120)
    printed = re.search(r"unlock it with: +(.+)", after_kill.stderr)
    unlock = printed.group(1) if printed else ""
    if unlock:
        unlocked = run_group(["bash", "-c", unlock], timeout=120)  # the command exactly as printed
        assert unlocked.returncode == 0, unlocked.stderr[-2000:]
    return Kill(point, delay, running, done, checkpoints, after_kill, unlock, second_run, unlock_attempt)


# ----------------------------------------------------------------------------------------------------------
# The runs


@pytest.fixture(scope="module")
def config(finished_tiny_run) -> Path:
    return finished_tiny_run / "tiny.yaml"


@pytest.fixture(scope="module")
def reference(finished_tiny_run) -> Path:
    """An uninterrupted run (shared with the stale-result tests: tests/workflow/conftest.py)."""
    return finished_tiny_run / "work"


@pytest.fixture(scope="module")
def killed(tmp_path_factory, config, reference) -> Dict:
    """A run killed inside each long stage in turn, restarted after each kill, then run to the end."""
    work = tmp_path_factory.mktemp("killed")
    recipe, rng, log = Recipe(work, config), random.Random(SEED), work.parent / "killed-run.log"
    kills = {point.stage: kill_inside(recipe, point, rng, log) for point in kill_points(rng)}
    for stage, kill in kills.items():  # where the kills landed (pytest -rP shows it)
        jobs = sorted({word for line in kill.running for word in line.split()
                       if word.startswith("asrkit.") or word.endswith(".py") and "snakemake" not in word})
        print(f"killed in {stage} {kill.delay:.2f} s after its kill point: running {jobs}, outputs complete: "
              f"{kill.done}, newest checkpoint: {(kill.checkpoints or [None])[-1]}")
    final = recipe.run()
    assert final.returncode == 0, final.stdout[-3000:] + final.stderr[-3000:]
    return {"work": work, "kills": kills, "config": config}


# ----------------------------------------------------------------------------------------------------------
# Kills


def test_each_kill_landed_inside_its_stage(killed):
    for stage, kill in killed["kills"].items():
        # its outputs were not all written yet, or its job was still running (e.g. about to exit)
        assert not kill.done or any(kill.point.command in line for line in kill.running), (
            f"the kill {kill.delay:.2f} s into the {stage} stage came after it had finished: {kill.running}")
    # training was killed between two mid-epoch checkpoints, so it must resume inside an epoch
    newest = killed["kills"]["training"].checkpoints[-1]
    assert re.fullmatch(r"epoch-\d+-batch-\d+\.pt", newest), killed["kills"]["training"].checkpoints


def test_after_a_kill_run_sh_says_the_folder_is_locked_and_how_to_unlock(killed):
    work = killed["work"]
    for stage, kill in killed["kills"].items():
        assert kill.after_kill.returncode == 1, (stage, kill.after_kill.stderr)
        assert f"{work} is locked by an earlier run that did not finish" in kill.after_kill.stderr, stage
        assert kill.unlock == f"{RUN_SH} --dir {work} -- --unlock", stage
        assert "Traceback" not in kill.after_kill.stderr


def test_a_second_run_in_the_same_folder_is_refused_while_one_works(killed):
    kill = killed["kills"]["decoding"]
    for second in (kill.second_run, kill.unlock_attempt):  # unlocking a working run's folder is refused too
        assert second.returncode == 1
        assert f"run.sh: another run is working in {killed['work']}; wait for it to finish" in second.stderr
        # and it started nothing: the first run was not disturbed (its results are checked against the reference)
        assert "snakemake" not in second.stdout.lower() + second.stderr.lower()


def test_demo_corpus_is_byte_identical(reference, killed):
    assert file_bytes(killed["work"] / "data/demo_corpus") == file_bytes(reference / "data/demo_corpus")


def test_manifests_and_features_are_identical(reference, killed):
    work = killed["work"]
    for manifest in sorted((reference / "data/manifests").glob("*.jsonl.gz")):
        assert manifest_lines(work / "data/manifests" / manifest.name, work) == manifest_lines(manifest, reference)
    for split in ("train", "dev", "test"):
        name = f"data/features/cuts_{split}.jsonl.gz"
        assert manifest_lines(work / name, work) == manifest_lines(reference / name, reference)
        storage = f"data/features/feats_{split}"
        assert file_bytes(work / storage) == file_bytes(reference / storage)
        resumed, straight = (CutSet.from_file(w / name).to_eager() for w in (work, reference))
        for cut in straight:
            np.testing.assert_array_equal(load_features(resumed[cut.id], work), load_features(cut, reference))
    stats, resumed_stats = (torch.load(w / "data/features/stats.pt", weights_only=True) for w in (reference, work))
    for key in stats:
        assert torch.equal(stats[key], resumed_stats[key]), key


def test_training_resumed_mid_epoch_to_the_same_weights(reference, killed):
    work = killed["work"]
    newest = killed["kills"]["training"].checkpoints[-1]
    assert f"resuming from exp/ctc/checkpoints/{newest}" in (work / "logs/4_train_ctc.log").read_text()
    straight = load_checkpoint(reference / "exp/ctc/model.pt")["model"]
    resumed = load_checkpoint(work / "exp/ctc/model.pt")["model"]
    assert straight.keys() == resumed.keys()
    for name, weights in straight.items():
        assert torch.equal(weights, resumed[name]), name
    # the loss curves too, all but the wall-clock seconds
    assert history(work) == history(reference)


def test_results_are_identical_but_for_the_real_time_factor(reference, killed):
    assert results_without_rtf(killed["work"]) == results_without_rtf(reference)
    for decoding in ("greedy", "prefix_beam_4"):
        name = f"exp/ctc/decode_{decoding}/hyps_test.txt"
        assert (killed["work"] / name).read_text() == (reference / name).read_text()


def test_no_partial_file_is_left_behind(reference, killed):
    # A killed writer leaves its hidden .partial temporary; the next writer of the same output deletes it.
    for work in (reference, killed["work"]):
        left = [str(p.relative_to(work)) for p in work.rglob("*partial*") if ".snakemake" not in p.parts]
        assert not left, left


def test_resumed_run_is_complete(killed):
    """Snakemake's records survived the kills: asked again, there is nothing left to do."""
    dry = run_group(Recipe(killed["work"], killed["config"]).command(snakemake=["--dry-run"]), timeout=120)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Nothing to be done" in dry.stdout + dry.stderr


# ----------------------------------------------------------------------------------------------------------
# What a changed setting reruns (dry runs on the finished reference)


def planned(reference: Path, config: Path, tmp_path: Path, change: str = "") -> set:
    """The rules a dry run plans on the finished reference with one more config file holding ``change``."""
    changed = tmp_path / "changed.yaml"
    changed.write_text(change or "{}\n")
    result = run_group(Recipe(reference, config).command("--config", str(changed), snakemake=["--dry-run"]),
                       timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return set(PLAN.findall(result.stdout))


def test_unchanged_config_plans_nothing(reference, config, tmp_path):
    assert planned(reference, config, tmp_path) == set()


def test_feature_setting_reruns_features_and_what_follows_only(reference, config, tmp_path):
    plan = planned(reference, config, tmp_path, "features: {type: fbank, num_mel_bins: 23}\n")
    assert {"features", "feature_stats", "train_ctc", "decode", "score", "results"} <= plan
    assert not plan & {"demo_corpus", "manifests", "lang"}


def test_model_setting_reruns_training_and_what_follows_only(reference, config, tmp_path):
    plan = planned(reference, config, tmp_path, "model: {num_layers: 1, hidden_size: 12, stack_frames: 3}\n")
    assert {"train_ctc", "decode", "score", "results", "training_curves"} <= plan
    assert not plan & {"demo_corpus", "manifests", "features", "feature_stats", "lang"}


def test_transducer_setting_does_not_retrain_ctc(reference, config, tmp_path):
    assert planned(reference, config, tmp_path, "transducer: {prune_range: 4}\n") == set()  # models: [ctc]


def test_checkpoint_frequency_does_not_retrain(reference, config, tmp_path):
    # resuming is exact, so where the checkpoints fall cannot change the model
    assert planned(reference, config, tmp_path, "training: {checkpoint_every_batches: 3}\n") == set()


# ----------------------------------------------------------------------------------------------------------
# Two runs started at once


def test_two_runs_started_at_once_one_is_refused(tmp_path):
    """Snakemake takes its lock only once it has built the plan, seconds after starting: run.sh must not let a
    second run through in that time."""
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    recipe = Recipe(tmp_path / "work", config)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    runs = [recipe.start(log) for log in logs]
    try:
        deadline = time.monotonic() + 120
        while all(run.poll() is None for run in runs):
            assert time.monotonic() < deadline, "neither run was refused"
            time.sleep(0.02)
        ended = [i for i, run in enumerate(runs) if run.poll() is not None]
        assert len(ended) == 1, "both runs ended"  # the other one is working (for minutes) until killed below
    finally:
        for run in runs:
            kill_group(run)
    assert runs[ended[0]].returncode == 1
    assert f"run.sh: another run is working in {recipe.work}" in logs[ended[0]].read_text()


# ----------------------------------------------------------------------------------------------------------
# A transducer's training killed mid-epoch, on the skeleton corpus's features (conftest.py) (stages 6-7; the recipe runs above train CTC only, to stay fast)

TRANSDUCER = {
    "seed": 3, "model_type": "transducer",
    "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3, "dropout": 0.1},
    # the pruned loss is switched on after 3 batches and raised after 6: a resume after batch 4 must know that
    "transducer": {"decoder_embedding_dim": 16, "decoder_hidden_size": 16, "joiner_dim": 16, "warmup_batches": 3},
    "training": {"num_epochs": 2, "max_duration": 1, "optimizer": "adam", "lr": 0.01, "num_workers": 1,
                 "checkpoint_every_batches": 2, "keep_last_checkpoints": 2},
}


def test_transducer_training_killed_mid_epoch_resumes_exactly(skeleton, tmp_path):
    features = skeleton / "features"
    command = [sys.executable, "-m", "asrkit.training.train", "--train-cuts", str(features / "cuts_train.jsonl.gz"),
               "--dev-cuts", str(features / "cuts_dev.jsonl.gz"), "--stats", str(features / "stats.pt"),
               "--tokens", str(skeleton / "lang/tokens.txt"), *training_flags(TRANSDUCER), "--training.num_threads", "1"]
    straight = run_group(command + ["--exp-dir", str(tmp_path / "straight")], timeout=600)
    assert straight.returncode == 0, straight.stderr[-3000:]

    killed = subprocess.Popen(command + ["--exp-dir", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not (tmp_path / "killed/checkpoints/epoch-1-batch-4.pt").exists():
            assert killed.poll() is None and time.monotonic() < deadline, "training ended before batch 4"
            time.sleep(0.02)
    finally:
        kill_group(killed)
    assert not (tmp_path / "killed/model.pt").exists()
    resumed = run_group(command + ["--exp-dir", str(tmp_path / "killed")], timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert re.search(r"resuming from \S+/epoch-1-batch-\d+\.pt", resumed.stderr)
    straight_weights = load_checkpoint(tmp_path / "straight/model.pt")["model"]
    resumed_weights = load_checkpoint(tmp_path / "killed/model.pt")["model"]
    for name, weights in straight_weights.items():
        assert torch.equal(weights, resumed_weights[name]), name


# ----------------------------------------------------------------------------------------------------------
# A write error while storing features


@pytest.mark.parametrize("num_jobs", [1, 2])
def test_write_error_while_storing_features_replaces_nothing(skeleton, tmp_path, num_jobs):
    recordings, supervisions = (skeleton / f"manifests/timit_{kind}_train.jsonl.gz"
                                for kind in ("recordings", "supervisions"))
    cuts, storage = tmp_path / "features/cuts_train.jsonl.gz", tmp_path / "features/feats_train"
    compute_features(recordings, supervisions, cuts, storage, FEATURES)  # the earlier, good output
    before = file_bytes(tmp_path / "features")
    assert sum(map(len, before.values())) > 8192  # so that the 4 kB limit below cuts the new features short

    result = subprocess.run(
        [*file_size_limited("asrkit.data.features", 4096), "compute", "--recordings", str(recordings),
         "--supervisions", str(supervisions), "--cuts", str(cuts), "--storage-dir", str(storage),
         "--num-jobs", str(num_jobs), "--min-seconds-per-job", "0", *to_flags("features", {"type": "fbank", "num_mel_bins": 80})],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode != 0
    assert f"error: could not write the features to {storage} and {cuts}: File too large" in result.stderr, \
        result.stderr[-3000:]
    assert "nothing was replaced" in result.stderr
    assert file_bytes(tmp_path / "features") == before  # same files, same bytes, no temporaries left


# ----------------------------------------------------------------------------------------------------------
# Helpers for comparing two runs


def file_bytes(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def manifest_lines(path: Path, work: Path) -> List[str]:
    """A gzipped JSON-lines manifest as text (gzip headers carry a time stamp), the run's folder made neutral."""
    with gzip.open(path, "rt") as f:
        return f.read().replace(str(work.resolve()), "<work>").splitlines()


def history(work: Path) -> List[Dict]:
    return [{k: v for k, v in epoch.items() if k != "seconds"}
            for epoch in json.loads((work / "exp/ctc/history.json").read_text())]
