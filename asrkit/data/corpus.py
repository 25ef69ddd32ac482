"""For recipes' prepare steps: checks on a corpus before lhotse reads it, and the manifests they write.

lhotse's recipes skip a file they cannot find with a warning, and fail on unreadable audio with a bare
traceback; a recipe collects every problem with these checks and stops with all of them at once. Then it
writes ``data/manifests/<recipe>_{recordings,supervisions}_<split>.jsonl.gz``, what the shared stages read.
"""

import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Type

import soundfile
from lhotse import RecordingSet, SupervisionSet

from asrkit.data.manifests import MANIFEST_KINDS, manifest_path
from asrkit.io import atomic_output

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
