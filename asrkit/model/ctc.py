"""CTC model: encoder + linear output layer over the tokens (blank = 0)."""

from typing import Tuple

import torch
from torch import nn

from asrkit.model.encoder import BiLstmEncoder


class CtcModel(nn.Module):
    def __init__(self, encoder: BiLstmEncoder, vocab_size: int):
        super().__init__()
        self.encoder = encoder
        self.output = nn.Linear(encoder.output_dim, vocab_size)

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, C) -> log-probabilities (N, T', V) and their lengths (N,)."""
        encoded, lens = self.encoder(x, x_lens)
        return self.output(encoded).log_softmax(dim=-1), lens

    def loss(self, x: torch.Tensor, x_lens: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor
             ) -> torch.Tensor:
        """CTC loss summed over the batch. targets: (N, U) padded, target_lens: (N,)."""
        log_probs, lens = self(x, x_lens)
        return nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, lens, target_lens, blank=0,
                                      reduction="sum", zero_infinity=True)
