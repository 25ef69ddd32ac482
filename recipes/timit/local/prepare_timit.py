#!/usr/bin/env python3
"""Stage 1 of the TIMIT recipe: lhotse manifests for the standard train / dev / core-test sets.

lhotse's ``prepare_timit`` expects ``<corpus>/data/TRAIN`` with upper-case names, keeps the SA sentences
(4620 / 500 / 240 utterances) and skips files it cannot find with only a warning. Here we

1. find TRAIN/ and TEST/ in an LDC copy, upper- or lower-case, with or without a ``data/`` folder;
2. check every utterance we keep (all four files present, 16 kHz mono audio that reads, a non-empty
   transcript, known phone labels in order and inside the audio) and stop with the file and the problem;
3. hand lhotse a tree of symbolic links to the non-SA utterances, so nothing is copied;
4. point the recordings back at the real files, drop ``q`` from the phone alignment (as Kaldi does) and
   write the standard sets: train 3696 utterances / 462 speakers, dev 400 / 50, core test 192 / 24.
"""

import argparse
import logging
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import soundfile
from lhotse import RecordingSet, SupervisionSet
from lhotse.recipes.timit import get_speakers, prepare_timit

from asrkit.data.corpus import CorpusError, check_audio, raise_problems, write_manifests
from asrkit.data.phones import DROPPED_PHONES, TIMIT_LABELS

TIMIT_FILE_TYPES = (".WAV", ".PHN", ".WRD", ".TXT")
#: lhotse's split names -> ours
SPLITS = {"TRAIN": "train", "DEV": "dev", "TEST": "test"}
#: (utterances, speakers) of the standard sets on the full LDC corpus
STANDARD_SET_SIZES = {"train": (3696, 462), "dev": (400, 50), "test": (192, 24)}


