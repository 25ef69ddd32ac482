#!/usr/bin/env python3
"""Stage 1 of the LibriSpeech recipe: lhotse manifests of the parts the config names for train, dev and test.

lhotse's ``prepare_librispeech`` skips an utterance whose audio is missing with only a warning, and fails with
a bare traceback on an empty transcript or unreadable audio. Here every part is checked first (each chapter
has its ``<speaker>-<chapter>.trans.txt``, each transcript line names an existing ``.flac`` of that chapter
and has words, each ``.flac`` has a transcript line, the audio reads and is 16 kHz mono) and a problem stops
the stage naming the file; then lhotse reads the parts and the manifests are written as
``librispeech_{recordings,supervisions}_{train,dev,test}.jsonl.gz``.
"""

import argparse
import logging
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional

from lhotse import RecordingSet, SupervisionSet
from lhotse.recipes.librispeech import prepare_librispeech

from asrkit.data.corpus import CorpusError, check_audio, raise_problems, write_manifests


def check_chapter(chapter_dir: Path) -> List[str]:
    """Problems of one ``<part>/<speaker>/<chapter>`` folder, each naming the file."""
    speaker, chapter = chapter_dir.parent.name, chapter_dir.name
    trans = chapter_dir / f"{speaker}-{chapter}.trans.txt"
    flacs = {p.stem: p for p in chapter_dir.glob("*.flac")}
    if not trans.is_file():
        return [f"{trans}: missing transcript file for the {len(flacs)} .flac files of {chapter_dir}"]
    problems, listed = [], set()
    for number, line in enumerate(trans.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        utterance, _, words = line.strip().partition(" ")
        if not utterance.startswith(f"{speaker}-{chapter}-"):
            problems.append(f"{trans}:{number}: utterance {utterance!r} is not of speaker {speaker}, chapter {chapter}")
        elif utterance not in flacs:
            problems.append(f"{trans}:{number}: transcript of {utterance}, but {chapter_dir / utterance}.flac "
                            f"does not exist")
        elif not words.strip():
            problems.append(f"{trans}:{number}: empty transcript for {utterance}")
        else:
            problems += check_audio(flacs[utterance])
        listed.add(utterance)
    problems += [f"{flacs[stem]}: no line in {trans}" for stem in sorted(set(flacs) - listed)]
    return problems


def check_parts(corpus_dir: Path, parts: Dict[str, str], num_jobs: int) -> None:
    """Check every chapter of the parts; raise :class:`CorpusError` naming each bad file."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: no such directory (set corpus_dir in the recipe's config.yaml)")
    chapters = []
    for split, part in parts.items():
        part_dir = corpus_dir / part
        if not part_dir.is_dir():
            raise CorpusError(f"{part_dir}: no such folder for the {split} split (corpus.parts.{split} in the config)")
        found = sorted(d for d in part_dir.glob("*/*") if d.is_dir())
        if not found:
            raise CorpusError(f"{part_dir}: no <speaker>/<chapter> folders")
        chapters += found
    with ProcessPoolExecutor(num_jobs) as pool:
        raise_problems([p for result in pool.map(check_chapter, chapters, chunksize=16) for p in result])


def librispeech_sets(corpus_dir: Path, parts: Dict[str, str], num_jobs: int = 1) -> Dict[str, tuple]:
    """Checked, sorted (recordings, supervisions) of each split."""
    check_parts(corpus_dir, parts, num_jobs)
    manifests = prepare_librispeech(corpus_dir, dataset_parts=sorted(set(parts.values())), num_jobs=num_jobs)
    return {split: (RecordingSet.from_recordings(sorted(manifests[part]["recordings"], key=lambda r: r.id)),
                    SupervisionSet.from_segments(sorted(manifests[part]["supervisions"], key=lambda s: s.id)))
            for split, part in parts.items()}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, required=True, help="the folder holding the LibriSpeech parts")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the manifests are written")
    parser.add_argument("--train-part", default="train-clean-100", help="default train-clean-100")
    parser.add_argument("--dev-part", default="dev-clean", help="default dev-clean")
    parser.add_argument("--test-part", default="test-clean", help="default test-clean")
    parser.add_argument("--num-jobs", type=int, default=1, help="parallel processes (default: 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [prepare_librispeech] %(message)s")
    parts = {"train": args.train_part, "dev": args.dev_part, "test": args.test_part}
    try:
        sets = librispeech_sets(args.corpus_dir, parts, args.num_jobs)
    except CorpusError as e:
        raise SystemExit(f"error: {e}")
    write_manifests(sets, args.output_dir, "librispeech")


if __name__ == "__main__":
    main()
