"""Training in several processes: 2 CPU processes under torchrun (gloo, DistributedDataParallel) train the same
model as 1 process accumulating 2 batches per step, and a killed 2-process training resumes exactly.

The model is SGD-trained without dropout (the ranks draw their own dropout masks, so dropout would make the
two set-ups differ by design) and with weight noise from its second epoch (the noise is drawn once per step,
the same in every process, and restarts from best.pt, which rank 0 writes and every rank reads).
"""

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from asrkit.checkpoint import load_checkpoint
from asrkit.training.train import train
from process_groups import kill_group, run_group
from timit_skeleton import training_flags, training_setup

pytestmark = pytest.mark.slow  # minutes: left out of `make test-fast`

#: 32 training cuts of 0.3 s, 3 a batch: 11 batches an epoch, 6 steps of 2 (lhotse splits the last batch in two)
OPTIONS = {
    "seed": 5, "model_type": "ctc",
    "model": {"num_layers": 2, "hidden_size": 16, "stack_frames": 3, "dropout": 0.0},
    "training": {"num_epochs": 3, "max_duration": 1, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                 "weight_noise_std": 0.01, "weight_noise_start_epoch": 2, "num_workers": 0,
                 "checkpoint_every_batches": 2},
}
TIMEOUT = 300  # seconds for one training run
# DDP's gradient is (g0 + g1) / 2 (summed by gloo), accumulation's g0 / 2 + g1 / 2 (summed in backward): halving
# is exact in floating point, so here they agree to the bit (measured: 0), but another accumulation count or
# reduction order would differ by float32 rounding, ~1e-7 relative per step, which 18 SGD steps with momentum
# carry to the weights. Another global batch (the control below: 1 batch a step) moves them by ~1.
WEIGHT_TOLERANCE = 1e-5


def options(processes: int, accumulate: int, **training) -> Dict:
    """OPTIONS for ``processes`` x ``accumulate`` batches a step, and other ``training`` settings."""
    return {**OPTIONS, "training": {**OPTIONS["training"], "num_processes": processes,
                                    "accumulate_batches": accumulate, **training}}


def inputs(skeleton: Path) -> List[Path]:
    """train() and asrkit.training.train's inputs: the train and dev cuts, the statistics and the token table."""
    features = skeleton / "features"
    return [features / "cuts_train.jsonl.gz", features / "cuts_dev.jsonl.gz", features / "stats.pt",
            skeleton / "lang/tokens.txt"]


def torchrun(skeleton: Path, exp_dir: Path) -> List[str]:
    """asrkit.training.train in 2 processes on the CPU, one torch thread each, as rules/train.smk launches it."""
    train_cuts, dev_cuts, stats, tokens = inputs(skeleton)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "asrkit.training.train", "--train-cuts", str(train_cuts), "--dev-cuts", str(dev_cuts), "--stats", str(stats),
            "--tokens", str(tokens), *training_flags(options(2, 1)), "--exp-dir", str(exp_dir),
            "--device", "cpu", "--training.num_threads", "2"]


def run_two_processes(skeleton: Path, exp_dir: Path) -> subprocess.CompletedProcess:
    result = run_group(torchrun(skeleton, exp_dir), TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_in_this_process(skeleton: Path, exp_dir: Path, accumulate: int) -> None:
    torch.set_num_threads(1)
    train(*inputs(skeleton), exp_dir, training_setup(options(1, accumulate)), device="cpu")


def weights(exp_dir: Path) -> Dict[str, torch.Tensor]:
    return load_checkpoint(exp_dir / "model.pt")["model"]


def history(exp_dir: Path) -> List[Dict]:
    """The numbers of each epoch's record (not its time, nor the names of its error rate and its phase)."""
    return [{k: v for k, v in epoch.items() if k not in ("seconds", "dev_metric", "phase")}
            for epoch in json.loads((exp_dir / "history.json").read_text())]


def max_difference(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


@pytest.fixture(scope="module")
def two_processes(skeleton, tmp_path_factory) -> Path:
    exp_dir = tmp_path_factory.mktemp("ddp") / "exp"
    result = run_two_processes(skeleton, exp_dir)
    assert "2 process(es) x 1 batch(es) per step" in result.stderr
    return exp_dir


def test_two_processes_train_what_one_accumulating_two_batches_trains(skeleton, two_processes, tmp_path):
    train_in_this_process(skeleton, tmp_path / "accumulated", accumulate=2)
    difference = max_difference(weights(two_processes), weights(tmp_path / "accumulated"))
    print(f"max |w(2 processes) - w(1 process x 2 batches)| = {difference:.2e}")
    assert difference < WEIGHT_TOLERANCE
    ddp, accumulated = history(two_processes), history(tmp_path / "accumulated")
    assert [h["epoch"] for h in ddp] == [1, 2, 3]
    for a, b in zip(ddp, accumulated):
        assert a == pytest.approx(b, rel=1e-4), (a, b)
    # the control: another global batch (one process, one batch a step) trains a model far outside the tolerance
    train_in_this_process(skeleton, tmp_path / "one_batch", accumulate=1)
    assert max_difference(weights(two_processes), weights(tmp_path / "one_batch")) > 100 * WEIGHT_TOLERANCE


def test_two_processes_killed_mid_epoch_resume_exactly(skeleton, two_processes, tmp_path):
    exp_dir = tmp_path / "killed"
    with open(tmp_path / "killed.log", "wb") as log:
        killed = subprocess.Popen(torchrun(skeleton, exp_dir), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        # inside the second epoch or later: the weight noise has started, and its generator must resume where it
        # was. Any mid-epoch checkpoint from there on will do: a newer one replaces the last within milliseconds.
        deadline = time.monotonic() + TIMEOUT
        while not any((exp_dir / "checkpoints").glob("epoch-[2-9]-batch-*.pt")):
            assert killed.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.02)
    finally:
        kill_group(killed)
    assert not (exp_dir / "model.pt").exists()
    resumed = run_two_processes(skeleton, exp_dir)
    assert re.search(r"resuming from \S+/epoch-[2-9]-batch-\d+\.pt", resumed.stderr)
    straight, again = weights(two_processes), weights(exp_dir)
    for name, value in straight.items():
        assert torch.equal(value, again[name]), name
    assert history(exp_dir) == history(two_processes)


def test_process_count_must_match_the_options(skeleton, tmp_path):
    with pytest.raises(ValueError, match=re.escape("training.num_processes is 2 but 1 process(es) run: launch with "
                                                   "torchrun --standalone --nproc_per_node 2")):
        train(*inputs(skeleton), tmp_path, training_setup(options(2, 1)), device="cpu")
