"""Stage 1 of the LibriSpeech recipe: lhotse's prepare_librispeech after checks that name the bad file."""

import numpy as np
import pytest
import soundfile
from lhotse import RecordingSet, SupervisionSet

from asrkit.data.corpus import write_manifests
from prepare_librispeech import CorpusError, librispeech_sets

PARTS = {"train": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}


def write_corpus(root, utterances_per_chapter=2):
    """Two chapters per part, tones for audio (the checks and lhotse do not listen)."""
    number = 100
    for part in PARTS.values():
        for _ in range(2):
            chapter = root / part / str(number) / "7"
            chapter.mkdir(parents=True)
            lines = []
            for i in range(utterances_per_chapter):
                utt = f"{number}-7-{i:04d}"
                tone = 0.1 * np.sin(np.arange(8000 + 800 * i) * 2 * np.pi * 440 / 16000)
                soundfile.write(chapter / f"{utt}.flac", tone, 16000, format="FLAC", subtype="PCM_16")
                lines.append(f"{utt} HELLO WORLD NUMBER {i}\n")
            (chapter / f"{number}-7.trans.txt").write_text("".join(lines))
            number += 1
    return root


def test_good_corpus_gives_sorted_manifests_per_split(tmp_path):
    sets = librispeech_sets(write_corpus(tmp_path / "LibriSpeech"), PARTS)
    assert set(sets) == {"train", "dev", "test"}
    for recordings, supervisions in sets.values():
        assert len(recordings) == len(supervisions) == 4
        assert [s.id for s in supervisions] == sorted(s.id for s in supervisions)
        assert supervisions[0].text == "HELLO WORLD NUMBER 0"
    write_manifests(sets, tmp_path / "manifests", "librispeech")
    assert len(RecordingSet.from_file(tmp_path / "manifests/librispeech_recordings_dev.jsonl.gz")) == 4
    assert len(SupervisionSet.from_file(tmp_path / "manifests/librispeech_supervisions_test.jsonl.gz")) == 4


def break_missing_transcript_file(chapter):
    (chapter / "100-7.trans.txt").unlink()
    return "100-7.trans.txt: missing transcript file"


def break_line_without_audio(chapter):
    (chapter / "100-7-0001.flac").unlink()
    return "100-7.trans.txt:2: transcript of 100-7-0001, but .*100-7-0001.flac does not exist"


def break_empty_transcript(chapter):
    (chapter / "100-7.trans.txt").write_text("100-7-0000 HELLO\n100-7-0001\n")
    return "100-7.trans.txt:2: empty transcript for 100-7-0001"


def break_unreadable_audio(chapter):
    (chapter / "100-7-0000.flac").write_bytes(b"not a flac file at all")
    return "100-7-0000.flac: unreadable audio"


def break_sample_rate(chapter):
    soundfile.write(chapter / "100-7-0000.flac", np.zeros(8000), 8000, format="FLAC", subtype="PCM_16")
    return "100-7-0000.flac: sample rate 8000 Hz, expected 16000 Hz"


def break_audio_without_line(chapter):
    soundfile.write(chapter / "100-7-0009.flac", np.zeros(8000), 16000, format="FLAC", subtype="PCM_16")
    return "100-7-0009.flac: no line in .*100-7.trans.txt"


@pytest.mark.parametrize("damage", [break_missing_transcript_file, break_line_without_audio, break_empty_transcript,
                                    break_unreadable_audio, break_sample_rate, break_audio_without_line])
def test_bad_corpus_stops_naming_the_file(tmp_path, damage):
    root = write_corpus(tmp_path / "LibriSpeech")
    message = damage(root / "train-clean-100" / "100" / "7")
    with pytest.raises(CorpusError, match=message):
        librispeech_sets(root, PARTS)


def test_missing_part_names_the_config_key(tmp_path):
    root = write_corpus(tmp_path / "LibriSpeech")
    with pytest.raises(CorpusError, match=r"dev-other: no such folder for the dev split \(corpus.parts.dev"):
        librispeech_sets(root, {**PARTS, "dev": "dev-other"})
