"""Transcribe audio with a trained model: phones (or words), each with the time at which the model emitted it.

The audio goes through exactly what training saw: kaldifeat features with the checkpoint's feature options
(computed on 16 kHz audio, as the recipe's), deltas, and the training set's mean and standard deviation.
Any file soundfile reads (wav, flac, NIST sphere, ...) at any sampling rate is accepted: several channels are
averaged into one, and other rates are resampled to 16 kHz with lhotse's band-limited sinc resampler.

A token's time is the start of the encoder frame at which it was emitted (frames are 10 ms times the
encoder's ``stack_frames``): on the search's own path for greedy search, and on the most probable
alignment of the found phone sequence (Viterbi) for the beam searches, which sum over alignments and so
have no single path of their own (for modified beam search, among the alignments it searches: one label per
frame at most). A word of sentencepiece pieces takes the time of its first piece.
"""

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import soundfile
import torch
from lhotse.augmentation.resample import Resample

from asrkit.training.checkpoint import Model, load_checkpoint, load_model, model_options
from asrkit.decoding.decode import METHODS, search
from asrkit.data.corpus import non_finite_samples, special_file_kind
from asrkit.device import resolve_device
from asrkit.data.features import expand_features, feature_options, input_dim, make_extractor
from asrkit.data.lang import TokenTable
from asrkit.model.ctc import CtcModel
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


@dataclass
class GreedyPath:
    """The greedy search's path through one utterance.

    tokens: emitted token ids; frames: the encoder frame at which each was emitted.
    log_probs: (T', V) on the CPU, the output distribution at each encoder frame along the path (for a transducer, the
        joiner's, given the prediction network's state at that frame).
    decoder_proj: transducers only, (T', J) the projected prediction-network output used at each frame (on the
        model's device).
    """

    tokens: List[int]
    frames: List[int]
    log_probs: torch.Tensor
    decoder_proj: Optional[torch.Tensor]


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
    mono = samples.mean(dim=0, keepdim=True)  # averaging, unlike taking one channel, keeps speech on either side
    return _resampler(int(rate))(mono)[0]


@lru_cache(maxsize=8)
def _resampler(rate: int) -> Resample:
    # lhotse's copy of torchaudio's resampler, used directly: ``Recording.resample`` would call torchaudio or,
    # without it, scipy, and asrkit installs neither.
    return Resample(rate, SAMPLING_RATE)


@torch.no_grad()
def greedy_path(model: Model, features: torch.Tensor) -> GreedyPath:
    """Greedy search on one utterance, keeping its path. features: (T, C) normalised network input, T >= 1.

    The same decisions as :func:`asrkit.decoding.decode.search` with ``greedy``: for CTC the per-frame argmax, a token
    emitted where it differs from blank and from the frame before; for a transducer at most one label per
    frame, each label advancing the prediction network (as ``greedy_search_batch``).
    """
    x, lens, device = features.unsqueeze(0), torch.tensor([features.size(0)]), features.device
    if isinstance(model, CtcModel):
        log_probs = model(x, lens)[0][0].cpu()  # (T', V)
        best = log_probs.argmax(dim=-1)
        previous = torch.nn.functional.pad(best[:-1], (1, 0), value=-1)
        frames = torch.nonzero((best != 0) & (best != previous)).squeeze(1)  # CTC's blank is token 0
        return GreedyPath(best[frames].tolist(), frames.tolist(), log_probs, None)
    blank = model.decoder.blank_id
    encoder_proj = model.joiner.project_encoder(model.encoder(x, lens)[0][0])  # (T', J)
    decoder_out, state = model.decoder(torch.tensor([[blank]], device=device))
    decoder_proj = model.joiner.project_decoder(decoder_out[:, 0])  # (1, J)
    tokens, frames, log_probs, used = [], [], [], []
    for t in range(encoder_proj.size(0)):
        frame_log_probs = model.joiner(encoder_proj[t : t + 1], decoder_proj).log_softmax(dim=-1)  # (1, V)
        log_probs.append(frame_log_probs)
        used.append(decoder_proj)
        best = int(frame_log_probs.argmax())
        if best != blank:
            tokens.append(best)
            frames.append(t)
            out, state = model.decoder.step(torch.tensor([best], device=device), state)
            decoder_proj = model.joiner.project_decoder(out)
    return GreedyPath(tokens, frames, torch.cat(log_probs).cpu(), torch.cat(used))


