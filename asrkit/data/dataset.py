"""Batches for recognition: normalised features with deltas, and token targets, from lhotse cuts."""

from typing import Any, Dict, List, Optional

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from torch.nn.utils.rnn import pad_sequence

from asrkit.config import FeatureConfig
from asrkit.data.feature_archives import ARCHIVE_RECORD
from asrkit.data.features import expand_features
from asrkit.data.lang import TokenTable
from asrkit.data.spec_augment import SpecAugment
from asrkit.data.units import Units, units_from_state


def token_ids(cut: Cut, tokens: TokenTable, units: Units) -> List[int]:
    """The token ids a model is trained to output for a cut: its supervisions' units, in order."""
    return tokens.encode([t for s in cut.supervisions for t in units.token_symbols(s)], context=cut.id)


class RecognitionDataset(torch.utils.data.Dataset):
    """Turns a CutSet (one batch from a lhotse sampler) into padded tensors.

    Returns a dict: ``features`` (N, T, C) float, ``feature_lens`` (N,), ``targets`` (N, U) padded with 0,
    ``target_lens`` (N,), ``cut_ids`` (list of N str). Utterances are sorted longest first.

    ``spec_augment`` (training batches only): each utterance augmented as :mod:`asrkit.data.spec_augment`
    says, before the model stacks frames.
    """

    def __init__(self, tokens: TokenTable, units: Units, features: FeatureConfig, stats: Dict[str, torch.Tensor],
                 spec_augment: Optional[SpecAugment] = None):
        self.tokens = tokens
        self.units = units
        self.features = features
        self.mean = stats["mean"]
        self.std = stats["std"]
        self.spec_augment = spec_augment

    def augmented(self, spec_augment: Optional[SpecAugment]) -> "RecognitionDataset":
        """The same batches, augmented by ``spec_augment`` (None: not augmented)."""
        return RecognitionDataset(self.tokens, self.units, self.features, {"mean": self.mean, "std": self.std},
                                  spec_augment)

    def normalised(self, static: torch.Tensor) -> torch.Tensor:
        """static: (T, D) stored features -> (T, C) the network's input (deltas appended, normalised)."""
        return (expand_features(static, self.features) - self.mean) / self.std

    @staticmethod
    def for_model(checkpoint: Dict[str, Any]) -> "RecognitionDataset":
        """The batches a trained model (a loaded model.pt) was trained on: its tokens, units and features."""
        return RecognitionDataset(TokenTable(checkpoint["tokens"]), units_from_state(checkpoint["units"]),
                                  FeatureConfig.from_dict(checkpoint["feature_options"]), checkpoint["stats"])

    def __getitem__(self, cuts: CutSet) -> Dict:
        cuts = cuts.sort_by_duration(ascending=False)
        features: List[torch.Tensor] = []
        targets: List[torch.Tensor] = []
        for cut in cuts:
            static = torch.from_numpy(load_features(cut))
            if self.spec_augment is None:
                features.append(self.normalised(static))
            else:
                generator = self.spec_augment.generator(cut.id)
                frames = self.normalised(self.spec_augment.warp(static, generator))
                features.append(self.spec_augment.mask(frames, frames.size(1) // static.size(1), generator))
            targets.append(torch.tensor(token_ids(cut, self.tokens, self.units), dtype=torch.long))
        return {
            "features": pad_sequence(features, batch_first=True),
            "feature_lens": torch.tensor([f.shape[0] for f in features]),
            "targets": pad_sequence(targets, batch_first=True),
            "target_lens": torch.tensor([t.numel() for t in targets]),
            "cut_ids": [cut.id for cut in cuts],
        }


def load_features(cut: Cut) -> np.ndarray:
    """A cut's stored features, (T, D); a damaged archive is named, with the cut (lilcom's error names neither)."""
    try:
        return cut.load_features()
    except Exception as e:
        raise ValueError(f"{cut.features.storage_path}: cannot read the features of cut {cut.id} ({type(e).__name__}: "
                         f"{e}): the archive is damaged. The recipe's rerun finds it and recomputes it; features "
                         f"stored without an {ARCHIVE_RECORD} (by an older asrkit) are not checked: remove their "
                         f"folder and rerun") from e


def to_device(batch: Dict, device: torch.device) -> Dict:
    """A batch of :class:`RecognitionDataset` with its tensors on ``device``."""
    return {key: value.to(device) if isinstance(value, torch.Tensor) else value for key, value in batch.items()}
