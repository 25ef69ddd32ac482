"""The schedule of a training: its phases (``training.schedule``), the optimiser, and the lr from epoch to epoch.

An epoch belongs to a phase: "fixed" (schedule fixed), or "noiseless" then "noisy" (schedule paper, Graves et al.
2013); after the last, the phase is "done". Each epoch's history record names its phase, so that the best epoch
of a phase and the epochs since it (patience) follow from the history, which every checkpoint holds: a resume in
any phase continues exactly. docs/training.md gives the paper's procedure and how asrkit follows it.
"""

from pathlib import Path
from typing import Any, Dict, List, Union

import torch

from asrkit.config import PhoneLmConfig, TrainingConfig


FIXED, NOISELESS, NOISY, DONE = "fixed", "noiseless", "noisy", "done"


def first_phase(training: TrainingConfig, pretrained: bool) -> str:
    """The phase of epoch 1: a model started from pretrained parts trains with noise from the start (the
    paper's PRETRANS, whose parts were trained through both phases)."""
    if training.schedule == "fixed":
        return FIXED
    return NOISY if pretrained and training.weight_noise_std > 0 else NOISELESS


def selection_key(phase: str) -> str:
    """The history value whose lowest picks a phase's best epoch: the noiseless phase stops at the highest dev
    log-probability (lowest loss), the others at the lowest dev error rate."""
    return "dev_loss" if phase == NOISELESS else "dev_error_rate"


def best_record(history: List[Dict[str, Any]], phase: str, key: str) -> Dict[str, Any]:
    """The best epoch of a phase, by the lowest history value ``key``: the last of the lowest (schedule fixed,
    as it always was), or the first of the lowest (schedule paper: an epoch that only equals the best is no
    improvement)."""
    records = [h for h in history if h["phase"] == phase]
    lowest = min(h[key] for h in records)
    ties = [h for h in records if h[key] == lowest]
    return ties[-1] if phase == FIXED else ties[0]


def next_phase(training: Union[TrainingConfig, PhoneLmConfig], history: List[Dict[str, Any]], phase: str,
               key: str) -> str:
    """The phase of the epoch after the history's last (``done``: training is over); ``key``: the history
    value whose lowest is the phase's best.

    A paper phase ends after ``patience`` epochs without improvement or at ``num_epochs`` epochs; then the
    noiseless phase is followed by the noisy one (if there is noise), and the noisy one by the end.
    """
    records = [h for h in history if h["phase"] == phase]
    if phase == FIXED:
        return DONE if len(records) >= training.num_epochs else FIXED
    since_best = records[-1]["epoch"] - best_record(history, phase, key)["epoch"]
    if since_best < training.patience and len(records) < training.num_epochs:
        return phase
    return NOISY if phase == NOISELESS and training.weight_noise_std > 0 else DONE


def is_noisy(training: TrainingConfig, phase: str, epoch: int) -> bool:
    if phase == FIXED:
        return training.weight_noise_std > 0 and epoch >= training.weight_noise_start_epoch
    return phase == NOISY


def restarts_from_best(training: TrainingConfig, history: List[Dict[str, Any]], phase: str, epoch: int,
                       best_path: Path) -> bool:
    """Whether this epoch restarts from best.pt with a fresh optimiser: the first epoch of the paper's noisy
    phase after a noiseless one, or (schedule fixed) the epoch weight noise starts, if a best.pt was written."""
    if phase == FIXED:
        return is_noisy(training, phase, epoch) and epoch == training.weight_noise_start_epoch and best_path.exists()
    return phase == NOISY and any(h["phase"] == NOISELESS for h in history) \
        and not any(h["phase"] == NOISY for h in history)


def make_optimizer(model: torch.nn.Module, training: Union[TrainingConfig, PhoneLmConfig]) -> torch.optim.Optimizer:
    """The optimiser of a training's (or the phone LM's) settings: SGD with momentum, or Adam."""
    if training.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=training.lr, momentum=training.momentum)
    return torch.optim.Adam(model.parameters(), lr=training.lr)


class LrSchedule:
    """The lr of an optimiser from epoch to epoch: ``lr_decay`` every epoch, and, with ``lr_schedule: plateau``,
    ``lr_anneal_factor`` after ``lr_anneal_patience`` epochs in a row without a lower dev loss. Both multiply
    the optimiser's lr, so they combine."""

    def __init__(self, optimizer: torch.optim.Optimizer, training: TrainingConfig):
        self.optimizer = optimizer
        self.decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=training.lr_decay)
        # torch anneals once more than ``patience`` epochs have not improved: ours counts the epoch it anneals at.
        # threshold 0: any lower dev loss is an improvement
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=training.lr_anneal_factor, patience=training.lr_anneal_patience - 1,
            threshold=0.0) if training.lr_schedule == "plateau" else None

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def step(self, dev_loss: float) -> None:
        """At the end of an epoch whose dev loss is ``dev_loss``."""
        self.decay.step()
        if self.plateau is not None:
            self.plateau.step(dev_loss)

    def state_dict(self) -> Dict[str, Any]:
        return {"decay": self.decay.state_dict(),
                **({"plateau": self.plateau.state_dict()} if self.plateau is not None else {})}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.decay.load_state_dict(state["decay"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
