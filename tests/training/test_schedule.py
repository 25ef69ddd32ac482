"""The paper's training schedule (training.schedule: paper) on the skeleton corpus: two phases, the restart
between them, weight noise once per utterance, best.pt's provenance and exact resumes in each phase."""

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from lhotse import CutSet

import asrkit.training.step as step_module
import asrkit.training.train as train_module
import asrkit.training.weight_noise as weight_noise_module
from asrkit.config import PhoneLmConfig, TrainingConfig, TransducerConfig, UnitsConfig
from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.training.batches import training_sampler
from asrkit.training.resume import load_best
from asrkit.training.schedule import NOISELESS, NOISY, first_phase
from asrkit.training.train import train
from interrupted_training import stopped_after, timeless
from timit_skeleton import UNITS, training_setup

#: 32 training utterances, ~10 a batch; at most 4 epochs a phase, each ending after 1 epoch without
#: improvement. The lr is high enough for dev to stop improving before the cap: the noiseless phase's dev loss
#: is lowest at epoch 2 (of 3) and the noise phase's PER at its first epoch (of 2).
OPTIONS = {"seed": 3, "model_type": "ctc", "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3},
           "training": {"schedule": "paper", "num_epochs": 4, "patience": 1, "max_duration": 3,
                        "optimizer": "adam", "lr": 0.1, "init": "uniform", "grad_clip": 0,
                        "weight_noise_std": 0.05, "num_workers": 0, "keep_last_checkpoints": 10,
                        "checkpoint_every_batches": 2}}


def run(skeleton: Path, exp_dir: Path, options: Dict = OPTIONS) -> List[Dict]:
    """Train on the skeleton; the history."""
    features = skeleton / "features"
    train(features / "cuts_train.jsonl.gz", features / "cuts_dev.jsonl.gz", features / "stats.pt",
          skeleton / "lang/tokens.txt", exp_dir, training_setup(options))
    return json.loads((exp_dir / "history.json").read_text())


def steps_in(skeleton: Path, epochs: List[int]) -> int:
    """Optimiser steps of these epochs (one process, one batch a step)."""
    cuts = CutSet.from_file(skeleton / "features/cuts_train.jsonl.gz").to_eager()
    return sum(len(list(training_sampler(cuts, OPTIONS["training"]["max_duration"], OPTIONS["seed"], epoch, [0], 1)))
               for epoch in epochs)


@pytest.fixture(scope="module")
def straight(skeleton, tmp_path_factory):
    """An uninterrupted run, with spies on the noise draws and the optimisers made."""
    exp_dir = tmp_path_factory.mktemp("straight")
    draws, optimizers, weights_at_first_draw = [], [], {}
    add_noise, make_optimizer = weight_noise_module.add_weight_noise, train_module.make_optimizer

    def spy_noise(model, std, generator):
        if not draws:
            weights_at_first_draw.update({k: v.clone() for k, v in model.state_dict().items()})
        draws.append(generator.initial_seed())
        return add_noise(model, std, generator)

    def spy_optimizer(model, training):
        optimizers.append(make_optimizer(model, training))
        return optimizers[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weight_noise_module, "add_weight_noise", spy_noise)
        patch.setattr(train_module, "make_optimizer", spy_optimizer)
        history = run(skeleton, exp_dir)
    return {"dir": exp_dir, "history": history, "draws": draws, "optimizers": optimizers,
            "weights_at_first_draw": weights_at_first_draw}


def test_noise_phase_starts_when_dev_loss_stops_improving_from_its_best_epoch(straight):
    history = straight["history"]
    noiseless = [h for h in history if h["phase"] == NOISELESS]
    noisy = [h for h in history if h["phase"] == NOISY]
    assert noiseless and noisy and history == noiseless + noisy
    losses = [h["dev_loss"] for h in noiseless]
    best = losses.index(min(losses))
    # the phase ends at the first epoch that is patience (1) epochs past the best so far, before the cap (4)
    ends = [i for i in range(len(losses)) if i - losses.index(min(losses[:i + 1])) >= 1]
    assert len(noiseless) == ends[0] + 1 < 4
    # it restarted from the noiseless epoch of highest dev log-probability, not from the last one
    restart = load_checkpoint(straight["dir"] / f"checkpoints/epoch-{noiseless[best]['epoch']}.pt")["model"]
    for name, weights in restart.items():
        assert torch.equal(straight["weights_at_first_draw"][name], weights), name
    assert best < len(noiseless) - 1  # dev loss went up: the last noiseless epoch is not where it restarted
    # the noise phase stopped at patience past its lowest dev PER; model.pt is that epoch's
    rates = [h["dev_error_rate"] for h in noisy]
    assert len(noisy) - 1 - rates.index(min(rates)) == 1 and len(noisy) < 4
    assert load_checkpoint(straight["dir"] / "model.pt")["epoch"] == noisy[rates.index(min(rates))]["epoch"]


