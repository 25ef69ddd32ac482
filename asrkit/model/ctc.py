"""CTC model: encoder + linear output layer over the tokens (blank = 0)."""

from typing import Any, Dict, Mapping, Sequence, Tuple

import torch
from torch import nn

from asrkit.model.interface import AcousticModel, GreedyPath
from asrkit.model.torchscript import ExportedCtc


class CtcModel(AcousticModel):
    def __init__(self, encoder: nn.Module, vocab_size: int):
        super().__init__()
        self.encoder = encoder
        self.output = nn.Linear(encoder.output_dim, vocab_size)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], encoder: nn.Module, vocab_size: int) -> "CtcModel":
        return cls(encoder, vocab_size)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, C) -> log-probabilities (N, T', V) and their lengths (N,)."""
        encoded, lens = self.encoder(x, x_lens)
        return self.output(encoded).log_softmax(dim=-1), lens

    @staticmethod
    def frames_needed(tokens: Sequence[int], loss_options: Any) -> int:
        """A frame per token, and a blank between two equal tokens in a row (no options)."""
        return len(tokens) + sum(a == b for a, b in zip(tokens, tokens[1:]))

    def training_loss_terms(self, batch: Mapping[str, torch.Tensor], loss_options: Any,
                            batch_index: int) -> Dict[str, torch.Tensor]:
        """``ctc``, the CTC loss summed over the batch (see :meth:`AcousticModel.training_loss_terms`; no options).

        Infinite for an utterance shorter than :meth:`frames_needed`: training leaves those out beforehand, so
        an infinite loss here is an error to see, not one to zero and average in silently.
        """
        log_probs, lens = self(batch["features"], batch["feature_lens"])
        return {"ctc": nn.functional.ctc_loss(log_probs.transpose(0, 1), batch["targets"], lens, batch["target_lens"],
                                             blank=0, reduction="sum")}

    def path_log_probs(self, features: torch.Tensor, path: GreedyPath) -> torch.Tensor:
        """The network's output: CTC's distribution at a frame does not depend on the path."""
        return self.utterance_log_probs(features)

    def utterance_log_probs(self, features: torch.Tensor) -> torch.Tensor:
        """features: (T, C) one utterance -> (T', V) log-probabilities."""
        return self(features.unsqueeze(0), torch.tensor([features.size(0)]))[0][0]

    def exported(self, mean: torch.Tensor, std: torch.Tensor) -> nn.Module:
        return ExportedCtc(self, mean, std)
