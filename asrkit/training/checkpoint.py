"""Checkpoints: written atomically, loaded safely (``weights_only=True``), and rebuilt into models."""

from pathlib import Path
from typing import Any, Dict, List, Union

import torch

from asrkit.io import atomic_output
from asrkit.model.ctc import CtcModel
from asrkit.model.decoder import Decoder
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.joiner import Joiner
from asrkit.model.transducer import Transducer

#: defaults of the model options (the config's ``model`` section, plus ``type`` and for transducers the
#: prediction network and joiner sizes from its ``transducer`` section; see asrkit/workflow/schemas/config.schema.yaml)
DEFAULT_MODEL_OPTIONS = {"type": "ctc", "stack_frames": 1, "dropout": 0.0, "peephole": False,
                         "decoder_embedding_dim": 250, "decoder_hidden_size": 250, "decoder_num_layers": 1,
                         "joiner_dim": 250}
MODEL_TYPES = ("ctc", "transducer")
Model = Union[CtcModel, Transducer]


def model_options(options: Dict[str, Any]) -> Dict[str, Any]:
    return {**DEFAULT_MODEL_OPTIONS, **options}


def build_decoder(options: Dict[str, Any], vocab_size: int) -> Decoder:
    """The transducer's prediction network (also trained alone as a phone LM for PRETRANS)."""
    options = model_options(options)
    return Decoder(vocab_size, options["decoder_embedding_dim"], options["decoder_hidden_size"],
                   options["decoder_num_layers"])


def build_model(options: Dict[str, Any], input_dim: int, vocab_size: int) -> Model:
    """A CTC model or a transducer on the deep bidirectional LSTM encoder, from the model options."""
    options = model_options(options)
    encoder = BiLstmEncoder(input_dim, options["hidden_size"], options["num_layers"], options["stack_frames"],
                            options["dropout"], peephole=options["peephole"])
    if options["type"] == "ctc":
        return CtcModel(encoder, vocab_size)
    if options["type"] == "transducer":
        decoder = build_decoder(options, vocab_size)
        joiner = Joiner(encoder.output_dim, decoder.output_dim, options["joiner_dim"], vocab_size)
        return Transducer(encoder, decoder, joiner, vocab_size)
    raise ValueError(f"unknown model type {options['type']!r}: expected one of {MODEL_TYPES}")


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


def load_model(path: Path, average: List[Path] = ()) -> Model:
    """Rebuild the model stored in a checkpoint, in eval mode; with ``average``, use the mean of those
    checkpoints' weights instead of the file's own."""
    checkpoint = load_checkpoint(path)
    model = build_model(checkpoint["model_options"], checkpoint["input_dim"], checkpoint["vocab_size"])
    load_weights(model, average_weights(list(average)) if average else checkpoint["model"], path)
    return model.eval()
