"""What the stages ask of a model: the interface every model type implements (see docs/new_model.md).

Training calls :meth:`AcousticModel.training_loss` (and :meth:`~AcousticModel.parts_from_ctc_model` for PRETRANS);
the sensitivity figure :meth:`~AcousticModel.path_log_probs`; export :meth:`~AcousticModel.exported`. The searches
that decoding, transcription and the dev evaluation run read the models from :mod:`asrkit.search.searches`: a
model imports no search.

Every model has an ``encoder``: ``encoder(x (N, T, C), x_lens (N,)) -> (N, T', encoder.output_dim), (N,)``, with
``T' = ceil(T / encoder.stack_frames)`` (see :mod:`asrkit.model.registry` for the encoders).
"""

import sys
from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Sequence

import torch
from torch import nn


@dataclass
class GreedyPath:
    """The greedy search's path through one utterance.

    tokens: emitted token ids; frames: the encoder frame at which each was emitted (ascending).
    log_probs: (T', V) on the CPU, the output distribution at each encoder frame along the path (for a
        transducer, the joiner's, given the prediction network's state at that frame).
    """

    tokens: List[int]
    frames: List[int]
    log_probs: torch.Tensor


class AcousticModel(nn.Module, metaclass=ABCMeta):
    """Base class of the model types: an encoder and whatever turns its output into tokens (blank = 0).

    A model type that leaves out a method cannot be instantiated (``abstractmethod``).
    """

    encoder: nn.Module

    @classmethod
    @abstractmethod
    def from_options(cls, options: Mapping[str, Any], encoder: nn.Module, vocab_size: int) -> "AcousticModel":
        """The model around ``encoder``, from the model options (defaults filled in, see
        :mod:`asrkit.model.registry`), with ``vocab_size`` output tokens (blank included)."""

    @staticmethod
    @abstractmethod
    def frames_needed(tokens: Sequence[int], loss_options: Any) -> int:
        """The fewest encoder frames over which the training loss can align ``tokens``: an utterance with fewer
        has no alignment (an infinite loss), and training leaves it out (:func:`asrkit.training.train.feasible_cuts`).

        loss_options: as for :meth:`training_loss`.
        """

    @abstractmethod
    def training_loss_terms(self, batch: Mapping[str, torch.Tensor], loss_options: Any,
                            batch_index: int) -> Dict[str, torch.Tensor]:
        """The terms of the loss of a batch by name (e.g. a transducer's auxiliary CTC loss apart), each
        weighted and summed over the batch's utterances: :meth:`training_loss` is their sum.

        batch: ``features`` (N, T, C), ``feature_lens`` (N,), ``targets`` (N, U) padded token ids,
        ``target_lens`` (N,). loss_options: the config's section for this model type's loss, a dataclass of
        :mod:`asrkit.config` (:class:`~asrkit.config.TransducerConfig` for transducers; unused by CTC). batch_index: batches trained on so far (a loss may
        change with it, as the transducer's warm-up does); ``sys.maxsize`` on dev.
        """

    def training_loss(self, batch: Mapping[str, torch.Tensor], loss_options: Any,
                      batch_index: int) -> torch.Tensor:
        """The loss of a batch, summed over its utterances: what training minimises (the sum of
        :meth:`training_loss_terms`)."""
        return sum(self.training_loss_terms(batch, loss_options, batch_index).values())

    def dev_loss_terms(self, batch: Mapping[str, torch.Tensor], loss_options: Any) -> Dict[str, torch.Tensor]:
        """The terms of the loss that the dev evaluation reports and the paper schedule's noiseless phase stops
        on (minus the log-probability of the targets, for the models that define one), each summed over the
        batch's utterances; arguments as for :meth:`training_loss_terms`. By default the training loss after
        any warm-up."""
        return self.training_loss_terms(batch, loss_options, batch_index=sys.maxsize)

    def mark_pretrained(self, parts: Iterable[str]) -> None:
        """Note which parts were started from other models (``encoder``: a CTC model's, ``decoder``: a token
        LM's; PRETRANS), for a loss that treats them apart (the transducer's warm-up). By default nothing."""

    def parts_from_ctc_model(self) -> Dict[str, nn.Module]:
        """The parts that start from a CTC model's (PRETRANS), by the CTC model's names of them: the encoder."""
        return {"encoder": self.encoder}

    @abstractmethod
    def path_log_probs(self, features: torch.Tensor, path: GreedyPath) -> torch.Tensor:
        """(T', V) log-probabilities along ``path`` (as :attr:`GreedyPath.log_probs`), differentiable with
        respect to ``features`` (T, C): what the input-sensitivity figure takes the gradient of."""

    @abstractmethod
    def exported(self, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
        """The module that :mod:`asrkit.inference.export` compiles with ``torch.jit.script``; mean, std: (C,)
        the training set's feature statistics, which it applies in its ``normalise`` method."""
