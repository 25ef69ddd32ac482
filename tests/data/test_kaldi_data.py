"""Kaldi data directories <-> manifests (asrkit/data/kaldi_data.py), through lhotse's own lhotse.kaldi code."""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from lhotse import Recording, RecordingSet, SupervisionSegment, SupervisionSet

from asrkit.cli import main
from asrkit.config import FeatureConfig
from asrkit.data.features import compute_features
from asrkit.data.kaldi_data import KaldiDataError, export_kaldi_data_dir, import_kaldi_data_dir
from asrkit.data.units import PhoneUnits
from asrkit.data.corpus import write_manifests
from prepare_timit import standard_sets
from timit_skeleton import NUM_SAMPLES, PHONES, write_timit_skeleton

RATE = 16000
torch.set_num_threads(1)


def write_wav(path: Path, seconds: float, seed: int) -> Path:
    audio = (np.random.RandomState(seed).randn(int(seconds * RATE)) * 1000).astype(np.int16)
    soundfile.write(str(path), audio, RATE, subtype="PCM_16")
    return path


def kaldi_table(path: Path) -> list:
    """(key, value) per line, in file order."""
    return [tuple(line.split(maxsplit=1)) if " " in line else (line, "") for line in path.read_text().splitlines()]


@pytest.fixture
def tiny_corpus(tmp_path):
    """Two speakers, three recordings; spkA-r1 holds two utterances (so segments are needed)."""
    recordings = RecordingSet.from_recordings(
        Recording.from_file(write_wav(tmp_path / f"{rid}.wav", seconds, seed), recording_id=rid)
        for seed, (rid, seconds) in enumerate([("spkA-r1", 1.0), ("spkA-r2", 0.5), ("spkB-r3", 0.75)]))
    supervisions = SupervisionSet.from_segments([
        SupervisionSegment("spkA-r1-0", "spkA-r1", 0.0, 0.4, text="the first one", speaker="spkA", gender="female"),
        SupervisionSegment("spkA-r1-1", "spkA-r1", 0.5, 0.45, text="the second", speaker="spkA", gender="female"),
        SupervisionSegment("spkA-r2", "spkA-r2", 0.0, 0.5, text="whole", speaker="spkA", gender="female"),
        SupervisionSegment("spkB-r3", "spkB-r3", 0.0, 0.75, text="other speaker", speaker="spkB", gender="male"),
    ])
    paths = tmp_path / "recordings.jsonl.gz", tmp_path / "supervisions.jsonl.gz"
    recordings.to_file(paths[0])
    supervisions.to_file(paths[1])
    return paths


def summary(supervisions: SupervisionSet) -> dict:
    return {s.id: (s.recording_id, round(s.start, 3), round(s.duration, 3), s.text, s.speaker) for s in supervisions}


def test_round_trip_with_segments(tiny_corpus, tmp_path):
    recordings_path, supervisions_path = tiny_corpus
    kaldi_dir = tmp_path / "kaldi" / "train"
    counts = export_kaldi_data_dir(recordings_path, supervisions_path, kaldi_dir)
    assert counts == {"utterances": 4, "speakers": 2, "recordings": 3, "segments": 1}
    names = {p.name for p in kaldi_dir.iterdir()}
    assert {"wav.scp", "segments", "text", "utt2spk", "spk2utt", "spk2gender"} <= names
    for name in names:  # sorted by key, byte order (C locale)
        keys = [key for key, _ in kaldi_table(kaldi_dir / name)]
        assert keys == sorted(keys, key=lambda k: k.encode()), name
    utt2spk = dict(kaldi_table(kaldi_dir / "utt2spk"))
    spk2utt = {spk: utts.split() for spk, utts in kaldi_table(kaldi_dir / "spk2utt")}
    assert spk2utt == {spk: sorted(u for u, s in utt2spk.items() if s == spk) for spk in set(utt2spk.values())}
    assert dict(kaldi_table(kaldi_dir / "spk2gender")) == {"spkA": "f", "spkB": "m"}
    assert dict(kaldi_table(kaldi_dir / "wav.scp"))["spkA-r1"] == str(tmp_path / "spkA-r1.wav")  # RIFF: no pipe

    out = tmp_path / "manifests"
    rec_path, sup_path = import_kaldi_data_dir(kaldi_dir, RATE, out, "toy", "train")
    assert (rec_path.name, sup_path.name) == ("toy_recordings_train.jsonl.gz", "toy_supervisions_train.jsonl.gz")
    original_recordings = RecordingSet.from_file(recordings_path).to_eager()
    imported_recordings = RecordingSet.from_file(rec_path).to_eager()
    assert {r.id: r.duration for r in imported_recordings} == {r.id: r.duration for r in original_recordings}
    assert summary(SupervisionSet.from_file(sup_path)) == summary(SupervisionSet.from_file(supervisions_path))
    np.testing.assert_array_equal(imported_recordings["spkB-r3"].load_audio(),
                                  original_recordings["spkB-r3"].load_audio())
    assert not list(out.glob(".*partial*"))


