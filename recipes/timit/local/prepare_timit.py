#!/usr/bin/env python3
"""Stage 1 of the TIMIT recipe: lhotse manifests for the standard train / dev / core-test sets (and a held-out set).

lhotse's ``prepare_timit`` expects ``<corpus>/data/TRAIN`` with upper-case names, keeps the SA sentences
(4620 / 500 / 240 utterances) and skips files it cannot find with only a warning. Here we

1. find TRAIN/ and TEST/ in an LDC copy, upper- or lower-case, at the top, in ``data/`` (the Kaggle copy, whose
   RIFF copies ``X.WAV.wav`` are only compared with the SPHERE ``X.WAV`` files read, and whose CSV files are
   ignored) or in ``TIMIT/`` (the LDC disc);
2. check every utterance we keep (all four files present, regular files, one of each even ignoring case,
   16 kHz mono audio that reads and holds no NaN, a non-empty transcript, .PHN/.WRD/.TXT lines as lhotse
   splits them, known phone labels in order and inside the audio) and every speaker (one folder), and stop
   with the file and the problem;
3. hand lhotse a tree of symbolic links to the non-SA utterances, so nothing is copied;
4. point the recordings back at the real files and write the standard sets: train 3696 utterances / 462
   speakers, dev 400 / 50, core test 192 / 24. The phone alignments keep the corpus's 61 labels, ``q``
   included: the units (``units.phone_set``) choose the training labels, so that changing them needs no new
   manifests.

A ``HELDOUT/`` folder beside TRAIN/ and TEST/ (laid out like TEST/; the demo corpus writes one when voices are
held out) becomes the held-out set, split ``heldout``, made as lhotse makes the others. LDC's TIMIT has none, so
on it nothing changes; its speakers must have no folder in TRAIN/ or TEST/ (checked, as for every speaker).
"""

import argparse
import logging
import os
import re
import tempfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from itertools import repeat
from typing import Any, Dict, List, Optional, Tuple

import soundfile
from lhotse import RecordingSet, SupervisionSet, fix_manifests
from lhotse.recipes.timit import get_speakers, prepare_recording, prepare_timit

from asrkit.data.corpus import CorpusError, check_audio, check_regular_file, raise_problems, write_manifests
from asrkit.data.phones import TIMIT_LABELS

TIMIT_FILE_TYPES = (".WAV", ".PHN", ".WRD", ".TXT")
#: The RIFF copy of ``X.WAV`` (NIST SPHERE) that the Kaggle copy of TIMIT keeps beside it as ``X.WAV.wav``, by its
#: upper-cased double suffix: compared with the SPHERE file, which is the one used (as lhotse's ``*.WAV`` glob does)
RIFF_COPY = ".WAV.WAV"
#: folders of a TIMIT copy that may hold TRAIN/ and TEST/: the Kaggle copy's data/, the LDC disc's TIMIT/
CORPUS_SUBFOLDERS = ("DATA", "TIMIT")
#: the optional folder of the held-out set, beside TRAIN and TEST
HELDOUT_PART = "HELDOUT"
#: lhotse's split names (and the held-out folder's) -> ours
SPLITS = {"TRAIN": "train", "DEV": "dev", "TEST": "test", HELDOUT_PART: "heldout"}
#: (utterances, speakers) of the standard sets on the full LDC corpus
STANDARD_SET_SIZES = {"train": (3696, 462), "dev": (400, 50), "test": (192, 24)}
#: a line of a .PHN, .WRD or .TXT file as lhotse reads it: fields separated by single spaces
SINGLE_SPACED_FIELDS = re.compile(r"\S+(?: \S+)*")


def timit_parts_in(folder: Path) -> Dict[str, Path]:
    """The TRAIN, TEST and HELDOUT folders directly inside ``folder``, by upper-case name (none in a folder that
    cannot be listed)."""
    try:
        return {d.name.upper(): d for d in folder.iterdir()
                if d.is_dir() and d.name.upper() in ("TRAIN", "TEST", HELDOUT_PART)}
    except OSError:
        return {}


