"""LSTM with peephole connections, as used by Graves et al. 2013, for padded batches on the CPU.

Per layer and direction (gate order i, f, g, o as in ``torch.nn.LSTM``; ⊙ is the elementwise product)::

    i_t = σ(W_xi x_t + W_hi h_{t-1} + w_ci ⊙ c_{t-1} + b_i)
    f_t = σ(W_xf x_t + W_hf h_{t-1} + w_cf ⊙ c_{t-1} + b_f)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ tanh(W_xc x_t + W_hc h_{t-1} + b_c)
    o_t = σ(W_xo x_t + W_ho h_{t-1} + w_co ⊙ c_t + b_o)
    h_t = o_t ⊙ tanh(c_t)

torch has no fused kernel for this, so the speed comes from doing as little as possible per time step:
the input projections of all frames are one matrix product before the loop; both directions run in the same
loop as a batch of two (the backward direction on each sequence reversed within its own length); and the
recurrence is an autograd Function with a hand-written backward pass, so the loop records no autograd graph
and back-propagation through time is six small tensor operations per step, with the weight gradients of all
steps computed by one matrix product afterwards.
"""

import math
from typing import Tuple

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable


class PeepholeLstm(nn.Module):
    """Stacked (bi)directional peephole LSTM over a padded batch.

    Each layer reads the concatenated outputs of both directions of the layer below; dropout is applied
    between layers as in ``torch.nn.LSTM``. Padding needs no packing: in both directions a sequence's padded
    frames are processed after all its real ones (the backward direction reads each sequence reversed within
    its length), so whatever the recurrence computes on padding never reaches a real frame's output, and
    the padded output frames are set to zero. A padded batch thus gives each sequence the outputs it gets
    alone.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, bidirectional: bool = True,
                 dropout: float = 0.0):
        super().__init__()
        num_directions = 2 if bidirectional else 1
        self.layers = nn.ModuleList(
            PeepholeLstmLayer(input_size if k == 0 else num_directions * hidden_size, hidden_size, num_directions)
            for k in range(num_layers))
        self.dropout = dropout
        self.output_dim = num_directions * hidden_size

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """x: (N, T, input_size), lens: (N,) valid frames -> (N, T, num_directions * hidden_size).

        For each frame the forward direction's output comes first, as in ``torch.nn.LSTM``; frames at or
        beyond a sequence's length are zero.
        """
        positions = torch.arange(x.size(1), device=x.device)
        lens = lens.to(x.device).unsqueeze(1)
        valid = positions.unsqueeze(0) < lens  # (N, T)
        # Frame read at step t by the backward direction: valid frames reversed, padding left in place.
        reverse_index = torch.where(valid, lens - 1 - positions, positions)  # (N, T)
        out = x
        for k, layer in enumerate(self.layers):
            if k > 0:
                out = nn.functional.dropout(out, self.dropout, self.training)
            out = layer(out, reverse_index)
        return out.masked_fill(~valid.unsqueeze(2), 0.0)


class PeepholeLstmLayer(nn.Module):
    """One layer, all directions. Parameters are stacked over directions (index 0 forward, 1 backward):

    ``weight_ih`` (D, 4H, input_size), ``weight_hh`` (D, 4H, H), ``bias`` (D, 4H), with the gate rows in the
    order i, f, g, o, and ``peephole`` (D, 3, H) holding w_ci, w_cf, w_co. Initialised like
    ``torch.nn.LSTM``: uniform in ±1/sqrt(H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_directions: int):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(num_directions, 4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(num_directions, 4 * hidden_size, hidden_size))
        self.bias = nn.Parameter(torch.empty(num_directions, 4 * hidden_size))
        self.peephole = nn.Parameter(torch.empty(num_directions, 3, hidden_size))
        bound = 1.0 / math.sqrt(hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, x: torch.Tensor, reverse_index: torch.Tensor) -> torch.Tensor:
        """x: (N, T, C); reverse_index: (N, T) frame order of the backward direction -> (N, T, D * H)."""
        num_directions, gate_size, input_size = self.weight_ih.size(0), self.weight_ih.size(1), self.weight_ih.size(2)
        n, t = x.size(0), x.size(1)
        hidden_size = gate_size // 4
        if num_directions == 2:
            x = torch.stack([x, x.gather(1, reverse_index.unsqueeze(2).expand_as(x))])  # (2, N, T, C)
        else:
            x = x.unsqueeze(0)
        gates = torch.baddbmm(self.bias.unsqueeze(1), x.reshape(num_directions, n * t, input_size),
                              self.weight_ih.transpose(1, 2))  # (D, N * T, 4H)
        gates = gates.view(num_directions, n, t, gate_size).permute(2, 0, 1, 3).contiguous()  # (T, D, N, 4H)
        if torch.jit.is_scripting():
            # TorchScript cannot hold the autograd Function: an exported model runs the steps alone, for
            # inference (without gradients).
            with torch.no_grad():
                hidden = peephole_steps(gates, self.weight_hh, self.peephole)[5]
        else:
            hidden = self._recurrence(gates)
        hidden = hidden.permute(2, 0, 1, 3)  # (N, T, D, H)
        if num_directions == 2:
            backward = hidden[:, :, 1].gather(1, reverse_index.unsqueeze(2).expand(n, t, hidden_size))
            hidden = torch.stack([hidden[:, :, 0], backward], dim=2)
        return hidden.reshape(n, t, num_directions * hidden_size)

    @torch.jit.unused
    def _recurrence(self, gates: torch.Tensor) -> torch.Tensor:
        """(T, D, N, 4H) input gates -> (T, D, N, H) outputs, with the hand-written backward pass.

        In float32 under mixed precision too, as ``torch.amp.custom_fwd(cast_inputs=torch.float32)`` would run
        it, on any device: the hand-written backward runs outside autocast, where float16 or bfloat16 gates
        would meet float32 weights."""
        with torch.autocast(gates.device.type, enabled=False):
            return PeepholeRecurrence.apply(gates.float(), self.weight_hh, self.peephole)