def test_imported_pipe_and_segments_feed_the_feature_stage(tmp_path):
    """A hand-written Kaldi dir: a `sox ... |` pipe reading raw samples that only the pipe can decode, segments
    with an end of -1, and the manifests it gives go through asrkit's feature stage."""
    raw = tmp_path / "a.raw"
    (np.random.RandomState(1).randn(RATE) * 1000).astype("<i2").tofile(raw)  # 1.0 s
    write_wav(tmp_path / "b.wav", 0.6, seed=2)
    data = tmp_path / "data" / "train"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text(f"recA sox -t raw -r 16000 -e signed -b 16 -c 1 {raw} -t wav - |\n"
                                  f"recB {tmp_path / 'b.wav'}\n")
    (data / "segments").write_text("s1-recA-a recA 0.00 0.40\ns1-recA-b recA 0.50 -1\ns2-recB recB 0.1 0.6\n")
    (data / "text").write_text("s1-recA-a hello there\ns1-recA-b again\ns2-recB\n")  # Kaldi allows empty text
    (data / "utt2spk").write_text("s1-recA-a s1\ns1-recA-b s1\ns2-recB s2\n")
    (data / "spk2utt").write_text("s1 s1-recA-a s1-recA-b\ns2 s2-recB\n")
    rec_path, sup_path = import_kaldi_data_dir(data, RATE, tmp_path / "manifests", "timit", "train")
    recordings = RecordingSet.from_file(rec_path).to_eager()
    assert recordings["recA"].sources[0].type == "command" and recordings["recA"].duration == 1.0
    assert recordings["recA"].load_audio().shape == (1, RATE)
    assert summary(SupervisionSet.from_file(sup_path)) == {
        "s1-recA-a": ("recA", 0.0, 0.4, "hello there", "s1"),
        "s1-recA-b": ("recA", 0.5, 0.5, "again", "s1"),  # -1: to the end of the recording
        "s2-recB": ("recB", 0.1, 0.5, "", "s2"),
    }
    with pytest.raises(ValueError, match="utterance s1-recA-a has no phone alignment"):  # training says why
        PhoneUnits(60).token_symbols(SupervisionSet.from_file(sup_path)[0])
    cuts = compute_features(rec_path, sup_path, tmp_path / "cuts.jsonl.gz", tmp_path / "feats",
                            FeatureConfig.from_dict({"type": "fbank"}))
    assert {c.recording_id: c.load_features().shape[0] for c in cuts} == {"recA": 100, "recB": 60}  # 10 ms frames


