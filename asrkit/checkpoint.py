"""Checkpoints: written atomically, loaded safely (``weights_only=True``), and rebuilt into models."""

from pathlib import Path
from typing import Any, Dict

import torch

from asrkit.io import atomic_output
from asrkit.model.ctc import CtcModel
from asrkit.model.encoder import BiLstmEncoder

#: the defaults of the config's ``model`` section (see asrkit/schemas/config.schema.yaml)
DEFAULT_MODEL_OPTIONS = {"stack_frames": 1, "dropout": 0.0}


def build_model(model_options: Dict[str, Any], input_dim: int, vocab_size: int) -> CtcModel:
    """A CTC model from the config's ``model`` section."""
    options = {**DEFAULT_MODEL_OPTIONS, **model_options}
    encoder = BiLstmEncoder(input_dim, options["hidden_size"], options["num_layers"], options["stack_frames"],
                            options["dropout"])
    return CtcModel(encoder, vocab_size)


def save_checkpoint(path: Path, state: Dict[str, Any]) -> None:
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path) -> Dict[str, Any]:
    """Load a checkpoint without executing pickled code; say which file is broken if it is."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable asrkit checkpoint ({e})") from None


def load_model(path: Path) -> CtcModel:
    """Rebuild the model stored in a checkpoint, in eval mode."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_options"], checkpoint["input_dim"], checkpoint["vocab_size"])
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as e:
        raise ValueError(f"{path}: weights do not fit the model it describes ({e})") from None
    return model.eval()
