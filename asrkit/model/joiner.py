"""The joint network of the transducer as in Graves, Mohamed & Hinton 2013."""

import torch
from torch import nn


class Joiner(nn.Module):
    """``logits = W_out tanh(W_enc e_t + W_dec p_u + b) + b_out`` over the vocabulary (blank included).

    The two input projections are applied separately (:meth:`project_encoder`, :meth:`project_decoder`) so
    that the training loss and the searches project each encoder frame and each decoder state once, and
    combine them by broadcasting: (N, T, 1, J) + (N, 1, U + 1, J) for the full lattice, or (N, T, s, J) pairs
    after pruning. The decoder projection has no bias: one bias ``b`` inside the tanh is the paper's ``b_h``.
    """

    def __init__(self, encoder_dim: int, decoder_dim: int, joiner_dim: int, vocab_size: int):
        super().__init__()
        self.encoder_proj = nn.Linear(encoder_dim, joiner_dim)
        self.decoder_proj = nn.Linear(decoder_dim, joiner_dim, bias=False)
        self.output_linear = nn.Linear(joiner_dim, vocab_size)

    def project_encoder(self, encoder_out: torch.Tensor) -> torch.Tensor:
        """(..., encoder_dim) -> (..., joiner_dim)."""
        return self.encoder_proj(encoder_out)

    def project_decoder(self, decoder_out: torch.Tensor) -> torch.Tensor:
        """(..., decoder_dim) -> (..., joiner_dim)."""
        return self.decoder_proj(decoder_out)

    def forward(self, encoder_proj: torch.Tensor, decoder_proj: torch.Tensor) -> torch.Tensor:
        """Projected inputs of broadcastable shapes (..., joiner_dim) -> unnormalised logits (..., vocab_size)."""
        return self.output_linear(torch.tanh(encoder_proj + decoder_proj))