@pytest.fixture(scope="module")
def timit_manifests(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timit")
    root = write_timit_skeleton(tmp / "corpus", num_train_speakers=2, num_other_test_speakers=0,
                                num_dev_speakers=1, num_test_speakers=1, utterances=["SI943", "SX43"])
    write_manifests(standard_sets(root), tmp / "manifests", "timit")
    return tmp / "manifests"


def test_timit_export_with_phone_text(timit_manifests, tmp_path):
    """TIMIT's manifests give an egs/timit-style dir: no segments (utterance = recording), the 48-phone
    sequence (q deleted) as text, NIST SPHERE read through sox; importing it back runs the sox pipes."""
    recordings = timit_manifests / "timit_recordings_train.jsonl.gz"
    supervisions = timit_manifests / "timit_supervisions_train.jsonl.gz"
    kaldi_dir = tmp_path / "train"
    counts = export_kaldi_data_dir(recordings, supervisions, kaldi_dir, text_from="phones", phone_set=48)
    assert counts == {"utterances": 4, "speakers": 2, "recordings": 4, "segments": 0}
    assert not (kaldi_dir / "segments").exists()
    texts = dict(kaldi_table(kaldi_dir / "text"))
    timit_phones = [p for _, _, p in PHONES if p != "q"]
    assert timit_phones == ["h#", "s", "iy", "h#"] and set(texts.values()) == {"sil s iy sil"}  # h# -> sil in 48
    wav_scp = dict(kaldi_table(kaldi_dir / "wav.scp"))
    assert all(v.startswith("sox -t sph ") and v.endswith(" -t wav - |") for v in wav_scp.values())
    spk2gender = dict(kaldi_table(kaldi_dir / "spk2gender"))  # TIMIT's speaker ids start with the sex
    assert len(spk2gender) == 2 and all(gender == speaker[0].lower() for speaker, gender in spk2gender.items())

    rec_path, sup_path = import_kaldi_data_dir(kaldi_dir, RATE, tmp_path / "manifests", "timit", "train")
    assert {r.id: r.num_samples for r in RecordingSet.from_file(rec_path)} == {k: NUM_SAMPLES for k in wav_scp}
    assert {s.id: s.text for s in SupervisionSet.from_file(sup_path)} == texts

    words = export_kaldi_data_dir(recordings, supervisions, tmp_path / "words", phone_set=39)
    assert words["segments"] == 0
    assert set(dict(kaldi_table(tmp_path / "words" / "text")).values()) == {"See."}

    export_kaldi_data_dir(recordings, supervisions, tmp_path / "all", text_from="phones", phone_set=61)
    assert set(dict(kaldi_table(tmp_path / "all" / "text")).values()) == {" ".join(p for _, _, p in PHONES)}  # q kept


def test_prefix_speaker_for_kaldi_sort_order_and_paths_with_spaces(tmp_path, caplog):
    (tmp_path / "my corpus").mkdir()
    recordings = RecordingSet.from_recordings(
        Recording.from_file(write_wav(tmp_path / "my corpus" / f"{rid}.wav", 0.5, seed), recording_id=rid)
        for seed, rid in enumerate(["u1", "u2"]))
    supervisions = SupervisionSet.from_segments(
        SupervisionSegment(rid, rid, 0.0, 0.5, text="x", speaker=spk) for rid, spk in [("u1", "zed"), ("u2", "amy")])
    paths = tmp_path / "r.jsonl.gz", tmp_path / "s.jsonl.gz"
    recordings.to_file(paths[0])
    supervisions.to_file(paths[1])
    export_kaldi_data_dir(*paths, tmp_path / "as_is")
    assert "validate_data_dir.sh will refuse the directory (use --prefix-speaker)" in caplog.text
    assert dict(kaldi_table(tmp_path / "as_is" / "wav.scp"))["u1"] == f"sox '{tmp_path}/my corpus/u1.wav' -t wav - |"
    assert not (tmp_path / "as_is" / "spk2gender").exists()  # no genders known
    caplog.clear()
    counts = export_kaldi_data_dir(*paths, tmp_path / "prefixed", prefix_speaker=True)
    assert counts["segments"] == 1 and "validate_data_dir" not in caplog.text
    assert kaldi_table(tmp_path / "prefixed" / "utt2spk") == [("amy-u2", "amy"), ("zed-u1", "zed")]
    _, sup_path = import_kaldi_data_dir(tmp_path / "prefixed", RATE, tmp_path / "manifests", "timit", "train")
    assert summary(SupervisionSet.from_file(sup_path)) == {"amy-u2": ("u2", 0.0, 0.5, "x", "amy"),
                                                           "zed-u1": ("u1", 0.0, 0.5, "x", "zed")}


def test_bad_manifests_are_named_and_export_nothing(tiny_corpus, tmp_path):
    recordings_path, supervisions_path = tiny_corpus
    with pytest.raises(KaldiDataError, match=rf"{supervisions_path}: supervision spkA-r1-0 has no phone alignment"):
        export_kaldi_data_dir(*tiny_corpus, tmp_path / "out", text_from="phones")
    supervisions = SupervisionSet.from_file(supervisions_path).to_eager()
    no_text = tmp_path / "no_text.jsonl.gz"
    SupervisionSet.from_segments([s for s in supervisions if s.id != "spkB-r3"] + [
        SupervisionSegment("spkB-r3", "spkB-r3", 0.0, 0.75, speaker="spkB")]).to_file(no_text)
    with pytest.raises(KaldiDataError, match=rf"{no_text}: supervision spkB-r3 has no text"):
        export_kaldi_data_dir(recordings_path, no_text, tmp_path / "out")
    SupervisionSet.from_segments([SupervisionSegment("spkA-r2", "spkA-r2", 0.0, 0.5, text="x")]).to_file(no_text)
    with pytest.raises(KaldiDataError, match=rf"{no_text}: supervision spkA-r2 has no speaker"):
        export_kaldi_data_dir(recordings_path, no_text, tmp_path / "out")
    orphan = tmp_path / "orphan.jsonl.gz"
    SupervisionSet.from_segments([SupervisionSegment("u", "nowhere", 0, 0.5, text="x", speaker="x")]).to_file(orphan)
    with pytest.raises(KaldiDataError, match=rf"{recordings_path}, {orphan}: inconsistent manifests \(Supervision u "
                                             rf"references non-existent recording nowhere\)"):
        export_kaldi_data_dir(recordings_path, orphan, tmp_path / "out")
    (tmp_path / "spkA-r2.wav").write_text("not audio")
    with pytest.raises(KaldiDataError, match=rf"{tmp_path}/spkA-r2.wav: unreadable audio of recording spkA-r2 "
                                             rf"\(Error opening .*Format not recognised"):
        export_kaldi_data_dir(recordings_path, supervisions_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def good_kaldi_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    write_wav(tmp_path / "a.wav", 0.5, seed=1)
    write_wav(tmp_path / "b.wav", 0.5, seed=2)
    (data / "wav.scp").write_text(f"s1-a {tmp_path / 'a.wav'}\ns2-b {tmp_path / 'b.wav'}\n")
    (data / "text").write_text("s1-a one\ns2-b two\n")
    (data / "utt2spk").write_text("s1-a s1\ns2-b s2\n")
    return data


def write_8khz_b_wav(data: Path) -> None:
    soundfile.write(str(data.parent / "b.wav"), np.zeros(800), 8000)


def write_nan_b_wav(data: Path) -> None:
    samples = np.zeros(8000, dtype=np.float32)
    samples[[10, 20]] = np.nan
    soundfile.write(str(data.parent / "b.wav"), samples, RATE, subtype="FLOAT")


def nan_b_wav_through_a_pipe(data: Path) -> None:
    write_nan_b_wav(data)
    (data / "wav.scp").write_text(f"s1-a {data.parent}/a.wav\ns2-b cat {data.parent}/b.wav |\n")


SEGMENT_1 = "s1-a s1-a 0 0.2\n"


@pytest.mark.parametrize("path,content,problem", [  # content None: delete path; a function: call it on data/
    ("data/wav.scp", None, r"data/wav.scp: missing \(a Kaldi data directory needs wav.scp"),
    ("data", lambda d: [p.unlink() for p in d.iterdir()], r"data/wav.scp: missing .*found nothing"),
    ("data/text", None, r"data/text: missing \(asrkit needs the text of every utterance\)"),
    ("data/text", "s1-a one\ns2-b two\ns3-c three\n", r"data/text:3: utterance s3-c is not in wav.scp"),
    ("data/text", "s1-a one\ns2-b\n", r"data/text:2: expected '<key> <value>', got 's2-b'"),
    ("data/text", "s1-a one\n", r"data/text: no line for utterance s2-b \(.*data/wav.scp:2\)"),
    ("data/utt2spk", "s1-a s1\n\ns2-b s2\n", r"data/utt2spk:2: expected '<key> <value>', got ''"),
    ("data/utt2spk", "s1-a s1\ns1-a s2\n", r"data/utt2spk:2: s1-a repeated \(first on line 1\)"),
    ("data/utt2spk", "s1-a\ns2-b s2\n", r"data/utt2spk:1: expected '<key> <value>', got 's1-a'"),
    ("data/segments", SEGMENT_1 + "s2-b zz 0 0.3\n", r"data/segments:2: recording zz is not in wav.scp"),
    ("data/segments", SEGMENT_1 + "s2-b s2-b 0.3\n",
     r"data/segments:2: expected '<utterance> <recording> <start> <end>'"),
    ("data/segments", SEGMENT_1 + "s2-b s2-b 0.4 0.2\n",
     r"data/segments:2: segment s2-b from 0.4 to 0.2 s is empty or negative"),
    ("data/segments", SEGMENT_1 + "s2-b s2-b 0 9.0\n",
     r"data/segments:2: segment s2-b ends at 9.0 s, past the end of recording s2-b \(0.5 s\)"),
    ("data/spk2utt", "s1 s1-a s2-b\n", r"data/spk2utt: speaker s1 does not have the utterances utt2spk gives it"),
    ("data/spk2gender", "s1 f\n", r"data/spk2gender: no line for speaker s2"),
    ("b.wav", "not audio", r"data/wav.scp:2: unreadable audio '.*b.wav' \(Error opening .*Format not recognised"),
    ("data/wav.scp", "s1-a {tmp}/a.wav\ns2-b sox {tmp}/gone.wav -t wav - |\n",
     r"data/wav.scp:2: unreadable audio 'sox .*gone.wav -t wav - \|' \(the command gives no readable mono audio"),
    ("b.wav", write_8khz_b_wav,
     r"data/wav.scp:2: '.*b.wav': sample rate 8000 Hz, expected 16000 Hz \(--sampling-rate\)"),
    # the audio of every entry is checked as stage 1 checks a corpus file: pipes too (they are run once anyway)
    ("data/wav.scp", "s1-a {tmp}/a.wav\ns2-b sox {tmp}/b.wav -r 8000 -t wav - |\n",
     r"data/wav.scp:2: 'sox .*b.wav -r 8000 -t wav - \|': sample rate 8000 Hz, expected 16000 Hz \(--sampling-rate\)"),
    ("b.wav", write_nan_b_wav, r"data/wav.scp:2: '.*b.wav': 2 of 8000 samples are NaN or infinite"),
    ("data/wav.scp", nan_b_wav_through_a_pipe, r"data/wav.scp:2: 'cat .*b.wav \|': 2 of 8000 samples are NaN or infinite"),
    ("b.wav", lambda d: soundfile.write(str(d.parent / "b.wav"), np.zeros((800, 2), dtype=np.int16), RATE),
     r"data/wav.scp:2: '.*b.wav': 2 channels, expected mono"),
    ("data/wav.scp", "s1-a {tmp}/a.wav\ns2-b sox {tmp}/b.wav -t wav - trim 0 0 |\n",
     r"data/wav.scp:2: 'sox .*b.wav -t wav - trim 0 0 \|': empty audio"),
    ("b.wav", lambda d: ((d.parent / "b.wav").unlink(), os.mkfifo(d.parent / "b.wav")),
     r"data/wav.scp:2: '.*b.wav': a named pipe \(FIFO\), not an audio file"),
])
def test_bad_kaldi_dirs_are_named(tmp_path, path, content, problem):
    data = good_kaldi_dir(tmp_path)
    import_kaldi_data_dir(data, RATE, tmp_path / "good", "timit", "train")  # undamaged, it imports
    if content is None:
        (tmp_path / path).unlink()
    elif callable(content):
        content(data)
    else:
        (tmp_path / path).write_text(content.format(tmp=tmp_path))
    with pytest.raises(KaldiDataError, match=problem):
        import_kaldi_data_dir(data, RATE, tmp_path / "manifests", "timit", "train")
    assert not (tmp_path / "manifests").exists() or not any((tmp_path / "manifests").iterdir())


@pytest.mark.parametrize("command", ["sh -c 'echo $$ > {tmp}/pid; exec sleep 600'", "yes"])
def test_a_pipe_that_never_ends_times_out_naming_its_line(tmp_path, command):
    """A wav.scp pipe that waits forever or writes forever hung the import (Kaldi's tools hang too)."""
    data = good_kaldi_dir(tmp_path)
    pipe = f"{command.format(tmp=tmp_path)} |"
    (data / "wav.scp").write_text(f"s1-a {tmp_path / 'a.wav'}\ns2-b {pipe}\n")
    with pytest.raises(SystemExit) as failed:
        main(["kaldi-import", "--data-dir", str(data), "--split", "train", "--output-dir", str(tmp_path / "manifests"),
              "--pipe-timeout", "0.5"])
    assert str(failed.value) == (f"error: {data / 'wav.scp'}:2: the command {pipe!r} did not end within 0.5 s (a "
                                 f"pipe that never ends?); if it is only slow, raise --pipe-timeout")
    assert not (tmp_path / "manifests").exists()
    if (tmp_path / "pid").exists():  # it was killed, not left running (gone, or a zombie not yet reaped)
        stat = Path(f"/proc/{int((tmp_path / 'pid').read_text())}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.parametrize("reco2dur,problem", [
    (None, r"data/reco2dur: missing \(--use-reco2dur needs it\)"),
    ("s1-a 0.5\n", r"data/reco2dur: no line for recording s2-b \(wav.scp:2\)"),
    ("s1-a 0.5\ns2-b half\n", r"data/reco2dur:2: expected a positive duration in seconds, got 'half'"),
])
def test_bad_reco2dur_is_named(tmp_path, reco2dur, problem):
    data = good_kaldi_dir(tmp_path)
    if reco2dur is not None:
        (data / "reco2dur").write_text(reco2dur)
    with pytest.raises(KaldiDataError, match=problem):
        import_kaldi_data_dir(data, RATE, tmp_path / "manifests", "timit", "train", use_reco2dur=True)


def test_reco2dur_is_trusted_when_asked(tmp_path):
    data = good_kaldi_dir(tmp_path)
    (data / "reco2dur").write_text("s1-a 0.25\ns2-b 0.5\n")  # a.wav holds 0.5 s: reco2dur wins
    rec_path, _ = import_kaldi_data_dir(data, RATE, tmp_path / "manifests", "timit", "train", use_reco2dur=True)
    assert {r.id: r.duration for r in RecordingSet.from_file(rec_path)} == {"s1-a": 0.25, "s2-b": 0.5}


def test_cli_round_trip_and_error(tiny_corpus, tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO")
    with pytest.raises(SystemExit, match="^0$"):
        main(["kaldi-export", "--recordings", str(tiny_corpus[0]), "--supervisions", str(tiny_corpus[1]),
              "--out-dir", str(tmp_path / "kaldi")])
    assert f"-> {tmp_path / 'kaldi'}" in caplog.text
    monkeypatch.chdir(tmp_path)  # the default --output-dir is the recipe's data/manifests
    with pytest.raises(SystemExit, match="^0$"):
        main(["kaldi-import", "--data-dir", "kaldi", "--split", "dev"])
    assert (tmp_path / "data/manifests/timit_supervisions_dev.jsonl.gz").is_file()
    assert "4 utterances, 2 speakers, 3 recordings" in caplog.text
    with pytest.raises(SystemExit) as failed:
        main(["kaldi-import", "--data-dir", str(tmp_path / "kaldi" / "nothing"), "--split", "dev"])
    assert str(failed.value) == f"error: {tmp_path}/kaldi/nothing: no such directory"
