"""Frame stacking: ``k`` consecutive frames concatenated into one encoder step (k times fewer steps)."""

from typing import Tuple

import torch
from torch import nn


def stack_frames(x: torch.Tensor, x_lens: torch.Tensor, stack: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """x: (N, T, C) padded features, x_lens: (N,) -> (N, ceil(T / stack), stack * C) and (N,) the new lengths.

    An utterance's last stacked step may reach into padding: that padding is made zero, whatever the caller
    padded with, so that a batch gives the same steps as each utterance alone (as the BiLSTM encoder does).
    """
    if stack == 1:
        return x, x_lens
    n, t, c = x.size(0), x.size(1), x.size(2)
    padding = torch.arange(t, device=x.device)[None, :, None] >= x_lens.to(x.device)[:, None, None]  # (N, T, 1)
    pad = (-t) % stack
    x = nn.functional.pad(x.masked_fill(padding, 0.0), [0, 0, 0, pad]).reshape(n, (t + pad) // stack, c * stack)
    return x, torch.div(x_lens + stack - 1, stack, rounding_mode="floor")
