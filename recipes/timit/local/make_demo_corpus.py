#!/usr/bin/env python3
"""Write a synthetic speech corpus laid out exactly like LDC's TIMIT (LDC93S1), for demos and tests.

Every utterance is synthesised by a Debian TTS voice (see :mod:`asrkit.demo.tts`), so its phone and word
alignments are exact. The layout is TIMIT's: ``TRAIN/`` and ``TEST/``, dialect folders ``DR1``..``DR8``,
speaker folders such as ``FCJF0``, and per utterance ``.WAV`` (NIST SPHERE, 16 kHz, 16 bit), ``.PHN``,
``.WRD`` and ``.TXT``. Every speaker reads the two dialect sentences SA1 and SA2, five SX sentences shared
with a few other speakers and three SI sentences of its own. TEST speakers carry the real dev and core-test
speaker IDs, which TIMIT preparation code (e.g. lhotse's ``prepare_timit``) uses to split TEST.

Voices can be held out (``--heldout-voices``): no TRAIN or TEST speaker is given one, and speakers of their own
(invented IDs) read a held-out test set in ``HELDOUT/``, beside TRAIN/ and TEST/, with sentences of their own.
It measures how a model does on voices it never heard; TIMIT tools that read TRAIN/ and TEST/ do not see it.

Usage:
    python recipes/timit/local/make_demo_corpus.py --out DIR --seed 0 --num-train-speakers 60 \\
        --num-dev-speakers 10 --num-test-speakers 24 --num-jobs 2 [--heldout-voices awb --num-heldout-speakers 8]
"""

import argparse
import itertools
import logging
import math
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

import soundfile as sf
from lhotse.recipes.timit import get_speakers  # the speaker lists that prepare_timit splits TEST by
from tqdm import tqdm

from asrkit.demo import sentences as text, tts
from asrkit.demo.speakers import run_tasks, speaking_style, stable_int, synthesis_batches
from asrkit.io import atomic_output
from prepare_timit import HELDOUT_PART  # the held-out set's folder, which the recipe's stage 1 reads

logger = logging.getLogger("make_demo_corpus")

#: The two dialect sentences that every TIMIT speaker reads.
SA_SENTENCES = (
    "She had your dark suit in greasy wash water all year.",
    "Don't ask me to carry an oily rag like that.",
)
NUM_SX_PER_SPEAKER = 5
NUM_SI_PER_SPEAKER = 3
#: In TIMIT each SX sentence is read by seven speakers.
SX_READERS = 7
#: TIMIT numbers its SX prompts from 3 and its SI prompts from 453.
FIRST_SX_NUMBER = 3
FIRST_SI_NUMBER = 453
NUM_DIALECTS = 8

#: The 24 core-test speakers with their dialect regions, ordered so that any prefix mixes sexes and regions.
CORE_TEST_SPEAKERS = (
    ("DR1", "MDAB0"), ("DR2", "FPAS0"), ("DR3", "MJMP0"), ("DR4", "FJLM0"),
    ("DR5", "MBPM0"), ("DR6", "FMGD0"), ("DR7", "MGRT0"), ("DR8", "FMLD0"),
    ("DR1", "FELC0"), ("DR2", "MTAS1"), ("DR3", "FPKT0"), ("DR4", "MLLL0"),
    ("DR5", "FNLP0"), ("DR6", "MCMJ0"), ("DR7", "FDHC0"), ("DR8", "MJLN0"),
    ("DR1", "MWBT0"), ("DR2", "MWEW0"), ("DR3", "MLNT0"), ("DR4", "MTLS0"),
    ("DR5", "MKLT0"), ("DR6", "MJDH0"), ("DR7", "MNJM0"), ("DR8", "MPAM0"),
)  # fmt: skip

@dataclass(frozen=True)
class Speaker:
    """A speaker of the corpus: where its folder goes and how it sounds."""

    split: str  # "TRAIN", "TEST" or HELDOUT_PART
    dialect: str  # "DR1".."DR8"
    speaker_id: str  # sex + three initials + digit, e.g. "FCJF0"
    style: tts.SpeakingStyle

    @property
    def sex(self) -> str:
        return self.speaker_id[0]


