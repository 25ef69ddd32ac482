"""Synthesise sentences with Debian's TTS voices and return 16 kHz audio with TIMIT-style alignments.

Both engines report where each phone they synthesised ends, which gives exact phone alignments for free:
flite (``libflite1``, called in-process through ctypes) and festival (one process per batch, the Segment
relation printed by a Scheme script). Their ARPAbet phones are turned into TIMIT's 61 labels: stops and
affricates get a closure, pauses become ``h#``/``pau`` and a flap rule produces ``dx``.

Speaker variety comes from a :class:`SpeakingStyle`: speaking rate, intonation target and a sox pitch shift
that keeps the duration (its small time shift is measured and undone, so the alignments stay valid).
This module knows nothing about corpus layouts; it only turns text into audio plus segments.
"""

import ctypes
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import soundfile as sf

from asrkit.data.phones import TIMIT_LABELS
from asrkit.demo.sentences import sentence_words

#: Sample rate of every synthesis returned by this module.
SAMPLE_RATE = 16000
#: Level of the Gaussian noise floor added to every utterance: real recordings are never digitally silent,
#: and all-zero frames give degenerate (minus infinity) log energies.
NOISE_FLOOR_DBFS = -70.0

FLITE = "flite"
FESTIVAL_DIPHONE = "festival_diphone"
FESTIVAL_HTS = "festival_hts"


@dataclass(frozen=True)
class Voice:
    """A TTS voice, the engine that runs it and the Debian package that provides it."""

    name: str
    engine: str
    sex: str  #: "M" or "F"
    package: str
    follows_f0_target: bool
    #: Seconds by which the voice's audio comes later than the phone boundaries it reports; added to them.
    #: Measured on speech onsets after the leading pause and on vowel-fricative transitions: festival's
    #: voices run 7-15 ms behind their segment times, flite's 0-5 ms.
    audio_delay: float = 0.0


VOICES: Dict[str, Voice] = {
    v.name: v
    for v in (
        Voice("kal16", FLITE, "M", "libflite1", follows_f0_target=True),
        Voice("awb", FLITE, "M", "libflite1", follows_f0_target=True),
        Voice("rms", FLITE, "M", "libflite1", follows_f0_target=False),
        Voice("slt", FLITE, "F", "libflite1", follows_f0_target=True),
        Voice("kal_diphone", FESTIVAL_DIPHONE, "M", "festvox-kallpc16k", follows_f0_target=True, audio_delay=0.010),
        Voice("ked_diphone", FESTIVAL_DIPHONE, "M", "festvox-kdlpc16k", follows_f0_target=True, audio_delay=0.010),
        Voice(
            "cmu_us_slt_arctic_hts",
            FESTIVAL_HTS,
            "F",
            "festvox-us-slt-hts",
            follows_f0_target=False,
            audio_delay=0.010,
        ),
    )
}

_FESTIVAL_VOICE_DIRS = {
    "kal_diphone": "english/kal_diphone",
    "ked_diphone": "english/ked_diphone",
    "cmu_us_slt_arctic_hts": "us/cmu_us_slt_arctic_hts",
}
_FESTIVAL_VOICES_ROOT = Path("/usr/share/festival/voices")
_FESTIVAL_LEXICON = Path("/usr/share/festival/dicts/cmu")


@dataclass(frozen=True)
class SpeakingStyle:
    """How a speaker sounds: a base voice and what is changed about it."""

    voice: str
    #: Multiplies every phone duration: above 1 is slower speech.
    duration_scale: float = 1.0
    #: Mean F0 target (Hz) given to the voice's intonation model; None keeps the voice's own.
    #: Voices with ``follows_f0_target=False`` ignore it.
    f0_mean: Optional[float] = None
    #: Pitch (and formant) shift of the finished audio in cents, duration unchanged.
    pitch_shift_cents: float = 0.0