def test_weight_noise_is_drawn_once_per_utterance(straight, skeleton):
    noisy_epochs = [h["epoch"] for h in straight["history"] if h["phase"] == NOISY]
    assert len(straight["draws"]) == 32 * len(noisy_epochs)
    assert len(set(straight["draws"])) == len(straight["draws"])  # an independent perturbation each


def test_the_restart_has_a_fresh_optimiser(straight, skeleton):
    """Two optimisers: the second, made at the restart, has counted only the noise phase's steps (Adam's step
    count: it carries no moments of the noiseless phase)."""
    history, (first, second) = straight["history"], straight["optimizers"]
    noiseless = [h["epoch"] for h in history if h["phase"] == NOISELESS]
    noisy = [h["epoch"] for h in history if h["phase"] == NOISY]
    step_count = lambda optimizer: {int(state["step"]) for state in optimizer.state.values()}
    assert step_count(first) == {steps_in(skeleton, noiseless)}
    assert step_count(second) == {steps_in(skeleton, noisy)}


#: the paper's optimiser, SGD with momentum, and an lr that halves every epoch: a restart that kept the
#: noiseless phase's lr schedule or momentum would show. At most 2 epochs a phase.
SGD_OPTIONS = {**OPTIONS, "training": {**OPTIONS["training"], "optimizer": "sgd", "momentum": 0.9, "lr": 0.05,
                                       "lr_decay": 0.5, "num_epochs": 2}}


@pytest.fixture(scope="module")
def sgd_run(skeleton, tmp_path_factory):
    """A paper-schedule run with SGD, recording at each optimiser step whether the optimiser held momentum and
    whether the weights were those without noise (the copy the last noise draw saved)."""
    steps, noise = [], {"model": None, "saved": None}
    add_noise, make_optimizer = weight_noise_module.add_weight_noise, train_module.make_optimizer

    def spy_noise(model, std, generator):
        saved = add_noise(model, std, generator)
        noise.update(model=model, saved=saved)
        return saved

    def spy_optimizer(model, training):
        optimizer = make_optimizer(model, training)

        def before_step(optimizer, args, kwargs):
            weights = [p.detach().clone() for p in model.parameters()]
            steps.append({"optimizer": optimizer, "noisy": noise["saved"] is not None,
                          "momentum": any("momentum_buffer" in state for state in optimizer.state.values()),
                          "noiseless_weights": noise["saved"] is not None and len(weights) == len(noise["saved"])
                          and all(torch.equal(w, s) for w, s in zip(weights, noise["saved"]))})

        optimizer.register_step_pre_hook(before_step)
        return optimizer

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(weight_noise_module, "add_weight_noise", spy_noise)
        patch.setattr(train_module, "make_optimizer", spy_optimizer)
        history = run(skeleton, tmp_path_factory.mktemp("sgd"), SGD_OPTIONS)
    return {"history": history, "steps": steps}


def test_the_restart_starts_the_lr_schedule_afresh(sgd_run):
    history, lr = sgd_run["history"], SGD_OPTIONS["training"]["lr"]
    noiseless = [h for h in history if h["phase"] == NOISELESS]
    assert [h["lr"] for h in noiseless] == [lr * 0.5 ** k for k in range(len(noiseless))]
    assert len(noiseless) == 2  # so the lr had decayed: a restart that kept the schedule would go on at lr / 4
    noisy = history[len(noiseless):]
    assert noisy and [h["lr"] for h in noisy] == [lr * 0.5 ** k for k in range(len(noisy))]


def test_the_restart_empties_sgds_momentum(sgd_run):
    """The noise phase's first step is taken by a new optimiser, without momentum; the noiseless phase's last
    steps had momentum (so keeping that optimiser would show)."""
    steps = sgd_run["steps"]
    first_noisy = next(i for i, step in enumerate(steps) if step["noisy"])
    assert steps[first_noisy - 1]["momentum"] and not steps[first_noisy]["momentum"]
    assert steps[first_noisy]["optimizer"] is not steps[first_noisy - 1]["optimizer"]
    assert all(step["optimizer"] is steps[first_noisy]["optimizer"] for step in steps[first_noisy:])


