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

T' = ceil(T / stack_frames). Pad batches with zeros, as training did: with stack_frames > 1, the last step of
an utterance also reads the padding frames after it (as :class:`asrkit.model.encoder.BiLstmEncoder` does).
The file also holds ``asrkit.json`` (read it with ``torch.jit.load(path, _extra_files={"asrkit.json": ""})``):
the model type, the tokens (id order, blank first), the units (``{"type": "phones", "phone_set": 60}`` or
``{"type": "sentencepiece"}``), the feature options, the deltas window, the input dimension and the seconds
per output frame; a model of sentencepiece units also holds ``sentencepiece.model``, which turns its pieces
into words.

Peephole-LSTM encoders are exported too: their recurrence, an autograd Function in asrkit (which TorchScript
cannot hold), is written here as plain tensor operations, the same equations as
:class:`asrkit.model.peephole_lstm.PeepholeLstm`.
"""

import json
from pathlib import Path
from typing import List, Tuple, Union

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.data.features import DELTA_WINDOW
from asrkit.io import atomic_output
from asrkit.model.ctc import CtcModel
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.peephole_lstm import PeepholeLstm, PeepholeLstmLayer
from asrkit.model.transducer import Transducer
from asrkit.inference.transcribe import Transcriber

PathLike = Union[str, Path]
METADATA = "asrkit.json"
#: the extra file holding a sentencepiece model (models of sentencepiece units), to turn pieces into words
SENTENCEPIECE_FILE = "sentencepiece.model"


def _stack_frames(x: torch.Tensor, lengths: torch.Tensor, stack: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """BiLstmEncoder's frame stacking: (N, T, C), (N,) -> (N, ceil(T / stack), stack * C) and the new lengths."""
    if stack > 1:
        n, t, c = x.size(0), x.size(1), x.size(2)
        pad = (stack - t % stack) % stack
        x = nn.functional.pad(x, [0, 0, 0, pad]).reshape(n, (t + pad) // stack, c * stack)
    return x, torch.div(lengths + stack - 1, stack, rounding_mode="floor")


class _LstmEncoder(nn.Module):
    """:class:`BiLstmEncoder` with torch's LSTM, in TorchScript."""

    stack_frames: torch.jit.Final[int]

    def __init__(self, encoder: BiLstmEncoder):
        super().__init__()
        self.stack_frames = encoder.stack_frames
        self.lstm = encoder.lstm

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, lengths = _stack_frames(x, lengths, self.stack_frames)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return out, lengths


class _PeepholeLayer(nn.Module):
    """One bidirectional :class:`PeepholeLstmLayer` (the same parameters), its recurrence stepped in a loop."""

    def __init__(self, layer: PeepholeLstmLayer):
        super().__init__()
        self.weight_ih, self.weight_hh, self.bias, self.peephole = (layer.weight_ih, layer.weight_hh, layer.bias,
                                                                    layer.peephole)

    def forward(self, x: torch.Tensor, reverse_index: torch.Tensor) -> torch.Tensor:
        """x: (N, T, C); reverse_index: (N, T) frame read at each step by the backward direction -> (N, T, 2H)."""
        n, t, input_size = x.size(0), x.size(1), x.size(2)
        hidden_size = self.weight_hh.size(2)
        x = torch.stack([x, x.gather(1, reverse_index.unsqueeze(2).expand_as(x))])  # (2, N, T, C)
        gates = torch.baddbmm(self.bias.unsqueeze(1), x.reshape(2, n * t, input_size), self.weight_ih.transpose(1, 2))
        gates = gates.view(2, n, t, 4 * hidden_size).permute(2, 0, 1, 3)  # (T, 2, N, 4H)
        recurrent = self.weight_hh.transpose(1, 2)  # (2, H, 4H)
        w_ci, w_cf, w_co = (self.peephole[:, 0].unsqueeze(1), self.peephole[:, 1].unsqueeze(1),
                            self.peephole[:, 2].unsqueeze(1))  # (2, 1, H) each
        h = x.new_zeros(2, n, hidden_size)
        c = x.new_zeros(2, n, hidden_size)
        outputs: List[torch.Tensor] = []
        for step in range(t):
            i, f, g, o = torch.baddbmm(gates[step], h, recurrent).chunk(4, dim=2)
            c = torch.sigmoid(f + w_cf * c) * c + torch.sigmoid(i + w_ci * c) * torch.tanh(g)
            h = torch.sigmoid(o + w_co * c) * torch.tanh(c)
            outputs.append(h)
        hidden = torch.stack(outputs).permute(2, 0, 1, 3)  # (N, T, 2, H)
        backward = hidden[:, :, 1].gather(1, reverse_index.unsqueeze(2).expand(n, t, hidden_size))
        return torch.stack([hidden[:, :, 0], backward], dim=2).reshape(n, t, 2 * hidden_size)


class _PeepholeEncoder(nn.Module):
    """:class:`BiLstmEncoder` with the peephole LSTM (:class:`PeepholeLstm`, in eval mode), in TorchScript."""

    stack_frames: torch.jit.Final[int]

    def __init__(self, encoder: BiLstmEncoder):
        super().__init__()
        lstm: PeepholeLstm = encoder.lstm
        if lstm.output_dim != 2 * lstm.layers[0].weight_hh.size(2):
            raise ValueError("only bidirectional peephole LSTMs are exported (asrkit's encoders are)")
        self.stack_frames = encoder.stack_frames
        self.layers = nn.ModuleList(_PeepholeLayer(layer) for layer in lstm.layers)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x, lengths = _stack_frames(x, lengths, self.stack_frames)
        positions = torch.arange(x.size(1), device=x.device)
        lens = lengths.to(x.device).unsqueeze(1)
        valid = positions.unsqueeze(0) < lens  # (N, T)
        # the backward direction reads each sequence reversed within its own length, padding after it
        reverse_index = torch.where(valid, lens - 1 - positions, positions)
        out = x
        for layer in self.layers:
            out = layer(out, reverse_index)
        return out.masked_fill(~valid.unsqueeze(2), 0.0), lengths


def _encoder(encoder: BiLstmEncoder) -> nn.Module:
    return _PeepholeEncoder(encoder) if encoder.peephole else _LstmEncoder(encoder)


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
        self.encoder = _encoder(model.encoder)
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
        self.encoder = _encoder(model.encoder)
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
    transcriber = Transcriber(model)
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
