"""The deep bidirectional LSTM encoder of Graves et al. 2013 (each layer reads both directions below it)."""

from typing import Tuple

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.model.peephole_lstm import PeepholeLstm


class BiLstmEncoder(nn.Module):
    """Optional frame stacking, then ``num_layers`` bidirectional LSTM layers.

    Stacking concatenates ``stack_frames`` consecutive frames into one step: the sequence gets that many
    times shorter, which on a CPU is the difference between minutes and hours per epoch.
    ``peephole=True`` uses the peephole LSTM of the paper (:class:`PeepholeLstm`) instead of torch's fused
    LSTM, which has none and is faster.
    """

    def __init__(self, input_dim: int, hidden_size: int, num_layers: int, stack_frames: int = 1,
                 dropout: float = 0.0, peephole: bool = False):
        super().__init__()
        self.stack_frames = stack_frames
        self.peephole = peephole
        dropout = dropout if num_layers > 1 else 0.0
        if peephole:
            self.lstm = PeepholeLstm(input_dim * stack_frames, hidden_size, num_layers, dropout=dropout)
        else:
            self.lstm = nn.LSTM(input_dim * stack_frames, hidden_size, num_layers=num_layers, batch_first=True,
                                bidirectional=True, dropout=dropout)
        self.output_dim = 2 * hidden_size

    def output_lengths(self, x_lens: torch.Tensor) -> torch.Tensor:
        return torch.div(x_lens + self.stack_frames - 1, self.stack_frames, rounding_mode="floor")

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, C) features, x_lens: (N,) -> (N, T', 2 * hidden_size) and (N,) with T' = ceil(T / stack)."""
        if self.stack_frames > 1:
            n, t, c = x.shape
            # An utterance's last stacked step may reach into padding: make that padding zero, whatever the
            # caller padded with, so that a batch gives the same output as each utterance alone.
            x = x.masked_fill(torch.arange(t, device=x.device)[None, :, None] >= x_lens.to(x.device)[:, None, None], 0.0)
            pad = (-t) % self.stack_frames
            x = nn.functional.pad(x, (0, 0, 0, pad)).reshape(n, (t + pad) // self.stack_frames, c * self.stack_frames)
        lens = self.output_lengths(x_lens)
        if self.peephole:
            return self.lstm(x, lens), lens
        packed = pack_padded_sequence(x, lens.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return out, lens
