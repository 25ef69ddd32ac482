#!/usr/bin/env python3
"""Stage 1 of __NAME__: lhotse manifests from ``<corpus>/<part>/<utterance>.wav`` + ``<utterance>.txt``.

Adapt this file to your corpus: it must write ``<recipe>_{recordings,supervisions}_{train,dev,test}.jsonl.gz``
(lhotse RecordingSet and SupervisionSet, one supervision per recording here, ``text`` set). Every problem is
collected and reported with its file before anything is written.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asrkit.data.corpus import CorpusError, check_audio, raise_problems, write_manifests

AUDIO_SUFFIXES = (".wav", ".flac")


def read_part(part_dir: Path) -> Tuple[RecordingSet, SupervisionSet, List[str]]:
    """The recordings and transcripts of one part folder, and the problems found."""
    if not part_dir.is_dir():
        raise CorpusError(f"{part_dir}: no such folder (corpus.parts in the recipe's config.yaml)")
    recordings, supervisions, problems = [], [], []
    audio = sorted(p for p in part_dir.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    if not audio:
        raise CorpusError(f"{part_dir}: no audio files ({', '.join(AUDIO_SUFFIXES)})")
    for path in audio:
        transcript = path.with_suffix(".txt")
        found = check_audio(path)
        if not transcript.is_file():
            found.append(f"{transcript}: missing transcript of {path.name}")
        elif not transcript.read_text(errors="replace").split():
            found.append(f"{transcript}: empty transcript")
        problems += found
        if found:
            continue
        recording = Recording.from_file(path, recording_id=path.stem)
        recordings.append(recording)
        supervisions.append(SupervisionSegment(id=path.stem, recording_id=path.stem, start=0.0,
                                               duration=recording.duration, channel=0,
                                               text=" ".join(transcript.read_text().split())))
    return RecordingSet.from_recordings(recordings), SupervisionSet.from_segments(supervisions), problems


def prepare(corpus_dir: Path, parts: Dict[str, str]) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: no such directory (set corpus_dir in the recipe's config.yaml)")
    sets, problems = {}, []
    for split, part in parts.items():
        recordings, supervisions, found = read_part(corpus_dir / part)
        sets[split] = (recordings, supervisions)
        problems += found
    raise_problems(problems)
    return sets


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True, help="where the manifests are written")
    parser.add_argument("--recipe", required=True, help="the manifests' name prefix")
    for split in ("train", "dev", "test"):
        parser.add_argument(f"--{split}-part", default=split, help=f"the {split} folder (default {split})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [prepare] %(message)s")
    try:
        sets = prepare(args.corpus_dir, {"train": args.train_part, "dev": args.dev_part, "test": args.test_part})
    except CorpusError as e:
        raise SystemExit(f"error: {e}")
    write_manifests(sets, args.output_dir, args.recipe)


if __name__ == "__main__":
    main()