def peephole_steps(input_gates: torch.Tensor, weight_hh: torch.Tensor, peephole: torch.Tensor
                   ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The recurrence of a peephole LSTM layer, all directions as a batch, from zero state, step by step.

    input_gates (T, D, N, 4H): ``W_x x_t + b`` of the frame each direction reads at step t; weight_hh
    (D, 4H, H); peephole (D, 3, H). Returns what the backward pass needs: σ of the i and f gates
    (T, D, N, 2, H), tanh of the cell input g (T, D, N, H), the o gate (T, D, N, H), the cells (T + 1, D, N, H)
    with the zero initial cell first, tanh of the cells (T, D, N, H) and the outputs h (T, D, N, H).

    The steps write into tensors allocated once (``out=``), which autograd refuses: call it without
    gradients (:class:`PeepholeRecurrence` differentiates it by hand).
    """
    steps, num_directions, n = input_gates.size(0), input_gates.size(1), input_gates.size(2)
    hidden_size = input_gates.size(3) // 4
    input_forget = input_gates.new_empty(steps, num_directions, n, 2, hidden_size)  # σ of i and f
    candidate = input_gates.new_empty(steps, num_directions, n, hidden_size)  # tanh of the cell input g
    output_gate = torch.empty_like(candidate)
    cells = input_gates.new_zeros(steps + 1, num_directions, n, hidden_size)  # cells[t + 1] = c_t, cells[0] = 0
    tanh_cells = torch.empty_like(candidate)
    hidden = torch.empty_like(candidate)
    recurrent_weight = weight_hh.transpose(1, 2)  # (D, H, 4H)
    peephole_input_forget = peephole[:, :2].unsqueeze(1)  # (D, 1, 2, H)
    peephole_output = peephole[:, 2].unsqueeze(1)  # (D, 1, H)
    h = input_gates.new_zeros(num_directions, n, hidden_size)
    for t in range(steps):
        pre = torch.baddbmm(input_gates[t], h, recurrent_weight).view(num_directions, n, 4, hidden_size)
        c_prev, c = cells[t], cells[t + 1]
        torch.sigmoid(torch.addcmul(pre[:, :, :2], peephole_input_forget, c_prev.unsqueeze(2)), out=input_forget[t])
        torch.tanh(pre[:, :, 2], out=candidate[t])
        torch.mul(input_forget[t, :, :, 1], c_prev, out=c)
        c.addcmul_(input_forget[t, :, :, 0], candidate[t])
        torch.sigmoid(torch.addcmul(pre[:, :, 3], peephole_output, c), out=output_gate[t])
        torch.tanh(c, out=tanh_cells[t])
        h = torch.mul(output_gate[t], tanh_cells[t], out=hidden[t])
    return input_forget, candidate, output_gate, cells, tanh_cells, hidden


class PeepholeRecurrence(torch.autograd.Function):
    """The recurrent part of a peephole LSTM layer, all directions as a batch, starting from zero state.

    forward(input_gates (T, D, N, 4H), weight_hh (D, 4H, H), peephole (D, 3, H)) -> h (T, D, N, H), where
    ``input_gates[t]`` is ``W_x x_t + b`` of the frame each direction reads at step t.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, input_gates: torch.Tensor, weight_hh: torch.Tensor, peephole: torch.Tensor
                ) -> torch.Tensor:
        input_forget, candidate, output_gate, cells, tanh_cells, hidden = peephole_steps(input_gates, weight_hh,
                                                                                         peephole)
        ctx.save_for_backward(weight_hh, peephole, input_forget, candidate, output_gate, cells, tanh_cells, hidden)
        return hidden

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_hidden: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        weight_hh, peephole, input_forget, candidate, output_gate, cells, tanh_cells, hidden = ctx.saved_tensors
        steps, num_directions, n, hidden_size = hidden.shape
        i, f, g, o = input_forget[:, :, :, 0], input_forget[:, :, :, 1], candidate, output_gate
        c_prev, c = cells[:-1], cells[1:]
        w_ci, w_cf, w_co = (peephole[:, k].unsqueeze(1) for k in range(3))  # (D, 1, H) each
        # Everything that does not depend on the incoming gradient, for all steps at once:
        # d(pre-activation of o)/dh_t, d(pre-activations of i, f, g)/dc_t, dc_t/dh_t and dc_{t-1}/dc_t.
        d_output_pre = tanh_cells * o * (1 - o)
        d_cell_from_hidden = o * (1 - tanh_cells * tanh_cells) + w_co * d_output_pre
        d_ifg_pre = torch.stack([g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g * g)], dim=3)  # (T, D, N, 3, H)
        d_cell_prev = f + w_ci * d_ifg_pre[:, :, :, 0] + w_cf * d_ifg_pre[:, :, :, 1]

        grad_pre = hidden.new_empty(steps, num_directions, n, 4, hidden_size)
        grad_h_recurrent = hidden.new_zeros(num_directions, n, hidden_size)
        grad_c_next = hidden.new_zeros(num_directions, n, hidden_size)
        for t in reversed(range(steps)):
            grad_h = grad_hidden[t] + grad_h_recurrent
            torch.mul(grad_h, d_output_pre[t], out=grad_pre[t, :, :, 3])
            grad_c = torch.addcmul(grad_c_next, grad_h, d_cell_from_hidden[t])
            torch.mul(grad_c.unsqueeze(2), d_ifg_pre[t], out=grad_pre[t, :, :, :3])
            grad_c_next = grad_c * d_cell_prev[t]
            grad_h_recurrent = torch.bmm(grad_pre[t].view(num_directions, n, 4 * hidden_size), weight_hh)

        grad_pre = grad_pre.view(steps, num_directions, n, 4 * hidden_size)
        hidden_prev = torch.cat([hidden.new_zeros(1, num_directions, n, hidden_size), hidden[:-1]])
        # dW_hh[d] = sum over steps and sequences of grad_pre^T h_{t-1}: one batched product over directions.
        grad_weight_hh = torch.bmm(grad_pre.transpose(0, 1).reshape(num_directions, steps * n, -1).transpose(1, 2),
                                   hidden_prev.transpose(0, 1).reshape(num_directions, steps * n, hidden_size))
        grad_peephole = torch.stack([(grad_pre[..., :hidden_size] * c_prev).sum(dim=(0, 2)),
                                     (grad_pre[..., hidden_size:2 * hidden_size] * c_prev).sum(dim=(0, 2)),
                                     (grad_pre[..., 3 * hidden_size:] * c).sum(dim=(0, 2))], dim=1)
        return grad_pre, grad_weight_hh, grad_peephole
