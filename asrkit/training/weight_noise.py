"""Gaussian weight noise, drawn once per training utterance (Graves et al. 2013), and the paper's initialisation.

A step's utterances each see the weights plus a perturbation of their own; their gradients are summed and the
weights restored exactly before the update (docs/training.md says why per utterance, and what batching changes).
"""

from dataclasses import dataclass
from typing import List

import torch

from asrkit.data.spec_augment import keyed_generator


def noise_generator(seed: int, epoch: int, item: str) -> torch.Generator:
    """The generator of one training item's weight noise (an utterance, by its cut ID): seeded by the run's
    seed, the epoch and the item alone.

    So the noise of an utterance is the same whichever process trains it, in whatever batch: a resumed run,
    accumulated batches and DistributedDataParallel's processes all draw the same noise, and there is no
    noise RNG state to checkpoint (resuming is exact by construction).
    """
    return keyed_generator(f"{seed}/{epoch}/{item}")


def add_weight_noise(model: torch.nn.Module, std: float, generator: torch.Generator) -> List[torch.Tensor]:
    """Add Gaussian noise to every weight; return the weights as they were, for :func:`remove_weight_noise`.

    The noise comes from a (CPU) generator of its own (:func:`noise_generator`), not the global RNG. The weights
    are restored from a copy rather than by subtracting the noise: (w + n) - n is not w in floating point, and
    the processes of a distributed training, each with its own utterances' noise, would drift apart.
    """
    saved = []
    with torch.no_grad():
        for p in model.parameters():
            saved.append(p.detach().clone())
            p.add_((torch.randn(p.shape, generator=generator) * std).to(p.device))
    return saved


def remove_weight_noise(model: torch.nn.Module, saved: List[torch.Tensor]) -> None:
    """Put back the weights that :func:`add_weight_noise` saved, exactly."""
    with torch.no_grad():
        for p, weights in zip(model.parameters(), saved):
            p.copy_(weights)


@dataclass(frozen=True)
class WeightNoise:
    """Gaussian weight noise of ``std``, drawn once per training utterance (:func:`noise_generator`)."""

    std: float
    seed: int
    epoch: int

    def add(self, model: torch.nn.Module, cut_id: str) -> List[torch.Tensor]:
        return add_weight_noise(model, self.std, noise_generator(self.seed, self.epoch, cut_id))

#: the bound of the paper's initial weights, uniform in [-bound, bound] (``training.init: uniform``)
UNIFORM_INIT_BOUND = 0.1


def initialise_uniformly(model: torch.nn.Module) -> None:
    """Every weight uniform in [-0.1, 0.1], as Graves et al. initialise (from the global RNG, seeded)."""
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-UNIFORM_INIT_BOUND, UNIFORM_INIT_BOUND)
