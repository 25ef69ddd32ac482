"""For recipes' prepare steps: checks on a corpus before lhotse reads it, and the manifests they write.

lhotse's recipes skip a file they cannot find with a warning, and fail on unreadable audio with a bare
traceback; a recipe collects every problem with these checks and stops with all of them at once. Then it
writes ``data/manifests/<recipe>_{recordings,supervisions}_<split>.jsonl.gz``, what the shared stages read.
"""

import errno
import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO, Dict, List, Optional, Tuple, Type, Union

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
    broken symbolic link``, ``a symbolic link loop``, ...); None for a regular file, a link to one, or nothing.

    Checked before a file is opened: opening a FIFO waits for a writer forever, a directory raises
    IsADirectoryError deep inside whatever library reads it.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "a broken symbolic link" if os.path.islink(path) else None
    except OSError as e:  # a worker process died on it with a bare "Too many levels of symbolic links"
        if e.errno == errno.ELOOP:
            return "a symbolic link loop"
        raise
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
    """Problems with one corpus audio file, each naming it: not a regular file, or :func:`audio_problems`."""
    problems = check_regular_file(path)
    if problems:
        return problems
    return [f"{path}: {reason}" for reason in audio_problems(path)]


def audio_problems(audio: Union[Path, BinaryIO], sample_rate: int = SAMPLE_RATE) -> List[str]:
    """Why ``audio`` (a file, or a seekable file object such as a command's output in memory) is no usable
    recording: unreadable, not at ``sample_rate``, not mono, empty, a truncated SPHERE file, NaN or infinite samples
    (read only in float formats: integer samples cannot be either). The reasons alone, without a name."""
    try:
        info = soundfile.info(_rewound(audio))
    except Exception as e:  # libsndfile's message says what is wrong with the header
        return [f"unreadable audio ({e})"]
    problems = []
    if info.samplerate != sample_rate:
        problems.append(f"sample rate {info.samplerate} Hz, expected {sample_rate} Hz")
    if info.channels != 1:
        problems.append(f"{info.channels} channels, expected mono")
    if info.frames == 0:
        problems.append("empty audio")
    declared = sphere_sample_count(audio) if info.format == "NIST" else None
    if declared is not None and declared != info.frames:
        problems.append(f"truncated audio: the header says {declared} samples, the file holds {info.frames}")
    if info.subtype in FLOAT_SUBTYPES:
        non_finite = non_finite_samples(soundfile.read(_rewound(audio), dtype="float64")[0])
        if non_finite:
            problems.append(non_finite)
    return problems


def _rewound(audio: Union[Path, BinaryIO]) -> Union[str, BinaryIO]:
    """What soundfile reads ``audio`` from: a path's name, or the file object at its start."""
    if isinstance(audio, Path):
        return str(audio)
    audio.seek(0)
    return audio


def sphere_sample_count(wav: Union[Path, BinaryIO]) -> Optional[int]:
    """The ``sample_count`` a NIST SPHERE header declares (libsndfile trusts the file size instead)."""
    if isinstance(wav, Path):
        with open(wav, "rb") as f:
            head = f.read(1024)
    else:
        head = _rewound(wav).read(1024)
    for line in head.decode("ascii", errors="replace").splitlines():
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
