"""Checkpoints: written atomically, loaded safely (``weights_only=True``), and rebuilt into models (by the
model registry, :mod:`asrkit.model.registry`)."""

from pathlib import Path
from typing import Any, Dict, List

import torch

from asrkit.io import atomic_output
from asrkit.model.interface import AcousticModel
from asrkit.model.registry import build_model


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint without executing pickled code; say which file is broken if it is."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable asrkit checkpoint ({e})") from None


def load_weights(module: torch.nn.Module, weights: Dict[str, torch.Tensor], path: Path) -> None:
    """Load weights into a module, naming the checkpoint when they do not fit (another model config)."""
    try:
        module.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the model ({e})") from None


def average_weights(paths: List[Path]) -> Dict[str, torch.Tensor]:
    """The element-wise mean of the checkpoints' model weights (checkpoint averaging for decoding)."""
    states = [load_checkpoint(p)["model"] for p in paths]
    return {name: sum(s[name].double() for s in states).div(len(states)).to(states[0][name].dtype)
            for name in states[0]}


def load_model(path: Path, average: List[Path] = ()) -> AcousticModel:
    """Rebuild the model stored in a checkpoint, in eval mode; with ``average``, use the mean of those
    checkpoints' weights instead of the file's own."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_options"], checkpoint["input_dim"], checkpoint["vocab_size"])
    load_weights(model, average_weights(list(average)) if average else checkpoint["model"], path)
    return model.eval()
