"""The synthetic TIMIT-layout demo corpus: layout, file formats, alignments, determinism, lhotse compatibility."""

import re
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import soundfile as sf
from lhotse.recipes.timit import get_speakers, prepare_timit

from asrkit.demo import sentences as text, tts
from asrkit.data.phones import TIMIT_LABELS

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "recipes" / "timit" / "local"))
import make_demo_corpus  # noqa: E402
from prepare_timit import standard_sets  # noqa: E402

SEED = 0
SIZES = dict(num_train_speakers=3, num_dev_speakers=2, num_test_speakers=2)
#: one held-out speaker, of a flite voice (fast)
HELDOUT = dict(heldout_voices=["awb"], num_heldout_speakers=1)
UTTERANCE_STEMS = 10
SUFFIXES = (".WAV", ".PHN", ".WRD", ".TXT")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "timit"
    make_demo_corpus.make_demo_timit(out, seed=SEED, num_jobs=1, **SIZES, **HELDOUT)
    return out


def _speaker_dirs(corpus: Path) -> List[Path]:
    return sorted(corpus.glob("*/DR*/*"))


def _read_segments(path: Path) -> List[Tuple[int, int, str]]:
    segments = []
    for line in path.read_text().splitlines():
        start, end, label = line.split(" ")
        segments.append((int(start), int(end), label))
    return segments


def _file_bytes(root: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_speaker_ids(corpus: Path) -> None:
    assert sorted(p.name for p in corpus.iterdir()) == ["HELDOUT", "TEST", "TRAIN"]
    dev_ids, test_ids = ({s.upper() for s in group} for group in get_speakers())
    speakers = _speaker_dirs(corpus)
    assert len(speakers) == sum(SIZES.values()) + HELDOUT["num_heldout_speakers"]
    for speaker in speakers:
        assert re.fullmatch(r"DR[1-8]", speaker.parent.name)
        assert re.fullmatch(r"[FM][A-Z]{3}[0-9]", speaker.name)
        stems = {p.name[: -len(p.suffix)] for p in speaker.iterdir()}
        assert len(stems) == UTTERANCE_STEMS
        assert {"SA1", "SA2"} <= stems
        assert sum(s.startswith("SX") for s in stems) == 5 and sum(s.startswith("SI") for s in stems) == 3
        assert sorted(p.name for p in speaker.iterdir()) == sorted(s + x for s in stems for x in SUFFIXES)
    train = {p.name for p in corpus.glob("TRAIN/*/*")}
    test = {p.name for p in corpus.glob("TEST/*/*")}
    assert not train & (dev_ids | test_ids)
    assert len(test & dev_ids) == SIZES["num_dev_speakers"] and len(test & test_ids) == SIZES["num_test_speakers"]
    assert {sid[0] for sid in test & test_ids} == {"F", "M"}  # a small core test still mixes sexes
    core_dialects = dict((sid, dr) for dr, sid in make_demo_corpus.CORE_TEST_SPEAKERS)
    assert set(core_dialects) == test_ids
    for sid in test & test_ids:
        assert (corpus / "TEST" / core_dialects[sid] / sid).is_dir()


def test_prompts_follow_timit_design(corpus: Path) -> None:
    readers: Dict[str, List[Tuple[str, str]]] = {}  # stem -> (split, sentence) per speaker reading it
    for txt in corpus.glob("*/*/*/*.TXT"):
        readers.setdefault(txt.stem, []).append((txt.parts[-4], txt.read_text().split(" ", 2)[2].strip()))
    assert {sentence for _, sentence in readers["SA1"]} == {make_demo_corpus.SA_SENTENCES[0]}
    assert {sentence for _, sentence in readers["SA2"]} == {make_demo_corpus.SA_SENTENCES[1]}
    for stem, reads in readers.items():
        assert len({sentence for _, sentence in reads}) == 1, f"{stem} names two different sentences"
        if stem.startswith("SI"):
            assert len(reads) == 1
        if stem.startswith("SX"):
            assert len({split for split, _ in reads}) == 1, f"{stem} is read in two of TRAIN, TEST and HELDOUT"
    assert any(len(reads) > 1 for stem, reads in readers.items() if stem.startswith("SX"))


def test_audio_is_16khz_sphere_and_txt_matches(corpus: Path) -> None:
    for wav in corpus.glob("*/*/*/*.WAV"):
        assert wav.read_bytes()[:8] == b"NIST_1A\n"
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.format, info.subtype) == (16000, 1, "NIST", "PCM_16")
        begin, end, _ = wav.with_suffix(".TXT").read_text().split(" ", 2)
        assert (int(begin), int(end)) == (0, info.frames)


def test_phones_cover_audio_and_words_sit_on_phone_boundaries(corpus: Path) -> None:
    for wav in corpus.glob("*/*/*/*.WAV"):
        frames = sf.info(wav).frames
        phones = _read_segments(wav.with_suffix(".PHN"))
        assert phones[0][0] == 0 and phones[-1][1] == frames
        assert phones[0][2] == "h#" and phones[-1][2] == "h#"
        assert all(start < end for start, end, _ in phones)
        assert all(a[1] == b[0] for a, b in zip(phones, phones[1:]))
        assert {label for _, _, label in phones} <= TIMIT_LABELS

        boundaries = {start for start, _, _ in phones} | {frames}
        words = _read_segments(wav.with_suffix(".WRD"))
        sentence = wav.with_suffix(".TXT").read_text().split(" ", 2)[2]
        assert [w for _, _, w in words] == text.sentence_words(sentence)
        assert all(start < end and start in boundaries and end in boundaries for start, end, _ in words)
        assert all(a[1] <= b[0] for a, b in zip(words, words[1:]))


