"""SpecAugment (Park et al. 2019) on training utterances: time warp, frequency masks and time masks.

Not lhotse's ``SpecAugment``: it masks contiguous ranges of the whole input vector, which here is three blocks
(static features, deltas, delta-deltas), so a mask would hit one band of one block and perhaps spill into the
next; and it draws from Python's global ``random``, which neither the training's checkpoints nor its data
loader workers share. Here:

* the time warp is applied to the static features, before deltas, so that the deltas are those of the warped
  features;
* frequency masks hide the same bands in every block of the normalised input (static, delta and delta-delta),
  and time masks whole frames; masked values are 0, the training set's mean after normalisation. (Masking the
  static features before the deltas would leave the deltas of a masked band at zero but not its normalised
  value, and smear each time mask's edges into the deltas of the frames around it.)

Each utterance's draws come from a generator of its own, seeded by the run's seed, the epoch and the cut ID
(:func:`keyed_generator`): the same whichever data loader worker builds the batch and in whichever batch, so
that a resumed epoch sees the same augmented utterances and there is no augmentation RNG state to checkpoint.
"""

import hashlib
from dataclasses import dataclass
from typing import Tuple

import torch

from asrkit.config import TrainingConfig


def keyed_generator(key: str) -> torch.Generator:
    """A CPU generator seeded by ``key`` alone (its SHA-256): the same draws in any process, at any time."""
    digest = hashlib.sha256(key.encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


@dataclass(frozen=True)
class SpecAugment:
    """The augmentation of one training epoch (the config's ``training.spec_augment_*`` keys)."""

    seed: int
    epoch: int
    #: the most frames the time warp moves its centre by (0: no warp)
    time_warp: int
    num_freq_masks: int
    #: the widest frequency mask, in bands of the static features
    freq_mask_width: int
    num_time_masks: int
    #: the longest time mask, in frames
    time_mask_width: int

    @staticmethod
    def for_epoch(training: TrainingConfig, seed: int, epoch: int) -> "SpecAugment":
        return SpecAugment(seed, epoch, training.spec_augment_time_warp, training.spec_augment_freq_masks,
                           training.spec_augment_freq_width, training.spec_augment_time_masks,
                           training.spec_augment_time_width)

    def generator(self, cut_id: str) -> torch.Generator:
        """The generator of one utterance's draws in this epoch (independent of the weight noise's)."""
        return keyed_generator(f"spec_augment/{self.seed}/{self.epoch}/{cut_id}")

    def warp(self, static: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """static: (T, D) -> (T, D), the frames before a random centre stretched or squeezed onto those before a
        moved centre (at most ``time_warp`` frames away), the frames after it onto the rest; linear
        interpolation along time. Utterances too short for a centre ``time_warp`` frames from either end are
        left as they are."""
        frames, width = static.size(0), self.time_warp
        if width == 0 or frames <= 2 * width + 1:
            return static
        centre = int(torch.randint(width + 1, frames - width, (1,), generator=generator))
        moved = centre + int(torch.randint(-width, width + 1, (1,), generator=generator))  # in [1, frames - 1]
        by_time = static.t().unsqueeze(0)  # (1, D, T): interpolate resizes the last dimension
        before = torch.nn.functional.interpolate(by_time[..., :centre], size=moved, mode="linear", align_corners=True)
        after = torch.nn.functional.interpolate(by_time[..., centre:], size=frames - moved, mode="linear",
                                                align_corners=True)
        return torch.cat([before, after], dim=2)[0].t()

    def mask(self, frames: torch.Tensor, num_blocks: int, generator: torch.Generator) -> torch.Tensor:
        """frames: (T, num_blocks * D) normalised input -> a copy with the same ``num_freq_masks`` random bands
        zeroed in each of its blocks and ``num_time_masks`` random spans of frames zeroed (a mask's width is
        uniform in [0, its most], and never more than there is)."""
        masked = frames.clone()
        length, band_dim = frames.size(0), frames.size(1) // num_blocks
        by_block = masked.view(length, num_blocks, band_dim)
        for _ in range(self.num_freq_masks):
            start, end = self._span(band_dim, self.freq_mask_width, generator)
            by_block[:, :, start:end] = 0.0
        for _ in range(self.num_time_masks):
            start, end = self._span(length, self.time_mask_width, generator)
            masked[start:end] = 0.0
        return masked

    @staticmethod
    def _span(size: int, most: int, generator: torch.Generator) -> Tuple[int, int]:
        """A random [start, end) within [0, size) of width uniform in [0, min(most, size)]."""
        width = int(torch.randint(0, min(most, size) + 1, (1,), generator=generator))
        start = int(torch.randint(0, size - width + 1, (1,), generator=generator))
        return start, start + width