@dataclass(frozen=True)
class SynthesisRequest:
    """One sentence to synthesise; ``seed`` fixes every random choice (engine excitation, noise floor)."""

    text: str
    style: SpeakingStyle
    seed: int = 0


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of audio in samples, ``start`` inclusive and ``end`` exclusive (as in TIMIT)."""

    label: str
    start: int
    end: int


@dataclass
class Synthesis:
    """16 kHz int16 audio with its phone segments (TIMIT labels, contiguous, covering all samples) and words."""

    audio: np.ndarray
    phones: List[Segment]
    words: List[Segment]


class MissingDependencyError(RuntimeError):
    """A binary, library or voice is not installed; the message names the Debian package."""


# ----------------------------------------------------------------------------------------------------------
# Public entry points


def check_voices(voice_names: Iterable[str]) -> None:
    """Raise :class:`MissingDependencyError` naming the Debian package if any voice (or sox) is unusable."""
    if shutil.which("sox") is None:
        raise MissingDependencyError("the 'sox' binary is missing: apt-get install sox")
    for name in voice_names:
        if name not in VOICES:
            raise ValueError(f"unknown voice {name!r}; known voices: {', '.join(VOICES)}")
        voice = VOICES[name]
        if voice.engine == FLITE:
            _flite_voice(name)
        else:
            _check_festival_voice(voice)


def synthesize(requests: Sequence[SynthesisRequest]) -> List[Synthesis]:
    """Synthesise every request (in order). Festival voices run one process per voice for the whole batch.

    The result depends only on each request, never on what else is in the batch, so batches can be split
    across worker processes freely.
    """
    outputs: List[Optional[_EngineOutput]] = [None] * len(requests)
    by_festival_voice: Dict[str, List[int]] = {}
    for index, request in enumerate(requests):
        voice = VOICES[request.style.voice]
        if voice.engine == FLITE:
            outputs[index] = _flite_synthesize(request)
        else:
            by_festival_voice.setdefault(voice.name, []).append(index)
    for voice_name, indices in by_festival_voice.items():
        for index, output in zip(indices, _festival_synthesize(VOICES[voice_name], [requests[i] for i in indices])):
            outputs[index] = output
    return [_finish(request, output) for request, output in zip(requests, outputs)]


# ----------------------------------------------------------------------------------------------------------
# What an engine reports


@dataclass(frozen=True)
class _EngineSegment:
    name: str  # ARPAbet phone without stress digits, or a pause symbol
    end: float  # seconds
    stressed: bool  # the phone's syllable carries lexical stress


@dataclass(frozen=True)
class _EngineWord:
    name: str
    start: float
    end: float


@dataclass
class _EngineOutput:
    audio: np.ndarray  # int16
    sample_rate: int
    segments: List[_EngineSegment]
    words: List[_EngineWord]


# Feature paths shared by flite and festival: a segment's syllable stress, a word's first and last phone.
_STRESS_PATH = "R:SylStructure.parent.stress"
_WORD_START_PATH = "R:SylStructure.daughter1.daughter1.R:Segment.p.end"
_WORD_END_PATH = "R:SylStructure.daughtern.daughtern.end"


# ----------------------------------------------------------------------------------------------------------
# flite through ctypes (the flite CLI prints phone end times, but neither stress nor word timings)


class _CstVoice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_void_p)]


class _CstWave(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


_FLITE_SIGNATURES = {
    "flite_init": (ctypes.c_int, []),
    "flite_synth_text": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_void_p]),
    "utt_wave": (ctypes.POINTER(_CstWave), [ctypes.c_void_p]),
    "utt_relation": (ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "relation_head": (ctypes.c_void_p, [ctypes.c_void_p]),
    "item_next": (ctypes.c_void_p, [ctypes.c_void_p]),
    "ffeature_string": (ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_char_p]),
    "ffeature_float": (ctypes.c_float, [ctypes.c_void_p, ctypes.c_char_p]),
    "get_param_float": (ctypes.c_float, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]),
    "feat_set_float": (None, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]),
    "feat_remove": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
    "delete_utterance": (None, [ctypes.c_void_p]),
}
# Voice features set per request; their voice defaults are restored when a request leaves them alone.
_FLITE_STRETCH = b"duration_stretch"
_FLITE_F0_MEAN = b"int_f0_target_mean"


def _load_shared_library(name: str, package: str) -> ctypes.CDLL:
    try:
        return ctypes.CDLL(name, mode=ctypes.RTLD_GLOBAL)
    except OSError as error:
        raise MissingDependencyError(f"cannot load {name} ({error}): apt-get install {package}") from error


@lru_cache(maxsize=None)
def _flite_library() -> ctypes.CDLL:
    lib = _load_shared_library("libflite.so.1", "libflite1")
    for dependency in ("libflite_usenglish.so.1", "libflite_cmulex.so.1"):
        _load_shared_library(dependency, "libflite1")
    for function, (restype, argtypes) in _FLITE_SIGNATURES.items():
        getattr(lib, function).restype = restype
        getattr(lib, function).argtypes = argtypes
    lib.flite_init()
    return lib


@dataclass(frozen=True)
class _FliteVoice:
    pointer: int
    features: int
    defaults: Dict[bytes, float]  # NaN: feature not set by the voice


@lru_cache(maxsize=None)
def _flite_voice(name: str) -> _FliteVoice:
    lib = _flite_library()
    voice_lib = _load_shared_library(f"libflite_cmu_us_{name}.so.1", VOICES[name].package)
    register = getattr(voice_lib, f"register_cmu_us_{name}")
    register.restype = ctypes.POINTER(_CstVoice)
    register.argtypes = [ctypes.c_char_p]
    voice = register(None)
    features = voice.contents.features
    defaults = {key: lib.get_param_float(features, key, math.nan) for key in (_FLITE_STRETCH, _FLITE_F0_MEAN)}
    return _FliteVoice(ctypes.cast(voice, ctypes.c_void_p).value, features, defaults)


def _flite_set(voice: _FliteVoice, key: bytes, value: Optional[float]) -> None:
    lib = _flite_library()
    value = voice.defaults[key] if value is None else value
    if math.isnan(value):
        lib.feat_remove(voice.features, key)
    else:
        lib.feat_set_float(voice.features, key, value)


def _flite_synthesize(request: SynthesisRequest) -> _EngineOutput:
    lib = _flite_library()
    voice = _flite_voice(request.style.voice)
    base_stretch = voice.defaults[_FLITE_STRETCH]
    base_stretch = 1.0 if math.isnan(base_stretch) else base_stretch
    _flite_set(voice, _FLITE_STRETCH, base_stretch * request.style.duration_scale)
    _flite_set(voice, _FLITE_F0_MEAN, request.style.f0_mean)
    # flite's clustergen voices draw excitation noise from libc rand(): seeding it makes them repeatable.
    ctypes.CDLL(None).srand(request.seed & 0xFFFFFFFF)
    utterance = lib.flite_synth_text(request.text.encode("utf-8"), voice.pointer)
    try:
        wave = lib.utt_wave(utterance).contents
        audio = np.ctypeslib.as_array(wave.samples, shape=(wave.num_samples,)).astype(np.int16)
        segments = [
            _EngineSegment(
                _flite_feature(item, "name"),
                lib.ffeature_float(item, b"end"),
                _flite_feature(item, _STRESS_PATH) != "0",
            )
            for item in _flite_items(utterance, b"Segment")
        ]
        words = [
            _EngineWord(
                _flite_feature(item, "name"),
                lib.ffeature_float(item, _WORD_START_PATH.encode()),
                lib.ffeature_float(item, _WORD_END_PATH.encode()),
            )
            for item in _flite_items(utterance, b"Word")
        ]
        return _EngineOutput(audio, wave.sample_rate, segments, words)
    finally:
        lib.delete_utterance(utterance)


def _flite_items(utterance: int, relation: bytes) -> Iterable[int]:
    lib = _flite_library()
    item = lib.relation_head(lib.utt_relation(utterance, relation))
    while item:
        yield item
        item = lib.item_next(item)


def _flite_feature(item: int, path: str) -> str:
    return _flite_library().ffeature_string(item, path.encode()).decode("utf-8")


# ----------------------------------------------------------------------------------------------------------
# festival: one process per batch, driven by a generated Scheme script

_FESTIVAL_PRELUDE = """
(voice_{voice})
(define asrkit-stretch (Parameter.get 'Duration_Stretch))
(define asrkit-lr-params int_lr_params)
(define asrkit-hts-params {hts_params})
(define (asrkit-f0-params mean)
  (list (list 'target_f0_mean mean)
        (assoc 'target_f0_std asrkit-lr-params)
        (assoc 'model_f0_mean asrkit-lr-params)
        (assoc 'model_f0_std asrkit-lr-params)))
(define (asrkit-say text wavfile)
  ;; Utterance is a special form that does not evaluate its arguments.
  (let ((utt (utt.synth (eval (list 'Utterance 'Text text)))))
    (utt.save.wave utt wavfile 'riff)
    (mapcar
     (lambda (s) (format t "asrkit-seg %s %s %s\\n" (item.name s) (item.feat s 'end) (item.feat s "{stress}")))
     (utt.relation.items utt 'Segment))
    (mapcar
     (lambda (w)
       (format t "asrkit-word %s %s %s\\n" (item.feat w "{word_start}") (item.feat w "{word_end}") (item.name w)))
     (utt.relation.items utt 'Word))
    (format t "asrkit-end\\n")))
"""


def _check_festival_voice(voice: Voice) -> None:
    if shutil.which("festival") is None:
        raise MissingDependencyError("the 'festival' binary is missing: apt-get install festival")
    if not _FESTIVAL_LEXICON.is_dir():
        raise MissingDependencyError("festival's CMU lexicon is missing: apt-get install festlex-cmu festlex-poslex")
    if not (_FESTIVAL_VOICES_ROOT / _FESTIVAL_VOICE_DIRS[voice.name]).is_dir():
        raise MissingDependencyError(f"festival voice {voice.name} is missing: apt-get install {voice.package}")


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_script(voice: Voice, requests: Sequence[SynthesisRequest], wav_dir: Path) -> str:
    hts_params = "cmu_us_slt_arctic_hts::hts_engine_params" if voice.engine == FESTIVAL_HTS else "nil"
    lines = [
        _FESTIVAL_PRELUDE.format(
            voice=voice.name,
            hts_params=hts_params,
            stress=_STRESS_PATH,
            word_start=_WORD_START_PATH,
            word_end=_WORD_END_PATH,
        )
    ]
    for index, request in enumerate(requests):
        style = request.style
        # Every request sets all parameters, so no setting leaks from one request into the next.
        if voice.engine == FESTIVAL_HTS:
            # The HTS engine ignores Duration_Stretch; its "-r" option is a speed factor.
            speed = 1.0 / style.duration_scale
            lines.append(f'(set! hts_engine_params (append asrkit-hts-params (list (list "-r" {speed!r}))))')
        else:
            lines.append(f"(Parameter.set 'Duration_Stretch (* asrkit-stretch {style.duration_scale!r}))")
            f0 = "asrkit-lr-params" if style.f0_mean is None else f"(asrkit-f0-params {style.f0_mean!r})"
            lines.append(f"(set! int_lr_params {f0})")
        lines.append(f"(asrkit-say {_scheme_string(request.text)} {_scheme_string(str(wav_dir / f'{index}.wav'))})")
    return "\n".join(lines) + "\n"


def _festival_synthesize(voice: Voice, requests: Sequence[SynthesisRequest]) -> List[_EngineOutput]:
    _check_festival_voice(voice)
    with tempfile.TemporaryDirectory(prefix="asrkit-festival-") as tmp:
        wav_dir = Path(tmp)
        script = wav_dir / "synth.scm"
        script.write_text(_festival_script(voice, requests, wav_dir))
        result = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True)
        reports = _parse_festival_output(result.stdout)
        if result.returncode != 0 or len(reports) != len(requests):
            raise RuntimeError(
                f"festival ({voice.name}) synthesised {len(reports)} of {len(requests)} sentences "
                f"(exit code {result.returncode}): {result.stderr.strip()[-2000:] or result.stdout.strip()[-2000:]}"
            )
        outputs = []
        for index, (segments, words) in enumerate(reports):
            audio, sample_rate = sf.read(wav_dir / f"{index}.wav", dtype="int16")
            outputs.append(_EngineOutput(audio, sample_rate, segments, words))
        return outputs


def _parse_festival_output(stdout: str) -> List[Tuple[List[_EngineSegment], List[_EngineWord]]]:
    reports = []
    segments: List[_EngineSegment] = []
    words: List[_EngineWord] = []
    for line in stdout.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "asrkit-seg":
            segments.append(_EngineSegment(fields[1], float(fields[2]), fields[3] != "0"))
        elif fields[0] == "asrkit-word":
            words.append(_EngineWord(" ".join(fields[3:]), float(fields[1]), float(fields[2])))
        elif fields[0] == "asrkit-end":
            reports.append((segments, words))
            segments, words = [], []
    return reports


# ----------------------------------------------------------------------------------------------------------
# Audio: sox pitch shift and resampling, time realignment, noise floor


def _sox(audio: np.ndarray, sample_rate: int, pitch_shift_cents: float) -> np.ndarray:
    """Pitch-shift (duration kept) and resample to :data:`SAMPLE_RATE` with sox, raw int16 through pipes."""
    raw = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1", "-L"]
    effects = []
    if pitch_shift_cents:
        effects += ["pitch", f"{pitch_shift_cents:.0f}"]
    if sample_rate != SAMPLE_RATE:
        effects += ["rate", "-h", str(SAMPLE_RATE)]
    # -R: repeatable (fixed seeds), -D: no dither, -G: guard against clipping.
    command = ["sox", "-R", "-D", "-G", "-V1"]
    command += [*raw, "-r", str(sample_rate), "-", *raw, "-r", str(SAMPLE_RATE), "-", *effects]
    result = subprocess.run(command, input=audio.astype("<i2").tobytes(), capture_output=True, check=True)
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.int16)


def _log_envelope(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Log energy in 10 ms windows every 1 ms."""
    window = sample_rate // 100
    power = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    energy = (power[window:] - power[:-window])[:: sample_rate // 1000] / window
    return np.log(energy + 1.0)


def _lag_ms(shifted: np.ndarray, reference: np.ndarray, reference_rate: int, max_lag_ms: int = 40) -> int:
    """How many ms ``shifted`` (16 kHz) runs ahead of ``reference``, from log-envelope cross-correlation."""
    a = _log_envelope(reference, reference_rate)
    b = _log_envelope(shifted, SAMPLE_RATE)
    n = min(len(a), len(b))
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    lags = range(-max_lag_ms, max_lag_ms + 1)
    scores = [np.dot(a[max(0, lag) : n + min(0, lag)], b[max(0, -lag) : n - max(0, lag)]) for lag in lags]
    return lags[int(np.argmax(scores))]


def _delay(audio: np.ndarray, samples: int) -> np.ndarray:
    """Move ``audio`` later by ``samples`` (earlier if negative), keeping its length; the ends are silence."""
    if samples > 0:
        return np.concatenate([np.zeros(samples, dtype=audio.dtype), audio[:-samples]])
    if samples < 0:
        return np.concatenate([audio[-samples:], np.zeros(-samples, dtype=audio.dtype)])
    return audio


def _render_audio(output: _EngineOutput, style: SpeakingStyle) -> np.ndarray:
    """The engine's audio at 16 kHz with the style's pitch shift, time-aligned with the engine's timings.

    sox's pitch effect moves the signal by roughly 5-20 ms (earlier when shifting up, later when shifting
    down); the shift is measured per utterance and undone.
    """
    if not style.pitch_shift_cents and output.sample_rate == SAMPLE_RATE:
        return output.audio
    processed = _sox(output.audio, output.sample_rate, style.pitch_shift_cents)
    if style.pitch_shift_cents:
        lag = _lag_ms(processed, output.audio, output.sample_rate)
        processed = _delay(processed, lag * SAMPLE_RATE // 1000)
    return processed


def _add_noise_floor(audio: np.ndarray, seed: int) -> np.ndarray:
    noise_std = 32768.0 * 10.0 ** (NOISE_FLOOR_DBFS / 20.0)
    noisy = audio.astype(np.float64) + np.random.default_rng(seed).normal(0.0, noise_std, size=len(audio))
    return np.clip(np.round(noisy), -32768, 32767).astype(np.int16)


# ----------------------------------------------------------------------------------------------------------
# Labels: ARPAbet segments -> TIMIT phones, engine times -> sample boundaries

_VOWELS = frozenset("iy ih eh ey ae aa aw ay ah ao oy ow uh uw ux er ax ix axr ax-h".split())
_PAUSES = frozenset({"pau", "brth", "h#"})
#: Stops and affricates: closure label and the fraction of the engine's segment the closure takes.
_CLOSURES = {
    "b": ("bcl", 0.55),
    "d": ("dcl", 0.55),
    "g": ("gcl", 0.55),
    "p": ("pcl", 0.50),
    "t": ("tcl", 0.50),
    "k": ("kcl", 0.50),
    "jh": ("dcl", 0.40),
    "ch": ("tcl", 0.40),
}


def _arpabet(segment: _EngineSegment) -> str:
    """The segment's phone without a stress digit (lexicons write "ah0"; the engines' segments mostly do not)."""
    return segment.name.rstrip("012")


def _is_flap(segments: Sequence[_EngineSegment], index: int) -> bool:
    """t or d between a stressed and an unstressed vowel ("water", "ladder") is a flap in American English."""
    if _arpabet(segments[index]) not in ("t", "d") or index == 0 or index + 1 == len(segments):
        return False
    before, after = segments[index - 1], segments[index + 1]
    return _arpabet(before) in _VOWELS and before.stressed and _arpabet(after) in _VOWELS and not after.stressed


def _timit_labels(segments: Sequence[_EngineSegment], voice: str) -> List[List[Tuple[str, float]]]:
    """For each engine segment, its TIMIT labels, each with the fraction of the segment where it ends."""
    labels = []
    for index, segment in enumerate(segments):
        name = _arpabet(segment)
        if name in _PAUSES:
            parts = [("h#" if index in (0, len(segments) - 1) else "pau", 1.0)]
        elif _is_flap(segments, index):
            parts = [("dx", 1.0)]
        elif name in _CLOSURES:
            closure, fraction = _CLOSURES[name]
            parts = [(closure, fraction), (name, 1.0)]
        else:
            parts = [(name, 1.0)]
        for label, _ in parts:
            if label not in TIMIT_LABELS:
                raise ValueError(f"voice {voice} produced phone {name!r}, which has no TIMIT label")
        labels.append(parts)
    return labels


def _phone_segments(labels: Sequence[Sequence[Tuple[str, float]]], boundaries: np.ndarray) -> List[Segment]:
    """Contiguous phone segments; pieces that round to no samples vanish, adjacent pauses merge."""
    phones: List[Segment] = []
    for (start, end), parts in zip(zip(boundaries[:-1], boundaries[1:]), labels):
        piece_start = int(start)
        for label, fraction in parts:
            piece_end = int(start + round(fraction * (end - start)))
            if piece_end <= piece_start:
                continue
            if phones and label in _PAUSES and phones[-1].label in _PAUSES:
                merged = "h#" if "h#" in (label, phones[-1].label) else label
                phones[-1] = Segment(merged, phones[-1].start, piece_end)
            else:
                phones.append(Segment(label, piece_start, piece_end))
            piece_start = piece_end
    return phones


def _group_clitics(words: Sequence[_EngineWord]) -> List[range]:
    """Engine words grouped into written words: a clitic the engine split off ("it" + "'s") joins its host."""
    groups: List[range] = []
    for index, word in enumerate(words):
        if groups and word.name.startswith("'"):
            groups[-1] = range(groups[-1].start, index + 1)
        else:
            groups.append(range(index, index + 1))
    return groups


def _word_segments(
    words: Sequence[_EngineWord], segments: Sequence[_EngineSegment], boundaries: np.ndarray, text: str
) -> List[Segment]:
    """Word segments on the phone boundaries, spelled as in ``text`` when the engine read as many words.

    Engines drop apostrophes ("dont"), split clitics ("it" + "'s") and rename homographs ("read" -> "red"),
    so the transcript's words are used whenever their number matches; otherwise the engine's own.
    """
    ends = np.array([s.end for s in segments])
    starts = np.concatenate([[0.0], ends[:-1]])
    firsts = [int(np.argmin(np.abs(starts - word.start))) for word in words]
    lasts = [int(np.argmin(np.abs(ends - word.end))) for word in words]
    for index in range(len(words)):
        # Post-lexical rules insert segments that belong to no word (a linking "r" in "number of"):
        # they join the word before them unless a pause intervenes.
        next_first = firsts[index + 1] if index + 1 < len(words) else len(segments)
        while lasts[index] + 1 < next_first and segments[lasts[index] + 1].name not in _PAUSES:
            lasts[index] += 1

    groups = _group_clitics(words)
    names = sentence_words(text)
    if len(names) != len(groups):
        names = ["".join(words[i].name for i in group).lower() for group in groups]
    result = []
    for name, group in zip(names, groups):
        start, end = int(boundaries[firsts[group[0]]]), int(boundaries[lasts[group[-1]] + 1])
        if end > start:
            result.append(Segment(name, start, end))
    return result


def _finish(request: SynthesisRequest, output: _EngineOutput) -> Synthesis:
    """Turn an engine's output into 16 kHz audio and TIMIT segments covering every sample."""
    voice = VOICES[request.style.voice]
    if not output.segments:
        raise RuntimeError(f"voice {voice.name} produced no phones for {request.text!r}")
    audio = _render_audio(output, request.style)
    ends = np.array([segment.end for segment in output.segments])
    # The engine's timeline may run past the audio it returned: pad with silence so that both agree.
    total = max(len(audio), int(round(ends[-1] * SAMPLE_RATE)))
    audio = np.concatenate([audio, np.zeros(total - len(audio), dtype=np.int16)])
    inner = np.round((ends[:-1] + voice.audio_delay) * SAMPLE_RATE).astype(np.int64)
    boundaries = np.maximum.accumulate(np.clip(np.concatenate([[0], inner, [total]]), 0, total))
    labels = _timit_labels(output.segments, voice.name)
    return Synthesis(
        audio=_add_noise_floor(audio, request.seed),
        phones=_phone_segments(labels, boundaries),
        words=_word_segments(output.words, output.segments, boundaries, request.text),
    )
