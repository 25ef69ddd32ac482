"""Single-RNN encoders beside the BiLSTM: the bidirectional tanh RNN (CTC-3L-500H-TANH) and the
unidirectional LSTM (CTC-3L-421H-UNI) of Graves et al. 2013, Table 1, the latter also with peepholes."""

from typing import Tuple, Type

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.model.frame_stacking import stack_frames
from asrkit.model.peephole_lstm import PeepholeLstm


class RnnEncoder(nn.Module):
    """Optional frame stacking, then ``num_layers`` layers of one of torch's fused RNNs, ``rnn``: ``nn.RNN``
    (tanh units) or ``nn.LSTM``; bidirectional (each layer reads both directions below it) or forward only.

    The padded batch is packed, so padding never enters the recurrence: each utterance's output is the one it
    gets alone, and padded output frames are zero. Scriptable with ``torch.jit.script``.
    """

    stack_frames: torch.jit.Final[int]

    def __init__(self, input_dim: int, hidden_size: int, num_layers: int, rnn: Type[nn.RNNBase],
                 bidirectional: bool, stack_frames: int = 1, dropout: float = 0.0):
        super().__init__()
        self.stack_frames = stack_frames
        self.rnn = rnn(input_dim * stack_frames, hidden_size, num_layers=num_layers, batch_first=True,
                       bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.output_dim = (2 if bidirectional else 1) * hidden_size

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, C) features, x_lens: (N,) -> (N, T', output_dim) and (N,) with T' = ceil(T / stack)."""
        x, lens = stack_frames(x, x_lens, self.stack_frames)
        packed = pack_padded_sequence(x, lens.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return out, lens


class ForwardPeepholeLstmEncoder(nn.Module):
    """Optional frame stacking, then ``num_layers`` forward-only layers of the paper's peephole LSTM
    (:class:`~asrkit.model.peephole_lstm.PeepholeLstm`): the unidirectional encoder with peepholes. Padding
    needs no packing (see PeepholeLstm); padded output frames are zero. Scriptable with ``torch.jit.script``."""

    stack_frames: torch.jit.Final[int]

    def __init__(self, input_dim: int, hidden_size: int, num_layers: int, stack_frames: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.stack_frames = stack_frames
        self.lstm = PeepholeLstm(input_dim * stack_frames, hidden_size, num_layers, bidirectional=False,
                                 dropout=dropout if num_layers > 1 else 0.0)
        self.output_dim = hidden_size

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, C) features, x_lens: (N,) -> (N, T', hidden_size) and (N,) with T' = ceil(T / stack)."""
        x, lens = stack_frames(x, x_lens, self.stack_frames)
        return self.lstm(x, lens), lens
