"""Mixed precision and the other GPU paths, rehearsed on the CPU (no GPU here).

bfloat16 autocast runs on the CPU through LSTMs, linear layers and the losses, and mixes dtypes exactly where
float16 does on a GPU; torch's loss scaler also exists for the CPU (``GradScaler("cpu")``), so its skip path
runs here. What only a GPU can show (cuDNN's RNN backward) is in ``make gpu-check``.
"""

import json
import math
from pathlib import Path

import pytest
import torch

import asrkit.training.step as step_module
import asrkit.training.train as train_module
from asrkit.config import ModelConfig, TrainingConfig, TransducerConfig
from asrkit.device import resolve_device
from asrkit.model.registry import build_model, stored_model_options
from asrkit.checkpoint import load_checkpoint
from asrkit.training.resume import rng_state, set_rng_state
from asrkit.training.step import NON_FINITE, SCALER_SKIP, UPDATED, Precision, StepOutcome, TrainingLoss, optimizer_step
from asrkit.training.train import train
from asrkit.training.weight_noise import WeightNoise
from interrupted_training import stopped_after, timeless
from timit_skeleton import training_setup

TRANSDUCER = TransducerConfig.from_dict({"decoder_embedding_dim": 8, "decoder_hidden_size": 8, "joiner_dim": 8,
                                         "warmup_batches": 0})


def training_config(values: dict) -> TrainingConfig:
    return TrainingConfig.from_dict({"num_epochs": 1, "max_duration": 1, **values})


def tiny_model(model_type: str, **model: object) -> torch.nn.Module:
    torch.manual_seed(0)
    options = stored_model_options(model_type, ModelConfig.from_dict({"num_layers": 1, "hidden_size": 8,
                                                                     "stack_frames": 1, **model}), TRANSDUCER)
    return build_model(options, 6, 5)


def random_batch(seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {"features": torch.randn(2, 12, 6, generator=generator), "feature_lens": torch.tensor([12, 9]),
            "targets": torch.tensor([[1, 2, 3], [4, 1, 0]]), "target_lens": torch.tensor([3, 2]),
            "cut_ids": [f"a{seed}", f"b{seed}"]}


@pytest.mark.parametrize("model_type, model", [("transducer", {}), ("ctc", {"peephole": True}),
                                               ("transducer", {"peephole": True})])
def test_losses_and_gradients_under_bfloat16_autocast(model_type, model):
    """A transducer's float32 simple projections were fed the LSTM's bfloat16 output ("expected m1 and m2 to have
    the same dtype"); the peephole LSTM's hand-written backward met bfloat16 gates with float32 weights."""
    net = tiny_model(model_type, **model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = net.training_loss_terms(random_batch(), TRANSDUCER, batch_index=10)
    loss = sum(terms.values())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None or (p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all())
               for p in net.parameters())
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.encoder.parameters())


@pytest.mark.parametrize("amp", [False, "bfloat16"])
@pytest.mark.parametrize("noisy", [False, True])
def test_one_step_alone_in_each_precision_with_and_without_noise(amp, noisy):
    model = tiny_model("ctc")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision.of(training_config({"amp": amp}), torch.device("cpu"))
    assert precision.dtype == (torch.bfloat16 if amp else None) and not precision.scaler.is_enabled()
    noise = WeightNoise(0.5, seed=1, epoch=1) if noisy else None
    seen = []
    if noisy:  # the weights each utterance's loss sees: perturbed, each its own way
        model.register_forward_pre_hook(lambda module, args: seen.append(module.output.weight.detach().clone()))
    step = optimizer_step(TrainingLoss(model, TRANSDUCER), model, optimizer, precision,
                          [random_batch(0), random_batch(1)], torch.device("cpu"), 0, grad_clip=None, noise=noise)
    assert step.outcome == UPDATED and step.utterances == 4 and math.isfinite(step.loss)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed  # the update happened
    if noisy:
        assert len(seen) == 4 and not any(torch.equal(seen[0], w) for w in seen[1:])
        assert not any(torch.equal(w, before["output.weight"]) for w in seen)
        # the noise was taken away before the update: plain SGD on clean weights moves them by -lr x grad
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), before[name] - 0.1 * p.grad, rtol=0, atol=1e-6)


