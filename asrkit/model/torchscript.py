"""The TorchScript forms of the model types (``model.exported(mean, std)``), which ``asrkit export`` writes:
each wraps the trained parts with the training set's feature statistics (:mod:`asrkit.inference.export` says
what the file holds and how to run it)."""

from typing import TYPE_CHECKING, Tuple

import torch
from torch import nn

if TYPE_CHECKING:  # the models make their exported forms: imported for annotations only
    from asrkit.model.ctc import CtcModel
    from asrkit.model.transducer import Transducer


class _Normalising(nn.Module):
    """The training set's feature statistics, and the method that applies them."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    @torch.jit.export
    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """(..., C) features with deltas -> the network's input, normalised with the training statistics."""
        return (features - self.mean) / self.std


class ExportedCtc(_Normalising):
    """A CTC model for TorchScript: normalised features -> per-frame log-probabilities."""

    def __init__(self, model: "CtcModel", mean: torch.Tensor, std: torch.Tensor):
        super().__init__(mean, std)
        self.encoder = model.encoder
        self.output = model.output

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """features: (N, T, C) normalised, lengths: (N,) -> log-probs (N, T', V) and lengths (N,)."""
        encoded, lengths = self.encoder(features, lengths)
        return self.output(encoded).log_softmax(dim=-1), lengths


class ExportedTransducer(_Normalising):
    """A transducer's encoder, prediction network (one step at a time) and joiner for TorchScript."""

    num_layers: torch.jit.Final[int]
    hidden_size: torch.jit.Final[int]

    def __init__(self, model: "Transducer", mean: torch.Tensor, std: torch.Tensor):
        super().__init__(mean, std)
        self.encoder = model.encoder
        self.embedding = model.decoder.embedding
        self.decoder_lstm = model.decoder.lstm
        self.joiner = model.joiner
        self.num_layers = model.decoder.lstm.num_layers
        self.hidden_size = model.decoder.lstm.hidden_size

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """features: (N, T, C) normalised, lengths: (N,) -> encoder output (N, T', E) and lengths (N,)."""
        return self.encoder(features, lengths)

    @torch.jit.export
    def initial_state(self, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The prediction network's state before anything: (h, c) zeros, each (L, N, H)."""
        h = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=self.mean.device)
        return h, torch.zeros_like(h)

    @torch.jit.export
    def decoder_step(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (N,) read after state (h, c) -> output (N, H) and the new (h, c)."""
        out, (h, c) = self.decoder_lstm(self.embedding(tokens).unsqueeze(1), (h, c))
        return out[:, 0], h, c

    @torch.jit.export
    def joint(self, encoder_out: torch.Tensor, decoder_out: torch.Tensor) -> torch.Tensor:
        """encoder_out (N, E) and decoder_out (N, H) -> log-probabilities (N, V) of the next token."""
        return self.joiner(self.joiner.project_encoder(encoder_out),
                           self.joiner.project_decoder(decoder_out)).log_softmax(dim=-1)