@dataclass(frozen=True)
class Utterance:
    """One prompt read by one speaker; ``name`` is TIMIT's file stem (``SA1``, ``SX37``, ``SI648``)."""

    speaker: Speaker
    name: str
    text: str
    seed: int

    def path_stem(self, root: Path) -> Path:
        """``root/TRAIN/DR1/FCJF0/SA1`` (add ``.WAV``, ``.PHN``, ...)."""
        return root / self.speaker.split / self.speaker.dialect / self.speaker.speaker_id / self.name


# ----------------------------------------------------------------------------------------------------------
# Planning: speakers, their voices and their sentences (cheap, deterministic for a seed)


def dev_speaker_ids(count: int) -> List[str]:
    """The first ``count`` of TIMIT's 50 dev speakers, females and males interleaved (upper case)."""
    dev = [s.upper() for s in get_speakers()[0]]
    females = [s for s in dev if s.startswith("F")]
    males = [s for s in dev if s.startswith("M")]
    mixed = [s for pair in itertools.zip_longest(females, males) for s in pair if s is not None]
    if count > len(mixed):
        raise ValueError(f"TIMIT has {len(mixed)} dev speakers, {count} requested")
    return mixed[:count]


def invented_speaker_ids(count: int, seed: int, taken: Set[str], group: str, sexes: str) -> List[str]:
    """``count`` invented TIMIT-style speaker IDs, none of them in ``taken``, their sexes cycling through ``sexes``
    (e.g. "MMF": one third female); ``group`` names the random stream, so each group draws its own."""
    rng = random.Random(stable_int(seed, group))
    ids: List[str] = []
    while len(ids) < count:
        sex = sexes[len(ids) % len(sexes)]
        candidate = sex + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "0"
        if candidate not in taken and candidate not in ids:
            ids.append(candidate)
    return ids


def plan_speakers(
    seed: int, num_train: int, num_dev: int, num_test: int, heldout_voices: Sequence[str] = (), num_heldout: int = 0
) -> List[Speaker]:
    """TRAIN speakers (invented IDs), then TEST speakers: real dev IDs, then real core-test IDs; then, if voices
    are held out, the held-out speakers (invented IDs, half female, in :data:`HELDOUT_PART`).

    Voices are dealt round-robin, the held-out voices to the held-out speakers and the others to the rest, so
    each group uses all of its voices once it has as many speakers.
    """
    if num_test > len(CORE_TEST_SPEAKERS):
        raise ValueError(f"TIMIT has {len(CORE_TEST_SPEAKERS)} core-test speakers, {num_test} requested")
    unknown = [v for v in heldout_voices if v not in tts.VOICES]
    if unknown:
        raise ValueError(f"held-out voices {unknown} are not known; known voices: {', '.join(tts.VOICES)}")
    voices = [v for v in tts.VOICES if v not in heldout_voices]
    heldout = [v for v in tts.VOICES if v in heldout_voices]  # VOICES' order: the order given changes nothing
    if not voices:
        raise ValueError("every voice is held out; keep at least one for the training, dev and test speakers")
    if bool(heldout) != (num_heldout > 0):
        raise ValueError(f"{len(heldout)} held-out voices for {num_heldout} held-out speakers: give both or neither")
    dev_ids = dev_speaker_ids(num_dev)
    taken = {s.upper() for group in get_speakers() for s in group}
    train_ids = invented_speaker_ids(num_train, seed, taken, "train-speakers", "MMF")
    heldout_ids = invented_speaker_ids(num_heldout, seed, taken | set(train_ids), "heldout-speakers", "FFMM")
    placed = (
        [("TRAIN", f"DR{i % NUM_DIALECTS + 1}", sid) for i, sid in enumerate(train_ids)]
        + [("TEST", f"DR{i % NUM_DIALECTS + 1}", sid) for i, sid in enumerate(dev_ids)]
        + [("TEST", dialect, sid) for dialect, sid in CORE_TEST_SPEAKERS[:num_test]]
    )
    return [
        Speaker(split, dialect, sid, speaking_style(sid, voices[(index + seed) % len(voices)], seed))
        for index, (split, dialect, sid) in enumerate(placed)
    ] + [
        Speaker(HELDOUT_PART, f"DR{i % NUM_DIALECTS + 1}", sid,
                speaking_style(sid, heldout[(i + seed) % len(heldout)], seed))
        for i, sid in enumerate(heldout_ids)
    ]