def test_a_scaled_gradient_that_overflows_is_a_scaler_skip_not_a_divergence():
    model = tiny_model("ctc")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    precision = Precision(None, torch.amp.GradScaler("cpu", init_scale=2.0 ** 127))
    net, batches, cpu = TrainingLoss(model, TRANSDUCER), [random_batch()], torch.device("cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    step = optimizer_step(net, model, optimizer, precision, batches, cpu, 0, grad_clip=None)
    assert step == StepOutcome(0.0, 0, SCALER_SKIP)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert precision.scaler.get_scale() == 2.0 ** 126  # lowered: calibrating
    with pytest.MonkeyPatch.context() as patch:  # a loss that is not finite at any scale is a divergence
        batch_loss = step_module.batch_loss
        patch.setattr(step_module, "batch_loss", lambda *args: batch_loss(*args) * float("nan"))
        assert optimizer_step(net, model, optimizer, precision, batches, cpu, 0, None).outcome == NON_FINITE


OPTIONS = {"seed": 3, "model_type": "ctc", "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3,
                                                     "dropout": 0.1},
           # one batch (step) an epoch: the first epoch's only step overflows
           "training": {"schedule": "fixed", "num_epochs": 3, "max_duration": 10, "optimizer": "adam", "lr": 0.003,
                        "grad_clip": 5.0, "num_workers": 0, "amp": "float16"}}


def train_float16_on_the_cpu(skeleton: Path, exp_dir: Path) -> list:
    """The float16 path, scaler and all, on the CPU: the CPU's LSTM has no float16 kernel, so the autocast dtype
    alone is bfloat16 here (the refusal of float16 on a CPU device is lifted for this run); the first scale, 2^127,
    overflows the first step whatever the gradient; the next, at 2^126, does not."""
    inputs = [skeleton / "features/cuts_train.jsonl.gz", skeleton / "features/cuts_dev.jsonl.gz",
              skeleton / "features/stats.pt", skeleton / "lang/tokens.txt"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(step_module.AUTOCAST_DTYPES, "float16", torch.bfloat16)
        patch.setattr(step_module, "FLOAT16_INIT_SCALE", 2.0 ** 127)
        patch.setattr(train_module, "check_processes", lambda *args: None)
        train(*inputs, exp_dir, training_setup(OPTIONS), device="cpu")
    return load_checkpoint(exp_dir / "model.pt")


def test_float16_calibration_skips_are_counted_apart_and_training_goes_on(skeleton, tmp_path):
    straight = train_float16_on_the_cpu(skeleton, tmp_path / "straight")
    history = json.loads((tmp_path / "straight/history.json").read_text())
    assert [(h["scaler_skipped_steps"], h["skipped_steps"]) for h in history] == [(1, 0), (0, 0), (0, 0)]
    # the first epoch's one step was the scaler's: no training loss (not a division by zero), the next ones have
    assert history[0]["train_loss"] is None and all(math.isfinite(h["train_loss"]) for h in history[1:])
    assert history[2]["dev_loss"] < history[0]["dev_loss"]
    # resumed after the first epoch, with the scaler's lowered scale: the same model
    with stopped_after("epoch-1.pt"):
        train_float16_on_the_cpu(skeleton, tmp_path / "resumed")
    resumed = train_float16_on_the_cpu(skeleton, tmp_path / "resumed")
    assert all(torch.equal(resumed["model"][k], v) for k, v in straight["model"].items())
    assert timeless(json.loads((tmp_path / "resumed/history.json").read_text())) == timeless(history)


def test_float16_on_a_cpu_device_is_refused_in_words(skeleton, tmp_path):
    inputs = [skeleton / "features/cuts_train.jsonl.gz", skeleton / "features/cuts_dev.jsonl.gz",
              skeleton / "features/stats.pt", skeleton / "lang/tokens.txt"]
    with pytest.raises(ValueError, match="float16 mixed precision needs a CUDA GPU.*bfloat16"):
        train(*inputs, tmp_path, training_setup(OPTIONS), device="cpu")


def test_amp_true_still_means_float16_and_the_flag_takes_every_value():
    assert training_config({"amp": True}).amp_dtype == "float16"
    assert training_config({"amp": False}).amp_dtype is None
    assert training_config({"amp": "bfloat16"}).amp_dtype == "bfloat16"
    with pytest.raises(ValueError, match="training.amp"):
        training_config({"amp": "float8"})


def test_a_checkpoint_written_on_the_cpu_resumes_on_a_gpu(monkeypatch):
    """A CPU run saves no CUDA RNG state; resumed with device cuda (pretended: the CUDA calls are recorded), the
    GPU's RNG is seeded instead of a KeyError."""
    calls = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: calls.append(("set", device)))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(("seed", seed)))
    state = rng_state(torch.device("cpu"))
    assert "cuda" not in state
    set_rng_state(state, torch.device("cuda", 0))
    assert [kind for kind, _ in calls] == ["seed"]
    first = calls[0][1]
    set_rng_state(state, torch.device("cuda", 0))  # the seed follows from the restored CPU state: reproducible
    assert calls[1] == ("seed", first)


def test_more_processes_than_gpus_is_refused_in_words(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda", 1) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="training process 2 .* 2 GPU\\(s\\): one process per GPU"):
        resolve_device("cuda", 2)