def find_timit_parts(corpus_dir: Path) -> Dict[str, Path]:
    """Locate the TRAIN and TEST folders of a TIMIT copy, whatever their case, with or without ``data/``."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: no such directory (set corpus_dir in the recipe's config.yaml)")
    for root in (corpus_dir, *[d for d in corpus_dir.iterdir() if d.name.lower() == "data" and d.is_dir()]):
        parts = {d.name.upper(): d for d in root.iterdir() if d.is_dir() and d.name.upper() in ("TRAIN", "TEST")}
        if len(parts) == 2:
            return parts
    missing = "TRAIN and TEST" if not any(p.name.upper() in ("TRAIN", "TEST") for p in corpus_dir.iterdir()) else (
        "TRAIN" if not any(p.name.upper() == "TRAIN" for p in corpus_dir.iterdir()) else "TEST")
    raise CorpusError(f"{corpus_dir}: not a TIMIT copy: no {missing} folder here or in {corpus_dir}/data")


def list_utterances(part_dir: Path) -> List[Tuple[str, str, str, Dict[str, Path]]]:
    """(dialect region, speaker, utterance, {".WAV": path, ...}) for every non-SA utterance of a part.

    Names are upper-cased; the SA dialect sentences are dropped, as in every standard TIMIT set.
    """
    utterances = []
    for dialect_dir in sorted(d for d in part_dir.iterdir() if d.is_dir()):
        for speaker_dir in sorted(d for d in dialect_dir.iterdir() if d.is_dir()):
            files: Dict[str, Dict[str, Path]] = {}
            for f in speaker_dir.iterdir():
                stem, suffix = f.stem.upper(), f.suffix.upper()
                if suffix in TIMIT_FILE_TYPES and not stem.startswith("SA"):
                    files.setdefault(stem, {})[suffix] = f
            for stem in sorted(files):
                utterances.append((dialect_dir.name.upper(), speaker_dir.name.upper(), stem, files[stem]))
    return utterances


def check_utterance(utterance_id: str, files: Dict[str, Path]) -> List[str]:
    """Every problem with one utterance, each naming the file; an empty list when it is usable."""
    missing = [s for s in TIMIT_FILE_TYPES if s not in files]
    if missing:
        some = next(iter(files.values()))
        return [f"{some.with_suffix(s)}: missing {s} file for utterance {utterance_id}" for s in missing]
    wav, phn, txt = files[".WAV"], files[".PHN"], files[".TXT"]
    problems = check_audio(wav)
    if problems and "unreadable" in problems[0]:
        return problems
    if not txt.read_text(errors="replace").split()[2:]:
        problems.append(f"{txt}: empty transcript")
    problems += check_phone_segments(phn, soundfile.info(str(wav)).frames)
    return problems


def check_phone_segments(phn: Path, num_samples: int) -> List[str]:
    """Check a .PHN file: ``start end label`` lines, known labels, in order, inside ``num_samples``."""
    lines = [line for line in phn.read_text(errors="replace").splitlines() if line.strip()]
    if not lines:
        return [f"{phn}: empty phone transcription"]
    previous_end = 0
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            return [f"{phn}:{number}: expected 'start_sample end_sample phone', got {line!r}"]
        start, end, label = int(fields[0]), int(fields[1]), fields[2]
        if label not in TIMIT_LABELS:
            return [f"{phn}:{number}: unknown phone label {label!r}"]
        if end <= start:
            return [f"{phn}:{number}: segment ends ({end}) before it starts ({start})"]
        if start < previous_end:
            return [f"{phn}:{number}: segment starts at {start}, before the previous one ends ({previous_end})"]
        if end > num_samples:
            return [f"{phn}:{number}: segment ends at sample {end}, past the end of the audio ({num_samples})"]
        previous_end = end
    return []


def _check(args):
    return check_utterance(*args)


def check_corpus(parts: Dict[str, Path], num_jobs: int) -> Dict[str, list]:
    """List and check every kept utterance; raise :class:`CorpusError` naming each bad file."""
    listed = {name: list_utterances(path) for name, path in parts.items()}
    for name, utterances in listed.items():
        if not utterances:
            raise CorpusError(f"{parts[name]}: no utterances found")
    jobs = [(f"{spk}-{utt}", files) for utts in listed.values() for _, spk, utt, files in utts]
    with ProcessPoolExecutor(num_jobs) as pool:
        problems = [p for result in pool.map(_check, jobs, chunksize=64) for p in result]
    raise_problems(problems)
    return listed


def check_sets_not_empty(listed: Dict[str, list], parts: Dict[str, Path]) -> None:
    """TEST/ must hold some of TIMIT's dev and core-test speakers, which lhotse splits it by; lhotse itself
    only fails an assertion ("No recordings left") without saying which set is empty or why."""
    present = {speaker.lower() for _, speaker, _, _ in listed["TEST"]}
    for (split, who), speakers in zip((("dev", "dev"), ("test", "core-test")), get_speakers()):
        if not present & set(speakers):
            examples = ", ".join(s.upper() for s in sorted(speakers)[:3])
            raise CorpusError(f"{parts['TEST']}: the {split} set is empty: none of TIMIT's {len(speakers)} {who} "
                              f"speakers ({examples}, ...) has a folder here")


def link_lhotse_view(listed: Dict[str, list], view_dir: Path) -> None:
    """The layout lhotse expects (``data/TRAIN/DR1/FCJF0/SI1027.WAV``), as links to the real files."""
    for part, utterances in listed.items():
        for dialect, speaker, utt, files in utterances:
            speaker_dir = view_dir / "data" / part / dialect / speaker
            speaker_dir.mkdir(parents=True, exist_ok=True)
            for suffix, path in files.items():
                os.symlink(path.resolve(), speaker_dir / f"{utt}{suffix}")


def standard_sets(corpus_dir: Path, num_jobs: int = 1) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    """Checked, sorted lhotse manifests of the standard TIMIT sets (SA removed, q dropped), by split."""
    parts = find_timit_parts(corpus_dir)
    listed = check_corpus(parts, num_jobs)
    check_sets_not_empty(listed, parts)
    with tempfile.TemporaryDirectory(prefix="timit-view-") as view:
        link_lhotse_view(listed, Path(view))
        manifests = prepare_timit(view, output_dir=None, num_phones=60, num_jobs=num_jobs)
        # Inside the with-block: the links must still exist while we resolve them.
        sets = {}
        for part, split in SPLITS.items():
            recordings = manifests[part]["recordings"]
            supervisions = manifests[part]["supervisions"]
            if len(recordings) == 0:
                raise CorpusError(
                    f"{corpus_dir}: the {split} set is empty: TIMIT's {split} speakers were not found in TEST/"
                )
            for recording in recordings:
                recording.sources[0].source = os.path.realpath(recording.sources[0].source)
            supervisions = SupervisionSet.from_segments(
                s.with_alignment("phone", [a for a in s.alignment["phone"] if a.symbol not in DROPPED_PHONES])
                for s in supervisions
            )
            sets[split] = (
                RecordingSet.from_recordings(sorted(recordings, key=lambda r: r.id)),
                SupervisionSet.from_segments(sorted(supervisions, key=lambda s: s.id)),
            )
    return sets


def set_sizes(supervisions: SupervisionSet) -> Tuple[int, int]:
    """(utterances, speakers) of a set."""
    return len(supervisions), len({s.speaker for s in supervisions})


def check_standard_sizes(sets: Dict[str, Tuple[RecordingSet, SupervisionSet]], corpus_dir: Path) -> None:
    """On the full LDC corpus the sets must have the published sizes; anything else means a damaged copy."""
    for split, (_, supervisions) in sets.items():
        found, expected = set_sizes(supervisions), STANDARD_SET_SIZES[split]
        if found != expected:
            raise CorpusError(
                f"{corpus_dir}: the {split} set has {found[0]} utterances from {found[1]} speakers, "
                f"TIMIT's has {expected[0]} from {expected[1]}: is the copy complete?"
            )


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-dir", type=Path, required=True, help="TIMIT copy (holding TRAIN/ and TEST/)")
    parser.add_argument("--output-dir", type=Path, required=True, help="where the manifests are written")
    parser.add_argument("--num-jobs", type=int, default=1, help="parallel processes (default: 1)")
    parser.add_argument("--standard-sizes", action="store_true",
                        help="require the published set sizes (use on the full LDC corpus)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [prepare_timit] %(message)s")
    try:
        sets = standard_sets(args.corpus_dir, args.num_jobs)
        if args.standard_sizes:
            check_standard_sizes(sets, args.corpus_dir)
    except CorpusError as e:
        raise SystemExit(f"error: {e}")
    write_manifests(sets, args.output_dir, "timit")


if __name__ == "__main__":
    main()
