#!/usr/bin/env python3
"""Write a synthetic speech corpus laid out like LibriSpeech (openslr 12), for demos and tests.

The voices are the TIMIT demo's (see :mod:`asrkit.demo.speakers` and :mod:`asrkit.demo.tts`); the prompts are
sentences from :mod:`asrkit.demo.sentences`, each read by one speaker, none read in two splits. The layout is
LibriSpeech's: one folder per part (e.g. ``train-clean-100``), ``<speaker>/<chapter>/`` below it, per
utterance ``<speaker>-<chapter>-<utt>.flac`` (16 kHz, 16 bit), and per chapter ``<speaker>-<chapter>.trans.txt``
with ``<utterance-id> TRANSCRIPT`` lines in upper case, without punctuation (apostrophes kept).

Usage:
    python recipes/librispeech/local/make_demo_corpus.py --out DIR --seed 0 --num-train-speakers 60 \\
        --num-dev-speakers 8 --num-test-speakers 8 --utterances-per-speaker 10 --num-jobs 2
"""

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import soundfile as sf
from tqdm import tqdm

from asrkit.demo import sentences as text, tts
from asrkit.demo.speakers import run_tasks, speaking_style, stable_int, synthesis_batches
from asrkit.io import atomic_output

logger = logging.getLogger("make_demo_corpus")

#: LibriSpeech's part names, which the recipe's config maps the splits to
DEFAULT_PARTS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}
#: the first speaker number; each speaker reads one chapter
FIRST_SPEAKER = 100


@dataclass(frozen=True)
class Speaker:
    part: str  # e.g. "train-clean-100"
    speaker_id: str  # LibriSpeech's speaker number, e.g. "103"
    chapter_id: str
    sex: str  # "M" or "F": the voice's pitch shift follows it
    style: tts.SpeakingStyle


@dataclass(frozen=True)
class Utterance:
    speaker: Speaker
    index: int
    text: str
    seed: int

    @property
    def utterance_id(self) -> str:
        return f"{self.speaker.speaker_id}-{self.speaker.chapter_id}-{self.index:04d}"

    @property
    def transcript(self) -> str:
        """The LibriSpeech transcript: upper-case words, no punctuation."""
        return " ".join(text.sentence_words(self.text)).upper()


def plan(seed: int, counts: Dict[str, int], parts: Dict[str, str], per_speaker: int) -> List[Utterance]:
    """The speakers of each split (voices dealt round-robin, sexes alternating) and their distinct sentences."""
    utterances, number = [], FIRST_SPEAKER
    voices = list(tts.VOICES)
    speakers = []
    for split in ("train", "dev", "test"):
        for _ in range(counts[split]):
            sex = "F" if number % 2 else "M"
            # speaking_style reads the sex from the first letter of the id it is given
            style = speaking_style(f"{sex}{number}", voices[(number + seed) % len(voices)], seed)
            speakers.append(Speaker(parts[split], str(number), str(10 * number + 1), sex, style))
            number += 1
    sentences = iter(text.select_sentences(len(speakers) * per_speaker, seed))
    for speaker in speakers:
        for index in range(per_speaker):
            utterances.append(Utterance(speaker, index, next(sentences), stable_int(seed, speaker.speaker_id, index)))
    return utterances


def synthesize_and_write(task: Tuple[Path, List[Utterance]]) -> Tuple[int, float]:
    """Synthesise one batch and write its FLAC files (runs in a worker); returns (utterances, seconds)."""
    root, batch = task
    seconds = 0.0
    requests = [tts.SynthesisRequest(u.text, u.speaker.style, u.seed) for u in batch]
    for utterance, synthesis in zip(batch, tts.synthesize(requests)):
        chapter_dir = root / utterance.speaker.part / utterance.speaker.speaker_id / utterance.speaker.chapter_id
        chapter_dir.mkdir(parents=True, exist_ok=True)
        sf.write(chapter_dir / f"{utterance.utterance_id}.flac", synthesis.audio, tts.SAMPLE_RATE, format="FLAC",
                 subtype="PCM_16")
        seconds += len(synthesis.audio) / tts.SAMPLE_RATE
    return len(batch), seconds


def write_transcripts(root: Path, utterances: Sequence[Utterance]) -> None:
    """One ``<speaker>-<chapter>.trans.txt`` per chapter, utterances in order."""
    chapters: Dict[Path, List[str]] = {}
    for u in utterances:
        chapter_dir = root / u.speaker.part / u.speaker.speaker_id / u.speaker.chapter_id
        chapters.setdefault(chapter_dir / f"{u.speaker.speaker_id}-{u.speaker.chapter_id}.trans.txt", []).append(
            f"{u.utterance_id} {u.transcript}\n")
    for path, lines in chapters.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(lines))


def make_demo_librispeech(out_dir: Path, *, seed: int, counts: Dict[str, int], per_speaker: int,
                          parts: Dict[str, str] = DEFAULT_PARTS, num_jobs: int = 1) -> None:
    """Write a LibriSpeech-layout corpus to ``out_dir`` (replacing it), the same for the same arguments.

    Built in a temporary folder beside ``out_dir`` and renamed at the end; ``num_jobs`` does not change it.
    """
    for split, count in counts.items():
        if count < 1:
            raise ValueError(f"need at least one {split} speaker, got {count}")
    started = time.perf_counter()
    utterances = plan(seed, counts, parts, per_speaker)
    tts.check_voices({u.speaker.style.voice for u in utterances})
    logger.info("synthesising %d utterances of %s speakers for %s with %d job(s)", len(utterances),
                "/".join(str(counts[s]) for s in ("train", "dev", "test")), out_dir, num_jobs)
    total_seconds = 0.0
    with atomic_output(out_dir) as tmp_dir:
        tmp_dir.mkdir()
        write_transcripts(tmp_dir, utterances)
        tasks = [(tmp_dir, batch) for batch in synthesis_batches(utterances)]
        with tqdm(total=len(utterances), unit="utt", desc="demo LibriSpeech") as progress:
            for count, seconds in run_tasks(synthesize_and_write, tasks, num_jobs):
                total_seconds += seconds
                progress.update(count)
    logger.info("wrote %d utterances (%.1f min of audio) to %s in %.1f s", len(utterances), total_seconds / 60,
                out_dir, time.perf_counter() - started)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="corpus folder to create (replaced if present)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    parser.add_argument("--num-train-speakers", type=int, default=60)
    parser.add_argument("--num-dev-speakers", type=int, default=8)
    parser.add_argument("--num-test-speakers", type=int, default=8)
    parser.add_argument("--utterances-per-speaker", type=int, default=10)
    for split, part in DEFAULT_PARTS.items():
        parser.add_argument(f"--{split}-part", default=part, help=f"folder of the {split} split (default {part})")
    parser.add_argument("--num-jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    counts = {"train": args.num_train_speakers, "dev": args.num_dev_speakers, "test": args.num_test_speakers}
    parts = {"train": args.train_part, "dev": args.dev_part, "test": args.test_part}
    try:
        make_demo_librispeech(args.out, seed=args.seed, counts=counts, per_speaker=args.utterances_per_speaker,
                              parts=parts, num_jobs=args.num_jobs)
    except tts.MissingDependencyError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
