"""For recipes' prepare steps: checks on a corpus before lhotse reads it, and the manifests they write.

lhotse's recipes skip a file they cannot find with a warning, and fail on unreadable audio with a bare
traceback; a recipe collects every problem with these checks and stops with all of them at once. Then it
writes ``data/manifests/<recipe>_{recordings,supervisions}_<split>.jsonl.gz``, what the shared stages read.
"""

import logging
import os
import stat
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Type

import numpy as np
import soundfile
from lhotse import RecordingSet, SupervisionSet

from asrkit.data.manifests import MANIFEST_KINDS, manifest_path
from asrkit.io import atomic_output

SAMPLE_RATE = 16000
#: at most this many problems are listed in the error
MAX_PROBLEMS_SHOWN = 20
#: libsndfile's sample formats that can hold NaN or infinity (integer samples cannot, so only these are read)
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")
#: what a path is that exists but is not a regular file, by ``stat`` test
SPECIAL_FILE_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                      (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                      (stat.S_ISBLK, "a block device"))


class CorpusError(ValueError):
    """The corpus is not usable; the message names the file(s) and the problem."""


def special_file_kind(path: Path) -> Optional[str]:
    """What ``path`` is when it exists but is not a regular file (``a directory``, ``a named pipe (FIFO)``, ``a
    broken symbolic link``, ...); None for a regular file, a link to one, or nothing at all.

    Checked before a file is opened: opening a FIFO waits for a writer forever, a directory raises
    IsADirectoryError deep inside whatever library reads it.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else None
    if stat.S_ISREG(mode):
        return None
    return next((kind for is_kind, kind in SPECIAL_FILE_KINDS if is_kind(mode)), "not a file")


def check_regular_file(path: Path) -> List[str]:
    """``["<path>: a named pipe (FIFO), not a regular file"]`` and the like, or no problem."""
    kind = special_file_kind(path)
    return [f"{path}: {kind}, not a regular file"] if kind else []


def non_finite_samples(samples: np.ndarray) -> Optional[str]:
    """``"3 of 4800 samples are NaN or infinite"``, or None when every sample is a number (feature extraction
    and lilcom's compression fail on the others without saying where they came from)."""
    bad = samples.size - int(np.isfinite(samples).sum())
    return f"{bad} of {samples.size} samples are NaN or infinite" if bad else None


def check_audio(path: Path) -> List[str]:
    """Problems with one audio file: not a regular file, unreadable, not 16 kHz, not mono, empty, a truncated
    SPHERE file, NaN or infinite samples (read only in float formats: integer samples cannot be either)."""
    problems = check_regular_file(path)
    if problems:
        return problems
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
    if info.subtype in FLOAT_SUBTYPES:
        non_finite = non_finite_samples(soundfile.read(str(path), dtype="float64")[0])
        if non_finite:
            problems.append(f"{path}: {non_finite}")
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


def raise_problems(problems: List[str], error: Type[ValueError] = CorpusError,
                   what: str = "problem(s) in the corpus") -> None:
    """Stop with every problem found (the first :data:`MAX_PROBLEMS_SHOWN` listed), or return if none."""
    if problems:
        shown = "\n  ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = f"\n  ... and {len(problems) - MAX_PROBLEMS_SHOWN} more" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        raise error(f"{len(problems)} {what}:\n  {shown}{more}")


def write_manifests(sets: Dict[str, Tuple[RecordingSet, SupervisionSet]], output_dir: Path, recipe: str) -> None:
    """Write each split's (recordings, supervisions) as ``<recipe>_{recordings,supervisions}_<split>.jsonl.gz``."""
    for split, (recordings, supervisions) in sets.items():
        for kind, manifest in zip(MANIFEST_KINDS, (recordings, supervisions)):
            with atomic_output(manifest_path(output_dir, recipe, kind, split)) as tmp:
                manifest.to_file(tmp)
        logging.info(f"{split}: {len(supervisions)} utterances, {len({s.speaker for s in supervisions})} speakers "
                     f"-> {output_dir}/{recipe}_*_{split}.jsonl.gz")