@torch.no_grad()
def best_path_frames(model: Model, features: torch.Tensor, tokens: List[int], one_label_per_frame: bool = False
                     ) -> List[int]:
    """The encoder frame of each token on the most probable alignment of ``tokens`` with the utterance.

    features: (T, C) normalised network input; tokens: label ids (no blank) that can be aligned with it.
    one_label_per_frame: transducers only, see :func:`transducer_best_path_frames`.
    """
    x, lens, device = features.unsqueeze(0), torch.tensor([features.size(0)]), features.device
    if isinstance(model, CtcModel):
        return ctc_best_path_frames(model(x, lens)[0][0].double().cpu().numpy(), tokens)
    blank = model.decoder.blank_id
    decoder_out, _ = model.decoder(torch.tensor([[blank] + tokens], device=device))  # (1, U + 1, H): position u read u labels
    encoder_proj = model.joiner.project_encoder(model.encoder(x, lens)[0][0])  # (T', J)
    log_probs = model.joiner(encoder_proj.unsqueeze(1), model.joiner.project_decoder(decoder_out[0]).unsqueeze(0)
                             ).log_softmax(dim=-1).double().cpu()  # (T', U + 1, V)
    labels = torch.tensor(tokens, dtype=torch.long)
    label_log_probs = log_probs[:, :-1].gather(2, labels.view(1, -1, 1).expand(log_probs.size(0), -1, 1))[..., 0]
    return transducer_best_path_frames(log_probs[..., blank].numpy(), label_log_probs.numpy(), one_label_per_frame)