def _sx_pool_size(num_speakers: int) -> int:
    return max(NUM_SX_PER_SPEAKER, math.ceil(num_speakers * NUM_SX_PER_SPEAKER / SX_READERS))


def plan_utterances(speakers: Sequence[Speaker], seed: int) -> List[Utterance]:
    """Ten prompts per speaker: SA1, SA2, five SX shared within its split (TRAIN, TEST or HELDOUT), three unique SI.

    Each split gets its own SX pool, so no SX or SI text is read in two (as in TIMIT's core test).
    """
    splits = sorted({s.split for s in speakers}, reverse=True)  # TRAIN, TEST, HELDOUT
    members = {split: [s for s in speakers if s.split == split] for split in splits}
    pool_sizes = {split: _sx_pool_size(len(members[split])) for split in splits}
    num_sentences = sum(pool_sizes.values()) + NUM_SI_PER_SPEAKER * len(speakers)
    sentences = text.select_sentences(num_sentences, seed, exclude=SA_SENTENCES)

    # sentences = [TRAIN's SX pool, TEST's SX pool, (HELDOUT's SX pool,) all SI sentences]
    sx_offset = dict(zip(splits, itertools.accumulate((pool_sizes[s] for s in splits), initial=0)))
    si_sentences = iter(enumerate(sentences[sum(pool_sizes.values()) :]))

    utterances = []
    for split in splits:
        for rank, speaker in enumerate(members[split]):
            prompts: List[Tuple[str, str]] = [(f"SA{i + 1}", s) for i, s in enumerate(SA_SENTENCES)]
            for j in range(NUM_SX_PER_SPEAKER):
                index = sx_offset[split] + (rank * NUM_SX_PER_SPEAKER + j) % pool_sizes[split]
                prompts.append((f"SX{FIRST_SX_NUMBER + index}", sentences[index]))
            for _ in range(NUM_SI_PER_SPEAKER):
                index, sentence = next(si_sentences)
                prompts.append((f"SI{FIRST_SI_NUMBER + index}", sentence))
            utterances += [
                Utterance(speaker, name, prompt, stable_int(seed, speaker.speaker_id, name))
                for name, prompt in prompts
            ]
    return utterances


# ----------------------------------------------------------------------------------------------------------
# Writing


def write_utterance(root: Path, utterance: Utterance, synthesis: tts.Synthesis) -> None:
    """Write the four TIMIT files of one utterance below ``root``."""
    stem = utterance.path_stem(root)
    stem.parent.mkdir(parents=True, exist_ok=True)
    sf.write(stem.with_suffix(".WAV"), synthesis.audio, tts.SAMPLE_RATE, format="NIST", subtype="PCM_16")
    stem.with_suffix(".PHN").write_text("".join(f"{s.start} {s.end} {s.label}\n" for s in synthesis.phones))
    stem.with_suffix(".WRD").write_text("".join(f"{s.start} {s.end} {s.label}\n" for s in synthesis.words))
    stem.with_suffix(".TXT").write_text(f"0 {len(synthesis.audio)} {utterance.text}\n")


@dataclass
class BatchReport:
    """What a batch wrote: utterance count, seconds of audio and how often each phone label occurs."""

    utterances: int
    audio_seconds: float
    label_counts: Counter


def synthesize_and_write(task: Tuple[Path, List[Utterance]]) -> BatchReport:
    """Synthesise one batch and write its files (runs in a worker process)."""
    root, batch = task
    requests = [tts.SynthesisRequest(u.text, u.speaker.style, u.seed) for u in batch]
    report = BatchReport(0, 0.0, Counter())
    for utterance, synthesis in zip(batch, tts.synthesize(requests)):
        write_utterance(root, utterance, synthesis)
        report.utterances += 1
        report.audio_seconds += len(synthesis.audio) / tts.SAMPLE_RATE
        report.label_counts.update(s.label for s in synthesis.phones)
    return report


