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
from typing import Dict, List, Optional

import pytest
import torch

from asrkit.checkpoint import load_checkpoint
from asrkit.train import train
from process_groups import kill_group, run_group
from timit_skeleton import FEATURES

#: 32 training cuts of 0.3 s, 3 a batch: 11 batches an epoch, 6 steps of 2 (lhotse splits the last batch in two)
OPTIONS = {
    "seed": 5, "data": {"phone_set": 60}, "features": FEATURES,
    "model": {"type": "ctc", "num_layers": 2, "hidden_size": 16, "stack_frames": 3, "dropout": 0.0},
    "training": {"num_epochs": 3, "max_duration": 1, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                 "weight_noise_std": 0.01, "weight_noise_start_epoch": 2, "num_workers": 0,
                 "checkpoint_every_batches": 2},
}
TIMEOUT = 300  # seconds for one training run
# Float32 rounding: DDP's gradient is (g0 + g1) / 2 reduced by gloo, accumulation's g0 / 2 + g1 / 2 added in
# backward; the two differ by ~1e-7 relative per step, and 18 SGD steps with momentum carry it to the weights.
# One different batch in a step (the control below) moves them by ~1e-2.
WEIGHT_TOLERANCE = 1e-5


def command(skeleton: Path, exp_dir: Path, processes: int, accumulate: int, launched: Optional[int] = None
            ) -> List[str]:
    """Training with ``processes`` x ``accumulate`` batches a step, in ``launched`` processes (default: as many)."""
    options = {**OPTIONS, "training": {**OPTIONS["training"], "num_processes": processes,
                                       "accumulate_batches": accumulate}}
    launched = processes if launched is None else launched
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(launched)] \
        if launched > 1 else [sys.executable]
    features = skeleton / "features"
    return launcher + ["-m", "asrkit.train", "--train-cuts", str(features / "cuts_train.jsonl.gz"),
                       "--dev-cuts", str(features / "cuts_dev.jsonl.gz"), "--stats", str(features / "stats.pt"),
                       "--tokens", str(skeleton / "lang/tokens.txt"), "--options", json.dumps(options),
                       "--exp-dir", str(exp_dir), "--device", "cpu", "--num-threads", str(launched)]


def run_training(skeleton: Path, exp_dir: Path, processes: int, accumulate: int) -> subprocess.CompletedProcess:
    result = run_group(command(skeleton, exp_dir, processes, accumulate), TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def weights(exp_dir: Path) -> Dict[str, torch.Tensor]:
    return load_checkpoint(exp_dir / "model.pt")["model"]


def history(exp_dir: Path) -> List[Dict]:
    return [{k: v for k, v in epoch.items() if k != "seconds"}
            for epoch in json.loads((exp_dir / "history.json").read_text())]


def max_difference(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[name] - b[name]).abs().max().item() for name in a)


@pytest.fixture(scope="module")
def two_processes(skeleton, tmp_path_factory) -> Path:
    exp_dir = tmp_path_factory.mktemp("ddp") / "exp"
    result = run_training(skeleton, exp_dir, processes=2, accumulate=1)
    assert "2 process(es) x 1 batch(es) per step" in result.stderr
    return exp_dir


def test_two_processes_train_what_one_accumulating_two_batches_trains(skeleton, two_processes, tmp_path):
    run_training(skeleton, tmp_path / "accumulated", processes=1, accumulate=2)
    difference = max_difference(weights(two_processes), weights(tmp_path / "accumulated"))
    print(f"max |w(2 processes) - w(1 process x 2 batches)| = {difference:.2e}")
    assert difference < WEIGHT_TOLERANCE
    ddp, accumulated = history(two_processes), history(tmp_path / "accumulated")
    assert [h["epoch"] for h in ddp] == [1, 2, 3]
    for a, b in zip(ddp, accumulated):
        assert a == pytest.approx(b, rel=1e-4), (a, b)
    # the control: another global batch (one process, one batch a step) trains a model far outside the tolerance
    run_training(skeleton, tmp_path / "one_batch", processes=1, accumulate=1)
    assert max_difference(weights(two_processes), weights(tmp_path / "one_batch")) > 100 * WEIGHT_TOLERANCE


def test_two_processes_killed_mid_epoch_resume_exactly(skeleton, two_processes, tmp_path):
    exp_dir = tmp_path / "killed"
    with open(tmp_path / "killed.log", "wb") as log:
        killed = subprocess.Popen(command(skeleton, exp_dir, 2, 1), stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        # inside the second epoch: the weight noise has started, and its generator must resume where it was
        deadline = time.monotonic() + TIMEOUT
        while not (exp_dir / "checkpoints/epoch-2-batch-2.pt").exists():
            assert killed.poll() is None and time.monotonic() < deadline, (tmp_path / "killed.log").read_text()[-3000:]
            time.sleep(0.02)
    finally:
        kill_group(killed)
    assert not (exp_dir / "model.pt").exists()
    resumed = run_training(skeleton, exp_dir, processes=2, accumulate=1)
    assert re.search(r"resuming from \S+/epoch-2-batch-\d+\.pt", resumed.stderr)
    straight, again = weights(two_processes), weights(exp_dir)
    for name, value in straight.items():
        assert torch.equal(value, again[name]), name
    assert history(exp_dir) == history(two_processes)


def test_process_count_must_match_the_options(skeleton, tmp_path):
    result = run_group(command(skeleton, tmp_path, processes=2, accumulate=1, launched=1), 120)
    assert result.returncode != 0
    assert "training.num_processes is 2 but 1 process(es) run: launch with torchrun --standalone " \
           "--nproc_per_node 2" in result.stderr


def test_mixed_precision_on_the_cpu_is_refused(skeleton, tmp_path):
    features = skeleton / "features"
    with pytest.raises(ValueError, match="training.amp: mixed precision needs a CUDA GPU, and this run's device "
                                         "is cpu"):
        train(features / "cuts_train.jsonl.gz", features / "cuts_dev.jsonl.gz", features / "stats.pt",
              skeleton / "lang/tokens.txt", tmp_path, {**OPTIONS, "training": {**OPTIONS["training"], "amp": True}},
              device="cpu")