def ctc_best_path_frames(log_probs: np.ndarray, tokens: List[int], blank: int = 0) -> List[int]:
    """CTC Viterbi alignment: the first frame of each token's segment on the most probable path.

    log_probs: (T, V) one utterance's network output. The path runs through blank, y1, blank, y2, ...,
    blank; it may skip a blank between two different labels, never a label.
    """
    if not tokens:
        return []
    states = np.full(2 * len(tokens) + 1, blank)
    states[1::2] = tokens
    emissions = log_probs[:, states]  # (T, S)
    can_skip = np.zeros(len(states), dtype=bool)  # from state s - 2 to s: a label that differs from the last
    can_skip[3::2] = states[3::2] != states[1:-2:2]
    num_frames = log_probs.shape[0]
    alpha = np.full(len(states), -np.inf)
    alpha[:2] = emissions[0, :2]
    moves = np.zeros((num_frames, len(states)), dtype=np.int64)  # states moved forward to arrive: 0, 1 or 2
    for t in range(1, num_frames):
        step = np.concatenate([[-np.inf], alpha[:-1]])
        skip = np.where(can_skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        candidates = np.stack([alpha, step, skip])
        moves[t] = candidates.argmax(axis=0)
        alpha = candidates.max(axis=0) + emissions[t]
    state = len(states) - 1 if alpha[-1] >= alpha[-2] else len(states) - 2
    if not np.isfinite(alpha[state]):
        raise ValueError(f"{len(tokens)} labels cannot be aligned with {num_frames} frames")
    path = np.empty(num_frames, dtype=np.int64)
    for t in range(num_frames - 1, -1, -1):
        path[t] = state
        state -= moves[t, state]
    return [int(np.argmax(path == 2 * k + 1)) for k in range(len(tokens))]


def transducer_best_path_frames(blank_log_probs: np.ndarray, label_log_probs: np.ndarray,
                                one_label_per_frame: bool = False) -> List[int]:
    """Transducer Viterbi alignment: the frame at which each label is emitted on the most probable path.

    blank_log_probs: (T, U + 1) log P(blank) at frame t after u labels; label_log_probs: (T, U) log P(label
    u + 1) there. Paths start at frame 0 with no label. In the transducer's own lattice (Graves 2012, and his
    beam search) a label keeps the frame and blank moves to the next, the last frame ending with blank.
    ``one_label_per_frame`` is the lattice of greedy and modified beam search instead: every frame emits
    exactly one token, blank or a label, and moves to the next.
    """
    num_frames, num_positions = blank_log_probs.shape
    # alpha[t, u]: the best log probability of arriving at frame t (t = T: the end) with u labels emitted
    alpha = np.full((num_frames + 1, num_positions), -np.inf)
    by_label = np.zeros((num_frames + 1, num_positions), dtype=bool)  # the best way in was a label (else blank)
    alpha[0, 0] = 0.0
    for t in range(num_frames + 1):
        for u in range(num_positions):
            if t == u == 0:
                continue
            from_blank = alpha[t - 1, u] + blank_log_probs[t - 1, u] if t > 0 else -np.inf
            if one_label_per_frame:
                from_label = alpha[t - 1, u - 1] + label_log_probs[t - 1, u - 1] if t > 0 and u > 0 else -np.inf
            else:
                from_label = alpha[t, u - 1] + label_log_probs[t, u - 1] if 0 < u and t < num_frames else -np.inf
            by_label[t, u] = from_label > from_blank
            alpha[t, u] = max(from_blank, from_label)
    if not np.isfinite(alpha[num_frames, num_positions - 1]):
        raise ValueError(f"{num_positions - 1} labels cannot be aligned with {num_frames} frames")
    frames = [0] * (num_positions - 1)
    t, u = num_frames, num_positions - 1
    while t > 0 or u > 0:
        if by_label[t, u]:
            if one_label_per_frame:
                t -= 1  # the label took up frame t - 1
            frames[u - 1] = t
            u -= 1
        else:
            t -= 1
    return frames


class Transcriber:
    """A trained model (model.pt, or the experiment directory holding it) ready to transcribe audio.

    method and beam: the search, as in ``asrkit.decoding.decode`` (CTC: greedy, prefix_beam; transducer: greedy, beam,
    modified_beam); beam is unused by greedy search. device: auto, cpu or cuda (see asrkit.device).
    """

    def __init__(self, model: PathLike, method: str = "greedy", beam: int = 10, device: str = "auto"):
        self.model_path = resolve_model_path(model)
        checkpoint = load_checkpoint(self.model_path)
        missing = [key for key in CHECKPOINT_KEYS if key not in checkpoint]
        if missing:
            raise ValueError(f"{self.model_path}: not an acoustic model of the training stage (it lacks "
                             f"{', '.join(missing)})")
        self.model_type = model_options(checkpoint["model_options"])["type"]
        if method not in METHODS[self.model_type]:
            raise ValueError(f"{self.model_path}: a {self.model_type} model decodes with "
                             f"{', '.join(METHODS[self.model_type])}, not {method!r}")
        self.method, self.beam = method, beam
        self.input_dim = checkpoint["input_dim"]  # the network's input: static features, with deltas if trained so
        self.device = resolve_device(device)
        self.model = load_model(self.model_path).to(self.device)
        self.tokens = TokenTable(checkpoint["tokens"])
        self.units = units_from_state(checkpoint["units"])
        self.feature_options = feature_options(checkpoint["feature_options"])
        self.extractor = make_extractor(self.feature_options)
        self.mean, self.std = checkpoint["stats"]["mean"].to(self.device), checkpoint["stats"]["std"].to(self.device)
        #: seconds per encoder frame
        self.frame_shift = FRAME_SHIFT * self.model.encoder.stack_frames

    @property
    def static_dim(self) -> int:
        """Dimension of the stored (static) features: the network input without deltas."""
        return input_dim({**self.feature_options, "deltas": False})

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
        return (expand_features(static.to(self.device), self.feature_options) - self.mean) / self.std

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
            frames = best_path_frames(self.model, features, tokens,
                                      one_label_per_frame=self.method == "modified_beam")
        # frame starts are whole milliseconds: rounding only removes the float products' noise
        symbols, times = self.tokens.decode(tokens), [round(f * self.frame_shift, 3) for f in frames]
        return Transcript(source, symbols, times, samples.numel() / SAMPLING_RATE, self.units.timed(symbols, times))
