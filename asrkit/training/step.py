"""One optimiser step: the loss of a batch, mixed precision, weight noise per utterance, accumulation over batches
and processes, and the guard against a gradient that is not finite."""

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch

from asrkit.config import TrainingConfig, TransducerConfig
from asrkit.data.dataset import to_device
from asrkit.model.interface import AcousticModel
from asrkit.training.batches import utterances
from asrkit.training.distributed import ProcessGroup
from asrkit.training.weight_noise import WeightNoise, remove_weight_noise


def batch_loss(model: AcousticModel, batch: Dict, transducer: TransducerConfig, batch_index: int) -> torch.Tensor:
    """The training loss of a batch, summed over its utterances (the model's :meth:`training_loss`, given the
    config's ``transducer`` section)."""
    return model.training_loss(batch, transducer, batch_index)


class TrainingLoss(torch.nn.Module):
    """The model with its training loss as ``forward``: what DistributedDataParallel wraps, since it
    synchronises the gradients of what its module's ``forward`` computes."""

    def __init__(self, model: AcousticModel, transducer: TransducerConfig):
        super().__init__()
        self.model, self.transducer = model, transducer

    def forward(self, batch: Dict, batch_index: int) -> torch.Tensor:
        return batch_loss(self.model, batch, self.transducer, batch_index)

#: the float16 loss scaler's first scale (torch's default): too high at first, lowered by the scaler's skips
FLOAT16_INIT_SCALE = 2.0 ** 16

#: ``training.amp``'s dtypes as torch's
AUTOCAST_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class Precision:
    """Mixed precision (``training.amp``): the autocast dtype (None: float32 throughout) and the loss scaler,
    which float16 needs (its small gradients underflow unscaled) and bfloat16 does not (disabled, it does
    nothing)."""

    dtype: Optional[torch.dtype]
    scaler: torch.amp.GradScaler

    @classmethod
    def of(cls, training: TrainingConfig, device: torch.device) -> "Precision":
        dtype = AUTOCAST_DTYPES.get(training.amp_dtype)
        return cls(dtype, torch.amp.GradScaler(device.type, init_scale=FLOAT16_INIT_SCALE,
                                               enabled=training.amp_dtype == "float16"))

    def autocast(self, device: torch.device):
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.dtype is not None)

#: How an optimiser step ended: it updated the weights; or the float16 loss scaler skipped it while calibrating
#: (the scaled gradients overflowed, and the scaler lowers its scale); or the loss or the gradient was not
#: finite whatever the scale (a divergence), and the step was skipped.
UPDATED, SCALER_SKIP, NON_FINITE = "updated", "scaler_skip", "non_finite"


@dataclass(frozen=True)
class StepOutcome:
    """One optimiser step: its loss and utterances summed over the processes (0 if skipped), and how it ended."""

    loss: float
    utterances: int
    outcome: str


def optimizer_step(net: torch.nn.Module, model: AcousticModel, optimizer: torch.optim.Optimizer,
                   precision: Precision, step_batches: List[Dict], device: torch.device, global_batches: int,
                   grad_clip: Optional[float], noise: Optional[WeightNoise] = None,
                   group: ProcessGroup = ProcessGroup()) -> StepOutcome:
    """One optimiser step on this process's ``step_batches`` (their gradients accumulated): forward and backward
    under ``precision``'s autocast and loss scaling, each utterance at weights perturbed for it alone if
    ``noise`` (see the module's docstring), the gradient clipped to norm ``grad_clip`` (None or 0: not clipped),
    and no update if it is not finite.

    ``net``: :class:`TrainingLoss` of ``model``, or DistributedDataParallel around it (``group``'s processes),
    which averages the processes' gradients at the step's last backward alone (``no_sync`` before it).
    """
    optimizer.zero_grad()
    accumulate = len(step_batches)
    step_totals = torch.zeros(2, dtype=torch.float64)  # loss, utterances
    for i, batch in enumerate(step_batches):
        batch = to_device(batch, device)
        num_utts = len(batch["cut_ids"])
        pieces = utterances(batch) if noise is not None else [batch]
        for j, piece in enumerate(pieces):
            saved = noise.add(model, piece["cut_ids"][0]) if noise is not None else None
            last = i == accumulate - 1 and j == len(pieces) - 1
            with net.no_sync() if group.world_size > 1 and not last else nullcontext():
                with precision.autocast(device):
                    loss = net(piece, global_batches)
                # each of a step's batches weighs 1 / accumulate (DDP averages over the processes)
                precision.scaler.scale(loss / (num_utts * accumulate)).backward()
            if saved is not None:
                remove_weight_noise(model, saved)
            step_totals += torch.tensor([loss.item(), len(piece["cut_ids"])], dtype=torch.float64)
    precision.scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or float("inf"))
    step_loss, step_utts = group.sum(step_totals).tolist()  # the same in every process, as the gradient
    if torch.isfinite(grad_norm):
        precision.scaler.step(optimizer)
        outcome = UPDATED
    else:  # nor does its loss count in the epoch's training loss
        # the losses are float32 under autocast too: a finite loss whose scaled gradient overflowed is the
        # scaler's calibration, not a divergence
        outcome = SCALER_SKIP if precision.scaler.is_enabled() and math.isfinite(step_loss) else NON_FINITE
        step_loss, step_utts = 0.0, 0
    precision.scaler.update()
    return StepOutcome(step_loss, int(step_utts), outcome)
