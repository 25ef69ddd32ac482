"""flite (``libflite1``) called in-process through ctypes, one request at a time; phone and word timings
are read from the utterance's relations (the flite CLI prints phone end times, but neither stress nor word
timings).
"""

import ctypes
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterable, Optional

import numpy as np

from asrkit.demo.tts.engine import STRESS_PATH, WORD_END_PATH, WORD_START_PATH, EngineOutput, EngineSegment, EngineWord
from asrkit.demo.tts.voices import VOICES, MissingDependencyError, SynthesisRequest, Voice


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


def check_voice(voice: Voice) -> None:
    """Load the voice's library, raising :class:`MissingDependencyError` naming the package if it is missing."""
    _flite_voice(voice.name)


def synthesize(request: SynthesisRequest) -> EngineOutput:
    """Synthesise one request with its flite voice: audio at the voice's rate, phone and word timings."""
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
            EngineSegment(
                _flite_feature(item, "name"),
                lib.ffeature_float(item, b"end"),
                _flite_feature(item, STRESS_PATH) != "0",
            )
            for item in _flite_items(utterance, b"Segment")
        ]
        words = [
            EngineWord(
                _flite_feature(item, "name"),
                lib.ffeature_float(item, WORD_START_PATH.encode()),
                lib.ffeature_float(item, WORD_END_PATH.encode()),
            )
            for item in _flite_items(utterance, b"Word")
        ]
        return EngineOutput(audio, wave.sample_rate, segments, words)
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

