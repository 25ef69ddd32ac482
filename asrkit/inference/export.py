"""Export a trained model to TorchScript, to run without asrkit (``torch.jit.load``, or libtorch from C++).

The network's input in all methods is what training fed it: static features (kaldifeat, 10 ms frames), with
Kaldi's deltas and delta-deltas (``add-deltas``, window 2) appended if the model was trained with them, then
normalised; ``normalise`` applies the training set's mean and standard deviation, stored in the file.

- CTC, the whole model: ``forward(features (N, T, C), lengths (N,)) -> log-probs (N, T', V), lengths (N,)``.
- Transducer, its three networks, enough for any search: ``forward`` is the encoder
  (``-> encoder_out (N, T', E), lengths (N,)``); ``initial_state(N) -> (h, c)`` zero prediction-network state,
  each (L, N, H); ``decoder_step(tokens (N,), h, c) -> decoder_out (N, H), h, c`` (start with blank, whose
  embedding is zero); ``joint(encoder_out (N, E), decoder_out (N, H)) -> log-probs (N, V)``. The searches
  themselves (greedy, beam) are Python loops over hypotheses and are not in the file.
- Both: ``normalise(features (..., C)) -> (features - mean) / std``.

T' = ceil(T / stack_frames). Padding is ignored, whatever it holds: each utterance of a padded batch gets the
output it gets alone. The encoder in the file is asrkit's own (:class:`asrkit.model.encoder.BiLstmEncoder`,
compiled by TorchScript), its peephole LSTM included.
The file also holds ``asrkit.json`` (read it with ``torch.jit.load(path, _extra_files={"asrkit.json": ""})``):
the model type, the tokens (id order, blank first), the units (``{"type": "phones", "phone_set": 60}`` or
``{"type": "sentencepiece"}``), the feature options, the deltas window, the input dimension and the seconds
per output frame; a model of sentencepiece units also holds ``sentencepiece.model``, which turns its pieces
into words.
"""

import json
from pathlib import Path
from typing import Tuple, Union

import torch
from torch import nn

from asrkit.data.features import DELTA_WINDOW
from asrkit.io import atomic_output
from asrkit.model.ctc import CtcModel
from asrkit.model.transducer import Transducer
from asrkit.inference.transcribe import Transcriber

PathLike = Union[str, Path]
METADATA = "asrkit.json"
#: the extra file holding a sentencepiece model (models of sentencepiece units), to turn pieces into words
SENTENCEPIECE_FILE = "sentencepiece.model"


class _Normalising(nn.Module):
    """The training set's feature statistics, and the method that applies them."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    @torch.jit.export
    def normalise(self, features: torch.Tensor) -> torch.Tensor:
        """(..., C) features with deltas -> the network's input, normalised with the training statistics."""
        return (features - self.mean) / self.std


class ExportedCtc(_Normalising):
    """A CTC model for TorchScript: normalised features -> per-frame log-probabilities."""

    def __init__(self, model: CtcModel, mean: torch.Tensor, std: torch.Tensor):
        super().__init__(mean, std)
        self.encoder = model.encoder
        self.output = model.output

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """features: (N, T, C) normalised, lengths: (N,) -> log-probs (N, T', V) and lengths (N,)."""
        encoded, lengths = self.encoder(features, lengths)
        return self.output(encoded).log_softmax(dim=-1), lengths


class ExportedTransducer(_Normalising):
    """A transducer's encoder, prediction network (one step at a time) and joiner for TorchScript."""

    num_layers: torch.jit.Final[int]
    hidden_size: torch.jit.Final[int]

    def __init__(self, model: Transducer, mean: torch.Tensor, std: torch.Tensor):
        super().__init__(mean, std)
        self.encoder = model.encoder
        self.embedding = model.decoder.embedding
        self.decoder_lstm = model.decoder.lstm
        self.joiner = model.joiner
        self.num_layers = model.decoder.lstm.num_layers
        self.hidden_size = model.decoder.lstm.hidden_size

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """features: (N, T, C) normalised, lengths: (N,) -> encoder output (N, T', E) and lengths (N,)."""
        return self.encoder(features, lengths)

    @torch.jit.export
    def initial_state(self, batch_size: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The prediction network's state before anything: (h, c) zeros, each (L, N, H)."""
        h = torch.zeros(self.num_layers, batch_size, self.hidden_size, device=self.mean.device)
        return h, torch.zeros_like(h)

    @torch.jit.export
    def decoder_step(self, tokens: torch.Tensor, h: torch.Tensor, c: torch.Tensor
                     ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """tokens (N,) read after state (h, c) -> output (N, H) and the new (h, c)."""
        out, (h, c) = self.decoder_lstm(self.embedding(tokens).unsqueeze(1), (h, c))
        return out[:, 0], h, c

    @torch.jit.export
    def joint(self, encoder_out: torch.Tensor, decoder_out: torch.Tensor) -> torch.Tensor:
        """encoder_out (N, E) and decoder_out (N, H) -> log-probabilities (N, V) of the next token."""
        return self.joiner(self.joiner.project_encoder(encoder_out),
                           self.joiner.project_decoder(decoder_out)).log_softmax(dim=-1)


def export_model(model: PathLike, output: PathLike) -> torch.jit.ScriptModule:
    """Write the TorchScript module of a model.pt (or of the experiment directory holding it) to ``output``.

    Returns the scripted module. Written atomically.
    """
    # On the CPU, whatever the machine has: TorchScript keeps the device of every tensor in the file, and one
    # exported on a GPU would load nowhere else without map_location.
    transcriber = Transcriber(model, device="cpu")
    network = transcriber.model
    wrapper = network.exported(transcriber.mean, transcriber.std)
    scripted = torch.jit.script(wrapper.eval())
    units = transcriber.units.state()
    extra_files = {SENTENCEPIECE_FILE: units.pop("model")} if "model" in units else {}
    metadata = {"model_type": transcriber.model_type, "tokens": transcriber.tokens.symbols, "units": units,
                "feature_options": transcriber.feature_options, "deltas_window": DELTA_WINDOW,
                "input_dim": transcriber.input_dim, "frame_shift_seconds": transcriber.frame_shift,
                "source": str(transcriber.model_path)}
    with atomic_output(output) as tmp:
        torch.jit.save(scripted, str(tmp), _extra_files={METADATA: json.dumps(metadata, indent=1), **extra_files})
    return scripted
