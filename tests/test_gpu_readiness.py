"""A transducer asked to train on CUDA with an RNN-T loss built without CUDA stops at once, saying what is wrong
and how to fix it. Here (no GPU, fast_rnnt's CPU build) CUDA is pretended by replacing the device resolution;
the check that runs is the real one, on the real backend."""

from pathlib import Path

import pytest
import torch

import asrkit.training.train as train_module
from asrkit.model import rnnt_backend
from asrkit.training.train import train
from test_ddp import OPTIONS, inputs


@pytest.fixture
def cpu_only_backend() -> None:
    if rnnt_backend.backend_has_cuda():
        pytest.skip(f"{rnnt_backend.BACKEND} here is built with CUDA: nothing to refuse")


def transducer_options() -> dict:
    return {**OPTIONS, "model": {**OPTIONS["model"], "type": "transducer"}, "transducer": {}}


def test_transducer_on_cuda_with_a_cpu_only_loss_stops_before_training(skeleton: Path, tmp_path: Path, monkeypatch,
                                                                       cpu_only_backend):
    monkeypatch.setattr(train_module, "resolve_device", lambda name, local_rank=0: torch.device("cuda", 0))
    exp_dir = tmp_path / "exp"
    exp_dir.mkdir()
    with pytest.raises(RuntimeError) as error:
        train(*inputs(skeleton), exp_dir, transducer_options(), device="cuda")
    message = str(error.value)
    assert f"{rnnt_backend.BACKEND}" in message and "built without CUDA" in message
    assert "local/install.sh" in message and "nvcc" in message and "ASRKIT_CUDA_ARCHS" in message
    assert list(exp_dir.iterdir()) == []  # nothing was trained, nothing written


def test_the_check_lets_the_cpu_pass_and_refuses_cuda(cpu_only_backend):
    rnnt_backend.check_device(torch.device("cpu"))
    with pytest.raises(RuntimeError, match="built without CUDA"):
        rnnt_backend.check_device(torch.device("cuda", 0))
