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
from typing import Union

import torch

from asrkit.data.features import DELTA_WINDOW
from asrkit.io import atomic_output
from asrkit.inference.transcribe import Transcriber

PathLike = Union[str, Path]
METADATA = "asrkit.json"
#: the extra file holding a sentencepiece model (models of sentencepiece units), to turn pieces into words
SENTENCEPIECE_FILE = "sentencepiece.model"


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