def test_the_weights_are_restored_exactly_before_each_step(sgd_run):
    """In the noise phase every optimiser step sees the weights without noise, bit for bit: the update is the
    noisy gradient applied to the clean weights."""
    noisy = [step for step in sgd_run["steps"] if step["noisy"]]
    assert noisy and all(step["noiseless_weights"] for step in noisy)


def test_weight_noise_has_the_configured_std_on_every_parameter_and_is_removed_exactly():
    """Gaussian noise of std sigma on every parameter (weights, biases, peepholes, embeddings: the paper puts
    noise on all the network's weights, and a bias is the weight of a constant input), none on buffers; the
    weights come back bit for bit. The same seed draws the same noise."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(300, 400), torch.nn.Embedding(10, 300))
    model.register_buffer("counter", torch.zeros(5))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    saved = weight_noise_module.add_weight_noise(model, 0.075, weight_noise_module.noise_generator(1, 2, "utt"))
    noise = {k: v - before[k] for k, v in model.state_dict().items()}
    assert not noise["counter"].any()
    for name, _ in model.named_parameters():
        assert (noise[name] != 0).all(), name
    everything = torch.cat([noise[name].flatten() for name, _ in model.named_parameters()])
    assert everything.std().item() == pytest.approx(0.075, rel=0.01) and abs(everything.mean().item()) < 1e-3
    weight_noise_module.remove_weight_noise(model, saved)
    for name, weights in model.state_dict().items():
        assert torch.equal(weights, before[name]), name
    again = weight_noise_module.add_weight_noise(model, 0.075, weight_noise_module.noise_generator(1, 2, "utt"))
    assert all(torch.equal(model.state_dict()[k] - before[k], noise[k]) for k in before)
    weight_noise_module.remove_weight_noise(model, again)


@pytest.mark.parametrize("where", ["noiseless, mid-epoch", "at the switch", "noisy, mid-epoch"])
def test_a_run_interrupted_in_each_phase_resumes_exactly(straight, skeleton, tmp_path, where):
    history = straight["history"]
    switch = max(h["epoch"] for h in history if h["phase"] == NOISELESS)
    stop_after = {"noiseless, mid-epoch": "epoch-1-batch-2.pt", "at the switch": f"epoch-{switch}.pt",
                  "noisy, mid-epoch": f"epoch-{switch + 1}-batch-2.pt"}[where]
    with stopped_after(stop_after):
        run(skeleton, tmp_path)
    assert timeless(run(skeleton, tmp_path)) == timeless(history)
    straight_model = load_checkpoint(straight["dir"] / "model.pt")["model"]
    resumed_model = load_checkpoint(tmp_path / "model.pt")["model"]
    for name, weights in straight_model.items():
        assert torch.equal(weights, resumed_model[name]), name


def test_a_best_pt_of_other_options_is_never_loaded(straight, skeleton, tmp_path):
    other = {**OPTIONS, "model": {**OPTIONS["model"], "hidden_size": 8},
             "training": {**OPTIONS["training"], "schedule": "fixed", "num_epochs": 1}}
    run(skeleton, tmp_path, other)
    foreign = load_checkpoint(tmp_path / "best.pt")
    with pytest.raises(ValueError, match="written with other options"):
        load_best(tmp_path / "best.pt", training_setup(OPTIONS).digest())
    history = run(skeleton, tmp_path)  # same folder, other options: its noise phase restarts from its own best
    assert [h["epoch"] for h in history] == [h["epoch"] for h in straight["history"]]
    assert load_model(tmp_path / "model.pt").encoder.lstm.hidden_size == 16
    stale = list(tmp_path.glob("best.stale-*.pt"))
    assert len(stale) == 1 and torch.equal(load_checkpoint(stale[0])["model"]["encoder.lstm.weight_hh_l0"],
                                           foreign["model"]["encoder.lstm.weight_hh_l0"])


def test_a_step_with_a_gradient_not_finite_is_skipped_and_counted(skeleton, tmp_path):
    """The second batch's loss is NaN: its step changes nothing, the epoch's record counts it, training goes on."""
    options = {**OPTIONS, "training": {**OPTIONS["training"], "schedule": "fixed", "num_epochs": 1}}
    batch_loss, calls = step_module.batch_loss, []

    def nan_second(model, batch, transducer, batch_index):
        loss = batch_loss(model, batch, transducer, batch_index)
        calls.append(batch_index)
        return loss * float("nan") if batch_index == 1 and torch.is_grad_enabled() else loss

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(step_module, "batch_loss", nan_second)
        history = run(skeleton, tmp_path, options)
    assert history[0]["skipped_steps"] == 1 and math.isfinite(history[0]["train_loss"])
    assert all(torch.isfinite(w).all() for w in load_checkpoint(tmp_path / "model.pt")["model"].values())


def test_uniform_initialisation_is_the_papers():
    model = torch.nn.LSTM(20, 30, bidirectional=True)
    weight_noise_module.initialise_uniformly(model)
    weights = torch.cat([p.flatten() for p in model.parameters()])
    assert weights.abs().max() <= 0.1 and abs(weights.std() - 0.1 / 3 ** 0.5) < 0.003


def test_the_phone_lm_trains_through_both_phases(skeleton, tmp_path):
    """schedule paper: noiseless to its dev perplexity's patience, then noise drawn once per transcript from
    the noiseless best with a fresh optimiser; model.pt is the noise phase's best."""
    import asrkit.training.phone_lm as phone_lm
    draws, noise = [], phone_lm.add_weight_noise
    optimizers, make_optimizer = [], phone_lm.make_optimizer
    initialised, initialise = [], phone_lm.initialise_uniformly

    def spy_noise(model, std, generator):
        draws.append(generator.initial_seed())
        return noise(model, std, generator)

    def spy_optimizer(model, settings):
        optimizers.append(make_optimizer(model, settings))
        return optimizers[-1]

    def spy_initialise(model):
        initialise(model)
        initialised.append(torch.cat([p.flatten() for p in model.parameters()]))

    # the paper's settings (config.yaml's): SGD with momentum, uniform initial weights
    lm = PhoneLmConfig.from_dict({"schedule": "paper", "num_epochs": 3, "patience": 1, "batch_size": 8,
                                  "optimizer": "sgd", "momentum": 0.9, "init": "uniform", "lr": 0.5,
                                  "weight_noise_std": 0.05})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(phone_lm, "add_weight_noise", spy_noise)
        patch.setattr(phone_lm, "make_optimizer", spy_optimizer)
        patch.setattr(phone_lm, "initialise_uniformly", spy_initialise)
        phone_lm.train_phone_lm(skeleton / "features/cuts_train.jsonl.gz", skeleton / "features/cuts_dev.jsonl.gz",
                                skeleton / "lang/tokens.txt", tmp_path, 1, UnitsConfig.from_dict(UNITS),
                                TransducerConfig.from_dict({"decoder_embedding_dim": 8, "decoder_hidden_size": 8}), lm)
    history = json.loads((tmp_path / "history.json").read_text())
    phases = [h["phase"] for h in history]
    noisy = [h for h in history if h["phase"] == NOISY]
    assert phases[0] == NOISELESS and noisy and phases == sorted(phases)  # noiseless, then noisy
    assert len(draws) == 32 * len(noisy) == len(set(draws))
    best = min(noisy, key=lambda h: h["dev_perplexity"])
    assert load_checkpoint(tmp_path / "model.pt")["epoch"] == best["epoch"]
    (weights,) = initialised
    assert weights.abs().max() <= 0.1 and abs(weights.std() - 0.1 / 3 ** 0.5) < 0.01
    # two SGD optimisers with momentum: the second made at the restart
    assert [(type(o).__name__, o.defaults["momentum"], o.defaults["lr"]) for o in optimizers] == \
        [("SGD", 0.9, 0.5)] * 2


def test_pretrans_trains_with_noise_from_the_start():
    paper = TrainingConfig.from_dict({"num_epochs": 5, "max_duration": 3, "schedule": "paper",
                                      "weight_noise_std": 0.075})
    assert first_phase(paper, pretrained=True) == NOISY and first_phase(paper, pretrained=False) == NOISELESS
    noiseless_only = TrainingConfig.from_dict({**asdict(paper), "weight_noise_std": 0.0})
    assert first_phase(noiseless_only, pretrained=True) == NOISELESS
