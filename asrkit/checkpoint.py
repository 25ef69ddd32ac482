"""Checkpoints: written atomically, loaded safely (``weights_only=True``), named by the training position, and
rebuilt into models (by the model registry, :mod:`asrkit.model.registry`).

Training writes ``checkpoints/epoch-E.pt`` at the end of epoch E and ``checkpoints/epoch-E-batch-B.pt`` after
B batches (optimiser steps) of it; :func:`checkpoint_name` and :func:`checkpoint_position` are the one place
that format is written and read.
"""

import io
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import torch

from asrkit.io import atomic_output
from asrkit.model.interface import AcousticModel
from asrkit.model.registry import build_model

CHECKPOINT_NAME = re.compile(r"epoch-(\d+)(?:-batch-(\d+))?\.pt")


def checkpoint_name(epoch: int, batches_done: Optional[int] = None) -> str:
    """``epoch-E.pt`` at the end of epoch E, ``epoch-E-batch-B.pt`` after its first B batches."""
    return f"epoch-{epoch}.pt" if batches_done is None else f"epoch-{epoch}-batch-{batches_done}.pt"


def checkpoint_position(path: Path) -> Tuple[int, Optional[int]]:
    """(epoch, batches done, or None at the end of the epoch) of a checkpoint named by :func:`checkpoint_name`."""
    match = CHECKPOINT_NAME.fullmatch(Path(path).name)
    if match is None:
        raise ValueError(f"{path}: not a training checkpoint name (epoch-E.pt or epoch-E-batch-B.pt)")
    return int(match.group(1)), None if match.group(2) is None else int(match.group(2))


def training_checkpoints(checkpoint_dir: Path) -> List[Path]:
    """The checkpoints of a training, oldest first (an epoch's mid-epoch ones before its end)."""
    def order(path: Path) -> Tuple[int, float]:
        epoch, batches_done = checkpoint_position(path)
        return epoch, float("inf") if batches_done is None else batches_done
    return sorted((p for p in Path(checkpoint_dir).glob("epoch-*.pt") if CHECKPOINT_NAME.fullmatch(p.name)),
                  key=order)


def is_end_of_epoch(path: Path) -> bool:
    return checkpoint_position(path)[1] is None


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically. Serialised in memory first: torch.save's own file writer turns a
    full disk into ``RuntimeError: basic_ios::clear``, a plain write into :class:`asrkit.io.DiskFullError`."""
    serialised = io.BytesIO()
    torch.save(state, serialised)
    with atomic_output(path) as tmp:
        tmp.write_bytes(serialised.getbuffer())


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
