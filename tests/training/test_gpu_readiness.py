"""A transducer asked to train on CUDA with an RNN-T loss built without CUDA stops at once, saying what is wrong
and how to fix it. Here (no GPU, fast_rnnt's CPU build) CUDA is pretended by replacing the device resolution;
the check that runs is the real one, on the real backend."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import asrkit.training.train as train_module
from asrkit.model import rnnt_backend
from asrkit.training.train import train
from timit_skeleton import training_flags, training_setup

SETTINGS = {"seed": 1, "model_type": "transducer",
            "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3, "dropout": 0.0},
            "training": {"num_epochs": 1, "max_duration": 1, "num_workers": 0}}


@pytest.fixture
def cpu_only_backend() -> None:
    if rnnt_backend.backend_has_cuda():
        pytest.skip(f"{rnnt_backend.BACKEND} here is built with CUDA: nothing to refuse")


def test_transducer_on_cuda_with_a_cpu_only_loss_stops_before_training(skeleton: Path, tmp_path: Path, monkeypatch,
                                                                       cpu_only_backend):
    monkeypatch.setattr(train_module, "resolve_device", lambda name, local_rank=0: torch.device("cuda", 0))
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    with pytest.raises(RuntimeError) as error:
        train(skeleton / "features/cuts_train.jsonl.gz", skeleton / "features/cuts_dev.jsonl.gz",
              skeleton / "features/stats.pt", skeleton / "lang/tokens.txt", exp_dir, training_setup(SETTINGS), device="cuda")
    message = str(error.value)
    assert f"{rnnt_backend.BACKEND}" in message and "built without CUDA" in message
    assert "local/install.sh" in message and "nvcc" in message and "ASRKIT_CUDA_ARCHS" in message
    assert list(exp_dir.iterdir()) == []  # nothing was trained, nothing written


def test_the_check_lets_the_cpu_pass_and_refuses_cuda(cpu_only_backend):
    rnnt_backend.check_device(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="built without CUDA"):
        rnnt_backend.check_device(torch.device("cuda", 0))


def test_the_recipe_refuses_before_its_first_stage(tmp_path: Path, cpu_only_backend):
    """With device: cuda and a transducer among the models, the recipe stops before its first job, before CTC
    (stage 4) could train for hours. CUDA is pretended in every process by a sitecustomize module."""
    fake = tmp_path / "fake_cuda"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text("import torch\ntorch.cuda.is_available = lambda: True\n"
                                           "torch.cuda.device_count = lambda: 1\n")
    config = tmp_path / "gpu.yaml"
    config.write_text("device: cuda\nmodels: [ctc, transducer]\n")
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([str(root / "recipes/timit/run.sh"), "--config", str(config), "--dir", str(tmp_path / "run")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode != 0
    assert "built without CUDA" in result.stdout + result.stderr, result.stdout[-2000:] + result.stderr[-2000:]
    assert not (tmp_path / "run/data").exists()


def test_a_transducer_trains_under_torchrun(skeleton: Path, tmp_path: Path):
    """The path of the GPU check's torchrun part, on the CPU: one process in a process group (gloo here, nccl on
    GPUs) trains a transducer under DistributedDataParallel, whose prediction network has a layer the transducer
    loss does not use (the phone LM's output)."""
    settings = {**SETTINGS, "training": {**SETTINGS["training"], "num_processes": 1}}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               "-m", "asrkit.training.train", "--device", "cpu", "--training.num_threads", "1",
               "--train-cuts", str(skeleton / "features/cuts_train.jsonl.gz"),
               "--dev-cuts", str(skeleton / "features/cuts_dev.jsonl.gz"), "--stats", str(skeleton / "features/stats.pt"),
               "--tokens", str(skeleton / "lang/tokens.txt"), "--exp-dir", str(tmp_path / "exp"),
               *training_flags(settings)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "exp/model.pt").exists()
