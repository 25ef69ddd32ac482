"""A full disk during training says so, naming the file, and leaves no half-written file taking space."""

import errno
import os
import subprocess
from pathlib import Path

import pytest
import torch

from asrkit.io import DiskFullError
from asrkit.checkpoint import save_checkpoint, training_checkpoints
from process_groups import file_size_limited
from timit_skeleton import training_flags

CTC = {"seed": 1, "model_type": "ctc", "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3},
       "training": {"num_epochs": 1, "max_duration": 3, "optimizer": "adam", "lr": 0.01, "num_workers": 0,
                    "checkpoint_every_batches": 2}}


def test_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path, monkeypatch):
    def write_half_then_fail(self, data):
        with open(self, "wb") as f:
            f.write(bytes(data)[:len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", write_half_then_fail)
    path = tmp_path / "checkpoints/epoch-1.pt"
    with pytest.raises(DiskFullError) as error:
        save_checkpoint(path, {"model": {"w": torch.zeros(10000)}})
    assert str(error.value) == f"no space left on device while writing {path} (No space left on device)"
    assert error.value.errno == errno.ENOSPC
    assert list(path.parent.iterdir()) == []  # the half-written temporary was deleted, giving its space back


def test_full_disk_during_training_says_so_and_keeps_the_last_checkpoint(skeleton, tmp_path):
    features = skeleton / "features"
    command = ["--train-cuts", str(features / "cuts_train.jsonl.gz"),
               "--dev-cuts", str(features / "cuts_dev.jsonl.gz"), "--stats", str(features / "stats.pt"),
               "--tokens", str(skeleton / "lang/tokens.txt"),
               "--exp-dir", str(tmp_path), *training_flags(CTC), "--training.num_threads", "1"]
    # first with room enough, to learn a checkpoint's size; then with half of it
    result = subprocess.run([*file_size_limited("asrkit.training.train", 10 ** 6), *command],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    size = max(p.stat().st_size for p in training_checkpoints(tmp_path / "checkpoints"))
    for p in (tmp_path / "checkpoints").iterdir():
        p.unlink()
    (tmp_path / "model.pt").unlink()
    result = subprocess.run([*file_size_limited("asrkit.training.train", size // 2), *command],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert (f"no space left on device while writing {tmp_path}/checkpoints/epoch-1-batch-2.pt (File too large)"
            in result.stderr), result.stderr[-3000:]
    assert "basic_ios" not in result.stderr
    assert not [p for p in tmp_path.rglob("*partial*")]
    assert not (tmp_path / "model.pt").exists()