def make_demo_timit(
    out_dir: Path,
    *,
    seed: int,
    num_train_speakers: int,
    num_dev_speakers: int,
    num_test_speakers: int,
    heldout_voices: Sequence[str] = (),
    num_heldout_speakers: int = 0,
    num_jobs: int = 1,
) -> None:
    """Write a TIMIT-layout demo corpus to ``out_dir`` (replacing it), byte-identical for the same arguments.

    The corpus is built in a temporary folder beside ``out_dir`` and renamed at the end, so an interrupted
    run leaves nothing that looks finished. ``num_jobs`` worker processes share the synthesis; the result
    does not depend on it. Each of the three speaker counts must be at least 1 (lhotse's preparation fails
    on an empty part); dev and test take the first of TIMIT's 50 dev and 24 core-test speakers. Held-out voices
    are read by ``num_heldout_speakers`` speakers of their own, in ``HELDOUT/``, and by no other speaker.
    """
    for name, count in [("train", num_train_speakers), ("dev", num_dev_speakers), ("test", num_test_speakers)]:
        if count < 1:
            raise ValueError(f"need at least one {name} speaker, got {count}")
    started = time.perf_counter()
    speakers = plan_speakers(seed, num_train_speakers, num_dev_speakers, num_test_speakers, heldout_voices,
                             num_heldout_speakers)
    tts.check_voices({s.style.voice for s in speakers})
    utterances = plan_utterances(speakers, seed)
    batches = synthesis_batches(utterances)
    logger.info(
        "synthesising %d utterances of %d train, %d dev, %d test and %d held-out speakers for %s with %d job(s)",
        len(utterances), num_train_speakers, num_dev_speakers, num_test_speakers, num_heldout_speakers, out_dir,
        num_jobs,
    )  # fmt: skip

    total = BatchReport(0, 0.0, Counter())
    with atomic_output(out_dir) as tmp_dir:
        tmp_dir.mkdir()
        tasks = [(tmp_dir, batch) for batch in batches]
        with tqdm(total=len(utterances), unit="utt", desc="demo TIMIT") as progress:
            for report in run_tasks(synthesize_and_write, tasks, num_jobs):
                total.utterances += report.utterances
                total.audio_seconds += report.audio_seconds
                total.label_counts.update(report.label_counts)
                progress.update(report.utterances)

    elapsed = time.perf_counter() - started
    logger.info(
        "wrote %d utterances (%.1f min of audio) to %s in %.1f s (%.3f s per utterance)",
        total.utterances, total.audio_seconds / 60, out_dir, elapsed, elapsed / total.utterances,
    )  # fmt: skip
    logger.info("%d of the 61 TIMIT labels occur: %s", len(total.label_counts), " ".join(sorted(total.label_counts)))


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="corpus folder to create (replaced if present)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same corpus (byte for byte)")
    parser.add_argument("--num-train-speakers", type=int, default=60)
    parser.add_argument("--num-dev-speakers", type=int, default=10, help="at most 50")
    parser.add_argument("--num-test-speakers", type=int, default=24, help="at most 24 (the core test set)")
    parser.add_argument("--heldout-voices", nargs="+", default=[], choices=list(tts.VOICES), metavar="VOICE",
                        help=f"voices that only held-out speakers read with (of {', '.join(tts.VOICES)})")
    parser.add_argument("--num-heldout-speakers", type=int, default=0, help="speakers of the held-out voices")
    parser.add_argument("--num-jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    try:
        make_demo_timit(
            args.out,
            seed=args.seed,
            num_train_speakers=args.num_train_speakers,
            num_dev_speakers=args.num_dev_speakers,
            num_test_speakers=args.num_test_speakers,
            heldout_voices=args.heldout_voices,
            num_heldout_speakers=args.num_heldout_speakers,
            num_jobs=args.num_jobs,
        )
    except tts.MissingDependencyError as error:
        parser.exit(1, f"error: {error}\n")


if __name__ == "__main__":
    main()
