"""Transcribe audio with a trained model: phones (or words), each with the time at which the model emitted it.

The audio goes through exactly what training saw: kaldifeat features with the checkpoint's feature options
(computed on 16 kHz audio, as the recipe's), deltas, and the training set's mean and standard deviation.
Any file soundfile reads (wav, flac, NIST sphere, ...) at any sampling rate is accepted: several channels are
averaged into one, and other rates are resampled to 16 kHz with lhotse's band-limited sinc resampler. Audio
below 16 kHz is upsampled with a warning: it has nothing above half its rate, which the model was trained on.

A token's time is the start of the encoder frame at which it was emitted (frames are 10 ms times the
encoder's ``stack_frames``): on the search's own path for greedy search, and on the most probable
alignment of the found phone sequence (Viterbi) for the beam searches, which sum over alignments and so
have no single path of their own (for modified beam search, among the alignments it searches: one label per
frame at most). A word of sentencepiece pieces takes the time of its first piece.
"""

import dataclasses
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple, Union

import numpy as np
import soundfile
import torch
from lhotse.augmentation.resample import Resample

from asrkit.config import FeatureConfig
from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.search import DEFAULT_BEAM, DEFAULT_METHOD
from asrkit.search.searches import best_path_frames, greedy_path, search, search_methods
from asrkit.data.corpus import non_finite_samples, special_file_kind
from asrkit.device import resolve_device
from asrkit.data.features import expand_features, input_dim, make_extractor
from asrkit.data.lang import TokenTable
from asrkit.model.registry import model_options
from asrkit.data.units import units_from_state

PathLike = Union[str, Path]
#: a waveform in memory: samples (S,) or (channels, S), and their sampling rate in Hz
Waveform = Tuple[Union[np.ndarray, torch.Tensor], int]
AudioInput = Union[PathLike, Waveform]

SAMPLING_RATE = 16000  # the rate the features were computed at in training
FRAME_SHIFT = 0.01  # seconds between feature frames (kaldifeat's default, used by the recipe)
#: what asrkit.training.train stores in a model.pt beside the weights, all needed here
CHECKPOINT_KEYS = ("model", "model_options", "input_dim", "vocab_size", "tokens", "units", "feature_options",
                   "stats")


@dataclass(frozen=True)
class Transcript:
    """The tokens found in one input, with the time (seconds from its start) at which each was emitted, and
    what they say: the phones themselves, or the words the sentencepiece pieces make, each with its time."""

    source: str  # the file name, or ``<waveform i>`` for the i-th in-memory waveform of a call
    tokens: List[str]  # token symbols: phones, or sentencepiece pieces
    times: List[float]
    duration: float  # seconds of audio
    items: List[Tuple[str, float]]  # (phone or word, start time)

    def format(self) -> str:
        """``item@start`` separated by spaces, e.g. ``h#@0.00 sh@0.12 iy@0.24`` or ``HELLO@0.12 WORLD@0.60``."""
        return " ".join(f"{item}@{time:.2f}" for item, time in self.items)


def resolve_model_path(model: PathLike) -> Path:
    """A model.pt, or the ``model.pt`` inside an experiment directory."""
    path = Path(model)
    if path.is_dir():
        if not (path / "model.pt").is_file():
            raise ValueError(f"{path}: no model.pt in this directory (training writes it once all epochs are "
                             f"done; pass a checkpoint such as {path / 'best.pt'} to use an unfinished run)")
        path = path / "model.pt"
    elif not path.is_file():
        raise ValueError(f"{path}: no such model file or experiment directory")
    return path


def read_audio(path: PathLike) -> torch.Tensor:
    """A sound file as the model hears it: (S,) float32 samples at 16 kHz, channels averaged."""
    path = Path(path)
    kind = special_file_kind(path)
    if kind:  # a FIFO would block soundfile forever
        raise ValueError(f"{path}: {kind}, not an audio file")
    if not path.is_file():
        raise ValueError(f"{path}: no such audio file")
    try:
        samples, rate = soundfile.read(path, dtype="float32", always_2d=True)  # (S, channels)
    except soundfile.SoundFileError as e:
        raise ValueError(f"{path}: unreadable audio ({e})") from None
    return to_model_rate(torch.from_numpy(samples.T), rate, str(path))


def to_model_rate(samples: Union[np.ndarray, torch.Tensor], rate: int, source: str) -> torch.Tensor:
    """Samples (S,) or (channels, S) at ``rate`` Hz -> (S',) float32 at 16 kHz, the channels averaged."""
    samples = torch.as_tensor(samples, dtype=torch.float32)
    if samples.dim() == 1:
        samples = samples.unsqueeze(0)
    if samples.dim() != 2:
        raise ValueError(f"{source}: audio must be (samples,) or (channels, samples), got {tuple(samples.shape)}")
    if samples.size(1) == 0:
        raise ValueError(f"{source}: no audio samples")
    non_finite = non_finite_samples(samples.numpy())
    if non_finite:  # the network would output NaN, and every search an empty transcript
        raise ValueError(f"{source}: {non_finite}")
    if rate < SAMPLING_RATE:  # e.g. telephone audio: upsampling cannot restore the band the model relies on
        logging.warning(f"{source}: {rate} Hz audio, upsampled to {SAMPLING_RATE} Hz: the model was trained on "
                        f"{SAMPLING_RATE // 1000} kHz audio and hears nothing above {rate / 2000:g} kHz here; expect "
                        f"more errors than on {SAMPLING_RATE // 1000} kHz audio")
    mono = samples.mean(dim=0, keepdim=True)  # averaging, unlike taking one channel, keeps speech on either side
    return _resampler(int(rate))(mono)[0]


