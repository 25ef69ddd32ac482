"""Speakers of the synthetic demo corpora: stable seeds, speaking styles from the TTS voices, and synthesis in
parallel batches. Shared by the demo corpus generators of the recipes (TIMIT layout, LibriSpeech layout).
"""

import hashlib
import itertools
import math
import multiprocessing
import random
from typing import Callable, Iterator, List, Sequence, TypeVar

from asrkit.demo import tts

#: Speaking-rate range (phone duration factor) and target mean F0 (Hz) per sex.
DURATION_SCALE_RANGE = (0.85, 1.25)
F0_RANGE = {"M": (95.0, 140.0), "F": (175.0, 235.0)}
#: sox pitch shift (cents) for a speaker of the voice's own sex, and the size of a shift across sexes.
SAME_SEX_SHIFT_RANGE = (-100.0, 100.0)
CROSS_SEX_SHIFT_RANGE = (400.0, 600.0)

#: Utterances per synthesis task: one festival process each, and the unit of parallel work.
BATCH_SIZE = 24


def stable_int(*parts: object) -> int:
    """A 32-bit integer from ``parts`` that is the same in every process and Python version."""
    digest = hashlib.sha256("/".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


def speaking_style(speaker_id: str, voice_name: str, seed: int) -> tts.SpeakingStyle:
    """A speaker's rate, intonation target and pitch shift; the shift turns a voice into the speaker's sex."""
    rng = random.Random(stable_int(seed, "style", speaker_id))
    voice = tts.VOICES[voice_name]
    sex = speaker_id[0]
    if voice.sex == sex:
        cents = rng.uniform(*SAME_SEX_SHIFT_RANGE)
    else:
        cents = math.copysign(rng.uniform(*CROSS_SEX_SHIFT_RANGE), 1.0 if sex == "F" else -1.0)
    f0_mean = rng.uniform(*F0_RANGE[sex])
    duration_scale = rng.uniform(*DURATION_SCALE_RANGE)
    # The voice is asked for the F0 that lands on the speaker's target once the pitch shift is applied.
    voice_f0 = round(f0_mean / 2.0 ** (cents / 1200.0), 1) if voice.follows_f0_target else None
    return tts.SpeakingStyle(voice_name, round(duration_scale, 3), voice_f0, round(cents))


def synthesis_batches(utterances: Sequence) -> List[List]:
    """Batches of one voice each (``utterance.speaker.style.voice``), voices interleaved so that slow and fast
    voices spread over the workers."""
    by_voice = {}
    for utterance in utterances:
        by_voice.setdefault(utterance.speaker.style.voice, []).append(utterance)
    chunked = [[group[i : i + BATCH_SIZE] for i in range(0, len(group), BATCH_SIZE)] for group in by_voice.values()]
    return [batch for round_ in itertools.zip_longest(*chunked) for batch in round_ if batch is not None]



Task = TypeVar("Task")
Report = TypeVar("Report")


def run_tasks(work: Callable[[Task], Report], tasks: List[Task], num_jobs: int) -> Iterator[Report]:
    """``work`` of every task, in completion order, from ``num_jobs`` worker processes (or this one)."""
    if num_jobs <= 1:
        yield from map(work, tasks)
        return
    with multiprocessing.get_context("fork").Pool(num_jobs) as pool:
        yield from pool.imap_unordered(work, tasks)
