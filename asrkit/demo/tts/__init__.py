"""Synthesise sentences with Debian's TTS voices and return 16 kHz audio with TIMIT-style alignments.

Both engines report where each phone they synthesised ends, which gives exact phone alignments for free:
flite (``libflite1``, called in-process through ctypes) and festival (one process per batch, the Segment
relation printed by a Scheme script). Their ARPAbet phones are turned into TIMIT's 61 labels: stops and
affricates get a closure, pauses become ``h#``/``pau`` and a flap rule produces ``dx``.

Speaker variety comes from a :class:`SpeakingStyle`: speaking rate, intonation target and a sox pitch shift
that keeps the duration (its small time shift is measured and undone, so the alignments stay valid).
This package knows nothing about corpus layouts; it only turns text into audio plus segments. Its modules,
top to bottom: this one (the entry points), :mod:`.flite` and :mod:`.festival` (the two engines, each with its
own system dependencies, neither importing the other), :mod:`.audio` (sox and the noise floor) and
:mod:`.labels` (TIMIT labels), over :mod:`.engine` (what both engines report) and :mod:`.voices`.
"""

import shutil
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from asrkit.demo.tts import festival, flite
from asrkit.demo.tts.audio import NOISE_FLOOR_DBFS, SAMPLE_RATE, add_noise_floor, render_audio
from asrkit.demo.tts.engine import EngineOutput
from asrkit.demo.tts.labels import Segment, phone_segments, timit_labels, word_segments
from asrkit.demo.tts.voices import (FESTIVAL_DIPHONE, FESTIVAL_HTS, FLITE, VOICES, MissingDependencyError,
                                    SpeakingStyle, SynthesisRequest, Voice)

#: The public API: the public names of the single module this package replaced.
__all__ = ["FESTIVAL_DIPHONE", "FESTIVAL_HTS", "FLITE", "NOISE_FLOOR_DBFS", "SAMPLE_RATE", "VOICES",
           "MissingDependencyError", "Segment", "SpeakingStyle", "Synthesis", "SynthesisRequest", "Voice",
           "check_voices", "synthesize"]


@dataclass
class Synthesis:
    """16 kHz int16 audio with its phone segments (TIMIT labels, contiguous, covering all samples) and words."""

    audio: np.ndarray
    phones: List[Segment]
    words: List[Segment]


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
            flite.check_voice(voice)
        else:
            festival.check_voice(voice)


def synthesize(requests: Sequence[SynthesisRequest]) -> List[Synthesis]:
    """Synthesise every request (in order). Festival voices run one process per voice for the whole batch.

    The result depends only on each request, never on what else is in the batch, so batches can be split
    across worker processes freely.
    """
    outputs: List[Optional[EngineOutput]] = [None] * len(requests)
    by_festival_voice: Dict[str, List[int]] = {}
    for index, request in enumerate(requests):
        voice = VOICES[request.style.voice]
        if voice.engine == FLITE:
            outputs[index] = flite.synthesize(request)
        else:
            by_festival_voice.setdefault(voice.name, []).append(index)
    for voice_name, indices in by_festival_voice.items():
        for index, output in zip(indices, festival.synthesize(VOICES[voice_name], [requests[i] for i in indices])):
            outputs[index] = output
    return [_finish(request, output) for request, output in zip(requests, outputs)]


def _finish(request: SynthesisRequest, output: EngineOutput) -> Synthesis:
    """Turn an engine's output into 16 kHz audio and TIMIT segments covering every sample."""
    voice = VOICES[request.style.voice]
    if not output.segments:
        raise RuntimeError(f"voice {voice.name} produced no phones for {request.text!r}")
    audio = render_audio(output, request.style)
    ends = np.array([segment.end for segment in output.segments])
    # The engine's timeline may run past the audio it returned: pad with silence so that both agree.
    total = max(len(audio), int(round(ends[-1] * SAMPLE_RATE)))
    audio = np.concatenate([audio, np.zeros(total - len(audio), dtype=np.int16)])
    inner = np.round((ends[:-1] + voice.audio_delay) * SAMPLE_RATE).astype(np.int64)
    boundaries = np.maximum.accumulate(np.clip(np.concatenate([[0], inner, [total]]), 0, total))
    labels = timit_labels(output.segments, voice.name)
    return Synthesis(
        audio=add_noise_floor(audio, request.seed),
        phones=phone_segments(labels, boundaries),
        words=word_segments(output.words, output.segments, boundaries, request.text),
    )