def find_timit_parts(corpus_dir: Path) -> Dict[str, Path]:
    """Locate the TRAIN and TEST folders of a TIMIT copy, whatever their case: in ``corpus_dir``, in its ``data/``
    (the Kaggle copy) or in its ``TIMIT/`` (the LDC disc); and the HELDOUT folder beside them if there is one.

    When there are none, the error names the folders looked in, and a folder deeper down that has them."""
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: no such directory (set corpus_dir in the recipe's config.yaml)")
    roots = [corpus_dir, *sorted(d for d in corpus_dir.iterdir() if d.name.upper() in CORPUS_SUBFOLDERS and d.is_dir())]
    found = {root: timit_parts_in(root) for root in roots}
    for parts in found.values():
        if {"TRAIN", "TEST"} <= parts.keys():
            return parts
    for root, parts in found.items():  # one of the two is there: name the other
        if parts.keys() & {"TRAIN", "TEST"}:
            present, missing = ("TRAIN", "TEST") if "TRAIN" in parts else ("TEST", "TRAIN")
            raise CorpusError(f"{corpus_dir}: not a TIMIT copy: no {missing} folder beside {parts[present]}")
    looked_in = ", ".join(str(root) for root in roots[1:])
    deeper = [d for d in sorted(corpus_dir.glob("*/*")) + sorted(corpus_dir.glob("*/*/*"))
              if d.is_dir() and {"TRAIN", "TEST"} <= timit_parts_in(d).keys()]
    raise CorpusError(f"{corpus_dir}: not a TIMIT copy: no TRAIN and TEST folder here"
                      + (f" or in {looked_in}" if looked_in else " (nor in a data/ or TIMIT/ folder)")
                      + (f"; {deeper[0]} has them: set corpus_dir to it" if deeper else ""))


def list_utterances(part_dir: Path) -> List[Tuple[str, str, str, Dict[str, Path]]]:
    """(dialect region, speaker, utterance, {".WAV": path, ...}) for every non-SA utterance of a part.

    Names are upper-cased; the SA dialect sentences are dropped, as in every standard TIMIT set. A RIFF copy
    ``X.WAV.wav`` (the Kaggle copy's) is listed under :data:`RIFF_COPY`, not as an utterance of its own. Two files of
    one utterance whose names differ only in case (``SX140.WAV`` and ``sx140.wav``, a copy made on a
    case-insensitive disk) raise :class:`CorpusError`: either could be the right one.
    """
    utterances, problems = [], []
    for dialect_dir in sorted(d for d in part_dir.iterdir() if d.is_dir()):
        for speaker_dir in sorted(d for d in dialect_dir.iterdir() if d.is_dir()):
            files: Dict[str, Dict[str, Path]] = {}
            for f in sorted(speaker_dir.iterdir()):
                name = f.name.upper()
                stem, suffix = (name[:-len(RIFF_COPY)], RIFF_COPY) if name.endswith(RIFF_COPY) else (
                    f.stem.upper(), f.suffix.upper())
                if suffix in (*TIMIT_FILE_TYPES, RIFF_COPY) and not stem.startswith("SA"):
                    first = files.setdefault(stem, {}).setdefault(suffix, f)
                    if first != f:
                        problems.append(f"{first}, {f}: two {suffix} files of utterance {speaker_dir.name.upper()}-"
                                        f"{stem} (names that differ only in case); keep one")
            for stem in sorted(files):
                utterances.append((dialect_dir.name.upper(), speaker_dir.name.upper(), stem, files[stem]))
    raise_problems(problems)
    return utterances


def check_one_folder_per_speaker(listed: Dict[str, list]) -> None:
    """Raise :class:`CorpusError` naming a speaker with more than one folder: in two dialect regions, in TRAIN
    and TEST, or as ``FCEO0`` and ``fceo0`` (lhotse names recordings by speaker and utterance, so their files
    would collide, or a speaker would be both trained and tested on)."""
    folders: Dict[str, set] = defaultdict(set)
    for utterances in listed.values():
        for _, speaker, _, files in utterances:
            folders[speaker].add(next(iter(files.values())).parent)
    raise_problems([f"speaker {speaker} has {len(dirs)} folders: {', '.join(str(d) for d in sorted(dirs))} "
                    f"(a TIMIT speaker has one; remove the copies)"
                    for speaker, dirs in sorted(folders.items()) if len(dirs) > 1])


def check_utterance(utterance_id: str, files: Dict[str, Path]) -> List[str]:
    """Every problem with one utterance, each naming the file; an empty list when it is usable."""
    missing = [s for s in TIMIT_FILE_TYPES if s not in files]
    if missing:
        some = next((path for suffix, path in files.items() if suffix != RIFF_COPY), None) \
            or files[RIFF_COPY].with_suffix("")
        only_riff = f" (only its RIFF copy {files[RIFF_COPY]} is here: the SPHERE file is the one read)" \
            if RIFF_COPY in files else ""
        return [f"{some.with_suffix(s)}: missing {s} file for utterance {utterance_id}"
                + (only_riff if s == ".WAV" else "") for s in missing]
    problems = [problem for path in files.values() for problem in check_regular_file(path)]
    if problems:  # opening them could hang (a FIFO) or fail with a bare traceback (a directory)
        return problems
    wav, phn, wrd, txt = files[".WAV"], files[".PHN"], files[".WRD"], files[".TXT"]
    problems = check_audio(wav)
    if problems and "unreadable" in problems[0]:
        return problems
    info = soundfile.info(str(wav))
    if RIFF_COPY in files:
        problems += check_riff_copy(files[RIFF_COPY], wav, info)
    problems += check_transcript(txt)
    problems += check_timed_labels(phn, info.frames, "phone")
    problems += check_timed_labels(wrd, info.frames, "word")
    return problems


def check_riff_copy(copy: Path, wav: Path, wav_info: Any) -> List[str]:
    """The RIFF copy ``X.WAV.wav`` must hold as many samples, at the same rate, as the SPHERE ``X.WAV`` (read
    instead of it): a difference means one of the two is damaged, and the copy may be the one that is right."""
    try:
        copy_info = soundfile.info(str(copy))
    except Exception as e:
        return [f"{copy}: unreadable audio ({e})"]
    if (copy_info.frames, copy_info.samplerate) != (wav_info.frames, wav_info.samplerate):
        return [f"{copy}: {copy_info.frames} samples at {copy_info.samplerate} Hz, but {wav}, the SPHERE file that "
                f"is read, holds {wav_info.frames} at {wav_info.samplerate} Hz: one of the two is damaged"]
    return []


def read_timit_lines(path: Path) -> Tuple[List[List[str]], List[str]]:
    """The fields of each line of a .PHN, .WRD or .TXT file, split as lhotse's TIMIT reader splits them, and
    the first problem that reader would trip on or silently misread (then no fields).

    lhotse splits each line on single spaces: a blank line, a tab or two spaces between fields make it fail
    with a bare ValueError on a .PHN or .WRD, and drop the first words of a .TXT. So lines must be fields
    separated by single spaces, in UTF-8; Windows line ends are fine.
    """
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        return [], [f"{path}: not a text file ({e.reason} at byte {e.start})"]
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":  # the newline that ends the last line
        lines.pop()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            return [], [f"{path}:{number}: blank line"]
        if not SINGLE_SPACED_FIELDS.fullmatch(line):
            return [], [f"{path}:{number}: expected fields separated by single spaces, got {line!r}"]
    return [line.split(" ") for line in lines], []


def check_transcript(txt: Path) -> List[str]:
    """Check a .TXT file: one line ``start_sample end_sample words...``."""
    lines, problems = read_timit_lines(txt)
    if problems:
        return problems
    if len(lines) > 1:
        return [f"{txt}:2: a second line (a transcript is one line, 'start_sample end_sample words...')"]
    if lines and not (len(lines[0]) >= 2 and lines[0][0].isdigit() and lines[0][1].isdigit()):
        return [f"{txt}:1: expected 'start_sample end_sample words...', got {' '.join(lines[0])!r}"]
    if not lines or len(lines[0]) == 2:
        return [f"{txt}: empty transcript"]
    return []


def check_timed_labels(path: Path, num_samples: int, kind: str) -> List[str]:
    """Check a .PHN (``kind="phone"``) or .WRD (``kind="word"``) file: ``start end label`` lines, inside
    ``num_samples``; phones must be known labels, in order, without overlaps (words may overlap, two words
    sharing a boundary phone, and leave gaps, the pauses)."""
    lines, problems = read_timit_lines(path)
    if problems:
        return problems
    if not lines:
        return [f"{path}: empty {kind} transcription"]
    previous_end = 0
    for number, fields in enumerate(lines, start=1):
        if len(fields) != 3 or not fields[0].isdigit() or not fields[1].isdigit():
            return [f"{path}:{number}: expected 'start_sample end_sample {kind}', got {' '.join(fields)!r}"]
        start, end, label = int(fields[0]), int(fields[1]), fields[2]
        if kind == "phone" and label not in TIMIT_LABELS:
            return [f"{path}:{number}: unknown phone label {label!r}"]
        if end <= start:
            return [f"{path}:{number}: segment ends ({end}) before it starts ({start})"]
        if kind == "phone" and start < previous_end:
            return [f"{path}:{number}: segment starts at {start}, before the previous one ends ({previous_end})"]
        if end > num_samples:
            return [f"{path}:{number}: segment ends at sample {end}, past the end of the audio ({num_samples})"]
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
    check_one_folder_per_speaker(listed)
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


def prepare_heldout(view_dir: Path, num_jobs: int) -> Dict[str, Any]:
    """Manifests of the lhotse view's ``data/HELDOUT`` (lhotse's prepare_timit reads only TRAIN and TEST), made
    by the function that makes each utterance of theirs, in the shape prepare_timit returns for a part."""
    wav_files = sorted(str(p) for p in (view_dir / "data" / HELDOUT_PART).glob("*/*/*.WAV"))
    with ProcessPoolExecutor(num_jobs) as pool:
        prepared = list(pool.map(prepare_recording, wav_files, repeat(60), repeat({}), chunksize=64))
    recordings, supervisions = fix_manifests(RecordingSet.from_recordings(r for r, _ in prepared),
                                             SupervisionSet.from_segments(s for _, s in prepared))
    return {"recordings": recordings, "supervisions": supervisions}


def link_lhotse_view(listed: Dict[str, list], view_dir: Path) -> None:
    """The layout lhotse expects (``data/TRAIN/DR1/FCJF0/SI1027.WAV``), as links to the real files."""
    for part, utterances in listed.items():
        for dialect, speaker, utt, files in utterances:
            speaker_dir = view_dir / "data" / part / dialect / speaker
            speaker_dir.mkdir(parents=True, exist_ok=True)
            for suffix in TIMIT_FILE_TYPES:  # the SPHERE .WAV, not its RIFF copy
                os.symlink(files[suffix].resolve(), speaker_dir / f"{utt}{suffix}")


def standard_sets(corpus_dir: Path, num_jobs: int = 1) -> Dict[str, Tuple[RecordingSet, SupervisionSet]]:
    """Checked, sorted lhotse manifests of the standard TIMIT sets (SA removed, all 61 labels kept), by split, and
    of the held-out set when the corpus has one."""
    parts = find_timit_parts(corpus_dir)
    listed = check_corpus(parts, num_jobs)
    check_sets_not_empty(listed, parts)
    with tempfile.TemporaryDirectory(prefix="timit-view-") as view:
        link_lhotse_view(listed, Path(view))
        # num_phones=60 is lhotse's "no folding": it keeps every label of the .PHN files, q included
        manifests = prepare_timit(view, output_dir=None, num_phones=60, num_jobs=num_jobs)
        if HELDOUT_PART in parts:
            manifests[HELDOUT_PART] = prepare_heldout(Path(view), num_jobs)
        # Inside the with-block: the links must still exist while we resolve them.
        sets = {}
        for part, split in SPLITS.items():
            if part not in manifests:  # no held-out set
                continue
            recordings = manifests[part]["recordings"]
            supervisions = manifests[part]["supervisions"]
            if len(recordings) == 0:
                raise CorpusError(
                    f"{corpus_dir}: the {split} set is empty: TIMIT's {split} speakers were not found in TEST/"
                )
            for recording in recordings:
                recording.sources[0].source = os.path.realpath(recording.sources[0].source)
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
    for split, expected in STANDARD_SET_SIZES.items():
        found = set_sizes(sets[split][1])
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
