"""Checks that recipes' prepare steps run on a corpus before lhotse reads it: each problem names the file.

lhotse's recipes skip a file they cannot find with a warning, and fail on unreadable audio with a bare
traceback; a recipe collects every problem with these checks and stops with all of them at once.
"""

from pathlib import Path
from typing import List, Optional

import soundfile

SAMPLE_RATE = 16000
#: at most this many problems are listed in the error
MAX_PROBLEMS_SHOWN = 20


class CorpusError(ValueError):
    """The corpus is not usable; the message names the file(s) and the problem."""


def check_audio(path: Path) -> List[str]:
    """Problems with one audio file: unreadable, not 16 kHz, not mono, empty, a truncated SPHERE file."""
    try:
        info = soundfile.info(str(path))
    except Exception as e:  # libsndfile's message says what is wrong with the header
        return [f"{path}: unreadable audio ({e})"]
    problems = []
    if info.samplerate != SAMPLE_RATE:
        problems.append(f"{path}: sample rate {info.samplerate} Hz, expected {SAMPLE_RATE} Hz")
    if info.channels != 1:
        problems.append(f"{path}: {info.channels} channels, expected mono")
    if info.frames == 0:
        problems.append(f"{path}: empty audio")
    declared = sphere_sample_count(path) if info.format == "NIST" else None
    if declared is not None and declared != info.frames:
        problems.append(f"{path}: truncated audio: the header says {declared} samples, the file holds {info.frames}")
    return problems


def sphere_sample_count(wav: Path) -> Optional[int]:
    """The ``sample_count`` a NIST SPHERE header declares (libsndfile trusts the file size instead)."""
    with open(wav, "rb") as f:
        header = f.read(1024).decode("ascii", errors="replace")
    for line in header.splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "sample_count" and fields[2].isdigit():
            return int(fields[2])
    return None


def raise_problems(problems: List[str]) -> None:
    """Stop with every problem found (the first :data:`MAX_PROBLEMS_SHOWN` listed), or return if none."""
    if problems:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise CorpusError(f"{len(problems)} problem(s) in the corpus:\n  {shown}{more}")