@lru_cache(maxsize=8)
def _resampler(rate: int) -> Resample:
    # lhotse's copy of torchaudio's resampler, used directly: ``Recording.resample`` would call torchaudio or,
    # without it, scipy, and asrkit installs neither.
    return Resample(rate, SAMPLING_RATE)


class Transcriber:
    """A trained model (model.pt, or the experiment directory holding it) ready to transcribe audio.

    method and beam: the search, as in ``asrkit.decoding.decode`` (CTC: greedy, prefix_beam; transducer: greedy, beam,
    modified_beam); beam is unused by greedy search. device: auto, cpu or cuda (see asrkit.device).
    """

    def __init__(self, model: PathLike, method: str = DEFAULT_METHOD, beam: int = DEFAULT_BEAM, device: str = "auto"):
        self.model_path = resolve_model_path(model)
        checkpoint = load_checkpoint(self.model_path)
        missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
        if missing:
            raise ValueError(f"{self.model_path}: not an acoustic model of the training stage (it lacks "
                             f"{', '.join(missing)})")
        self.model_type = model_options(checkpoint["model_options"])["type"]
        methods = search_methods(self.model_type)
        if method not in methods:
            raise ValueError(f"{self.model_path}: a {self.model_type} model decodes with {', '.join(methods)}, "
                             f"not {method!r}")
        self.method, self.beam = method, beam
        self.input_dim = checkpoint["input_dim"]  # the network's input: static features, with deltas if trained so
        self.device = resolve_device(device)
        self.model = load_model(self.model_path).to(self.device)
        self.tokens = TokenTable(checkpoint["tokens"])
        self.units = units_from_state(checkpoint["units"])
        self.features = FeatureConfig.from_dict(checkpoint["feature_options"])
        self.extractor = make_extractor(self.features)
        self.mean, self.std = checkpoint["stats"]["mean"].to(self.device), checkpoint["stats"]["std"].to(self.device)
        #: seconds per encoder frame
        self.frame_shift = FRAME_SHIFT * self.model.encoder.stack_frames

    @property
    def feature_options(self) -> Dict[str, Any]:
        """The feature settings as plain data (what an exported model's metadata holds)."""
        return dataclasses.asdict(self.features)

    @property
    def static_dim(self) -> int:
        """Dimension of the stored (static) features: the network input without deltas."""
        return input_dim(dataclasses.replace(self.features, deltas=False))

    def load_audio(self, audio: AudioInput, index: int = 0) -> Tuple[torch.Tensor, str]:
        """A file name or a (samples, rate) pair -> (S,) samples at 16 kHz and a name for messages."""
        if isinstance(audio, (str, Path)):
            return read_audio(audio), str(audio)
        samples, rate = audio
        source = f"<waveform {index}>"
        return to_model_rate(samples, rate, source), source

    def static_features(self, samples: torch.Tensor, source: str) -> torch.Tensor:
        """(S,) samples at 16 kHz -> (T, D) static features, as the feature stage computes them."""
        window = round(self.extractor.config.frame_opts.frame_length * SAMPLING_RATE)
        if samples.numel() < window:  # kaldifeat fails on less than one window instead of saying so
            raise ValueError(f"{source}: {samples.numel() / SAMPLING_RATE * 1000:.1f} ms of audio, shorter than "
                             f"one {window / SAMPLING_RATE * 1000:.0f} ms feature window")
        return self.extractor.extract(samples, SAMPLING_RATE)

    def network_input(self, static: torch.Tensor) -> torch.Tensor:
        """(T, D) static features -> (T, C) the network's input, on the model's device: deltas (if trained with
        them), normalised.

        Differentiable, so that the input sensitivity can be taken with respect to the static features.
        """
        return (expand_features(static.to(self.device), self.features) - self.mean) / self.std

    def transcribe(self, inputs: Sequence[AudioInput]) -> List[Transcript]:
        """Transcripts of files and in-memory (samples, rate) waveforms, in the order given."""
        return [self.transcribe_one(audio, index) for index, audio in enumerate(inputs)]

    def transcribe_one(self, audio: AudioInput, index: int = 0) -> Transcript:
        """The transcript of one file or (samples, rate) waveform; ``index`` names a waveform in messages."""
        samples, source = self.load_audio(audio, index)
        features = self.network_input(self.static_features(samples, source))  # (T, C)
        if self.method == "greedy":
            path = greedy_path(self.model, features)
            tokens, frames = path.tokens, path.frames
        else:
            with torch.no_grad():
                tokens = search(self.model, self.method, self.beam, features.unsqueeze(0),
                                torch.tensor([features.size(0)]))[0]
            frames = best_path_frames(self.model, features, tokens, self.method)
        # frame starts are whole milliseconds: rounding only removes the float products' noise
        symbols, times = self.tokens.decode(tokens), [round(f * self.frame_shift, 3) for f in frames]
        return Transcript(source, symbols, times, samples.numel() / SAMPLING_RATE, self.units.timed(symbols, times))