def test_flap_rule_applies_to_water(corpus: Path) -> None:
    for phn in corpus.glob("*/*/*/SA1.PHN"):
        labels = [label for _, _, label in _read_segments(phn)]
        assert "dx" in labels, f"no flap in 'water' in {phn}"


def test_same_seed_same_bytes_whatever_the_number_of_jobs(corpus: Path, tmp_path: Path) -> None:
    again = tmp_path / "timit"
    make_demo_corpus.make_demo_timit(again, seed=SEED, num_jobs=2, **SIZES, **HELDOUT)
    assert _file_bytes(again) == _file_bytes(corpus)
    other_seed = make_demo_corpus.plan_utterances(make_demo_corpus.plan_speakers(SEED + 1, 3, 2, 2), SEED + 1)
    this_seed = make_demo_corpus.plan_utterances(make_demo_corpus.plan_speakers(SEED, 3, 2, 2), SEED)
    assert [u.text for u in other_seed] != [u.text for u in this_seed]


def test_lhotse_prepare_timit_accepts_it(corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "data").symlink_to(corpus, target_is_directory=True)
    manifests = prepare_timit(tmp_path, num_phones=60)
    per_speaker = UTTERANCE_STEMS
    assert len(manifests["TRAIN"]["recordings"]) == SIZES["num_train_speakers"] * per_speaker
    assert len(manifests["DEV"]["recordings"]) == SIZES["num_dev_speakers"] * per_speaker
    assert len(manifests["TEST"]["recordings"]) == SIZES["num_test_speakers"] * per_speaker
    supervision = next(iter(manifests["TEST"]["supervisions"]))
    assert supervision.alignment["phone"][0].symbol == "h#"
    assert supervision.text


def test_heldout_voices_are_read_by_heldout_speakers_alone() -> None:
    heldout_voices = ["ked_diphone", "awb"]
    speakers = make_demo_corpus.plan_speakers(SEED, 30, 10, 24, heldout_voices, 8)
    heldout = [s for s in speakers if s.split == make_demo_corpus.HELDOUT_PART]
    others = [s for s in speakers if s.split != make_demo_corpus.HELDOUT_PART]
    assert len(heldout) == 8 and len(others) == 30 + 10 + 24
    assert {s.style.voice for s in heldout} == set(heldout_voices)
    assert {s.style.voice for s in others} == set(tts.VOICES) - set(heldout_voices)
    for voice in heldout_voices:  # each voice is heard as both sexes
        assert {s.sex for s in heldout if s.style.voice == voice} == {"F", "M"}
    ids = [s.speaker_id for s in speakers]
    assert len(set(ids)) == len(ids)
    real_ids = {s.upper() for group in get_speakers() for s in group}
    assert not {s.speaker_id for s in heldout} & real_ids
    utterances = make_demo_corpus.plan_utterances(speakers, SEED)
    texts = {split: {u.text for u in utterances if u.speaker.split == split and not u.name.startswith("SA")}
             for split in ("TRAIN", "TEST", make_demo_corpus.HELDOUT_PART)}
    assert not texts[make_demo_corpus.HELDOUT_PART] & (texts["TRAIN"] | texts["TEST"])
    # holding no voice out plans what the same counts planned before: every voice, in the same order
    assert make_demo_corpus.plan_speakers(SEED, 30, 10, 24, [], 0) == make_demo_corpus.plan_speakers(SEED, 30, 10, 24)
    assert {s.style.voice for s in make_demo_corpus.plan_speakers(SEED, 30, 10, 24)} == set(tts.VOICES)


@pytest.mark.parametrize("voices,count,message", [
    (list(tts.VOICES), 8, "every voice is held out"),
    (["awb"], 0, "give both or neither"),
    ([], 3, "give both or neither"),
    (["nobody"], 2, "held-out voices \\['nobody'\\] are not known"),
])
def test_bad_heldout_settings_are_refused(voices, count, message) -> None:
    with pytest.raises(ValueError, match=message):
        make_demo_corpus.plan_speakers(SEED, 3, 2, 2, voices, count)


def test_prepare_makes_the_heldout_set_of_heldout_speakers_only(corpus: Path) -> None:
    sets = standard_sets(corpus)
    speakers = {split: {s.speaker for s in supervisions} for split, (_, supervisions) in sets.items()}
    assert speakers["heldout"] == {p.name for p in corpus.glob("HELDOUT/*/*")}
    assert len(sets["heldout"][1]) == HELDOUT["num_heldout_speakers"] * (UTTERANCE_STEMS - 2)  # SA left out
    assert not speakers["heldout"] & (speakers["train"] | speakers["dev"] | speakers["test"])
    recording = sets["heldout"][0][0]
    assert Path(recording.sources[0].source).resolve().parts[-4] == "HELDOUT"  # the real file, not the link


def test_interrupted_run_leaves_no_corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def failing_write(*args: object) -> None:
        calls.append(args)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(make_demo_corpus, "write_utterance", failing_write)
    with pytest.raises(KeyboardInterrupt):
        make_demo_corpus.make_demo_timit(tmp_path / "timit", seed=SEED, num_jobs=1, **SIZES)
    assert list(tmp_path.iterdir()) == []


def test_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name: None if name == "sox" else real_which(name))
    with pytest.raises(tts.MissingDependencyError, match="apt-get install sox"):
        tts.check_voices(["kal16"])


def test_sentences_are_deterministic_and_in_the_lexicon() -> None:
    first = text.select_sentences(50, seed=7)
    assert first == text.select_sentences(50, seed=7)
    assert first != text.select_sentences(50, seed=8)
    lexicon = text.cmudict_words()
    for sentence in first:
        words = text.sentence_words(sentence)
        assert text.MIN_WORDS <= len(words) <= text.MAX_WORDS
        assert all(word in lexicon for word in words)
