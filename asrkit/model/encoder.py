"""The deep bidirectional LSTM encoder of Graves et al. 2013 (each layer reads both directions below it)."""

from typing import List, Tuple

import torch
from torch import nn

from asrkit.model.frame_stacking import stack_frames
from asrkit.model.peephole_lstm import PeepholeLstm


class BiLstmEncoder(nn.Module):
    """Optional frame stacking, then ``num_layers`` bidirectional LSTM layers.

    Stacking concatenates ``stack_frames`` consecutive frames into one step: the sequence gets that many
    times shorter, which on a CPU is the difference between minutes and hours per epoch.
    ``peephole=True`` uses the peephole LSTM of the paper (:class:`PeepholeLstm`) instead of torch's fused
    LSTM (:class:`FusedBiLstm`), which has none and is faster. Both take a padded batch and its lengths, and
    give each sequence the outputs it gets alone.

    The module can be compiled with ``torch.jit.script`` (asrkit.inference.export does).
    """

    stack_frames: torch.jit.Final[int]

    def __init__(self, input_dim: int, hidden_size: int, num_layers: int, stack_frames: int = 1,
                 dropout: float = 0.0, peephole: bool = False):
        super().__init__()
        self.stack_frames = stack_frames
        self.peephole = peephole
        dropout = dropout if num_layers > 1 else 0.0
        lstm = PeepholeLstm if peephole else FusedBiLstm
        self.lstm = lstm(input_dim * stack_frames, hidden_size, num_layers, dropout=dropout)
        self.output_dim = 2 * hidden_size

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """x: (N, T, C) features, x_lens: (N,) -> (N, T', 2 * hidden_size) and (N,) with T' = ceil(T / stack).

        Output frames at or beyond a sequence's length are zero.
        """
        x, lens = stack_frames(x, x_lens, self.stack_frames)
        return self.lstm(x, lens), lens


class FusedBiLstm(nn.LSTM):
    """torch's fused bidirectional LSTM (``nn.LSTM``, batch first: the same parameters and state_dict keys)
    over a padded batch with lengths, each sequence computed as if alone.

    On the CPU a packed batch (``pack_padded_sequence``) makes torch leave its fast LSTM kernel for a much
    slower one: 0.15 of the padded speed at the paper's shape (issue 14, bench/training.py). So each layer runs
    as two single-direction LSTMs on padded batches: the forward direction on the batch as it is (each
    sequence's padding comes after its frames, so it never reaches them), and the backward direction on each
    sequence reversed within its own length (padding left after it), its output reversed back. Padding is
    zero at every layer's input and output, as packing gives. Outputs and gradients equal the packed ones up
    to float rounding; dropout between layers is applied as ``nn.LSTM`` applies it (to different elements:
    the random draws differ).

    On CUDA the packed path stays: cuDNN runs packed batches well, and both directions of a layer in one
    call. ``bench/training.py --device cuda`` times both paths against a bare LSTM there.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0):
        super().__init__(input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=True,
                         dropout=dropout)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        """x: (N, T, input_size), lens: (N,) valid steps -> (N, T, 2 * hidden_size), zero beyond each length.

        For each step the forward direction's output comes first, as in ``nn.LSTM``.
        """
        if x.is_cuda:
            return self._packed(x, lens)
        return self._padded(x, lens)

    def _padded(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        n, t = x.size(0), x.size(1)
        positions = torch.arange(t, device=x.device)
        lens = lens.to(x.device).unsqueeze(1)
        valid = (positions.unsqueeze(0) < lens).unsqueeze(2)  # (N, T, 1)
        # Step read at each position by the backward direction: the valid steps reversed, padding in place.
        # Reversing twice is the identity, so the same index also puts its outputs back in order.
        reverse_index = torch.where(valid[:, :, 0], lens - 1 - positions, positions).unsqueeze(2)  # (N, T, 1)
        zeros = x.new_zeros(1, n, self.hidden_size)
        state = [zeros, zeros]
        # Zero padding keeps what the recurrence computes there finite: its gradient is multiplied by zero.
        out = x.masked_fill(~valid, 0.0)
        weights: List[torch.Tensor] = self._flat_weights  # per layer: w_ih, w_hh, b_ih, b_hh forward, then reverse
        for layer in range(self.num_layers):
            if layer > 0:
                out = nn.functional.dropout(out, self.dropout, self.training)
            forward_weights = weights[8 * layer : 8 * layer + 4]
            backward_weights = weights[8 * layer + 4 : 8 * layer + 8]
            forward = torch.lstm(out, state, forward_weights, True, 1, 0.0, self.training, False, True)[0]
            reversed_in = out.gather(1, reverse_index.expand(n, t, out.size(2)))
            backward = torch.lstm(reversed_in, state, backward_weights, True, 1, 0.0, self.training, False, True)[0]
            backward = backward.gather(1, reverse_index.expand(n, t, self.hidden_size))
            out = torch.cat([forward, backward], dim=2).masked_fill(~valid, 0.0)
        return out

    def _packed(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        packed = nn.utils.rnn.pack_padded_sequence(x, lens.cpu(), batch_first=True, enforce_sorted=False)
        zeros = x.new_zeros(2 * self.num_layers, x.size(0), self.hidden_size)
        # The initial state is zero for every sequence, so it needs no reordering to the packed order.
        data = torch.lstm(packed.data, packed.batch_sizes, [zeros, zeros], self._flat_weights, True, self.num_layers,
                          self.dropout, self.training, True)[0]
        out = nn.utils.rnn.PackedSequence(data, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices)
        return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0]
