"""Stage 1: standard TIMIT sets from an LDC-shaped corpus, through lhotse's prepare_timit."""

import numpy as np
import pytest
import soundfile
from lhotse import CutSet, RecordingSet, SupervisionSet

from asrkit.data.corpus import write_manifests
from asrkit.data.dataset import token_ids
from asrkit.data.lang import TokenTable, prepare_phones
from asrkit.data.phones import fold
from asrkit.data.units import PhoneUnits
from prepare_timit import CorpusError, check_standard_sizes, set_sizes, standard_sets
from timit_skeleton import NUM_SAMPLES, PHONES, UTTERANCES, invented_speaker, write_timit_skeleton, write_utterance


@pytest.fixture(scope="module")
def full_skeleton(tmp_path_factory):
    return write_timit_skeleton(tmp_path_factory.mktemp("timit"))


def test_standard_sets_have_published_sizes(full_skeleton, tmp_path):
    sets = standard_sets(full_skeleton, num_jobs=2)
    assert {split: set_sizes(sup) for split, (_, sup) in sets.items()} == {
        "train": (3696, 462), "dev": (400, 50), "test": (192, 24)}
    check_standard_sizes(sets, full_skeleton)
    check_standard_sizes({**sets, "heldout": sets["test"]}, full_skeleton)  # a held-out set has no standard size
    _, test_sup = sets["test"]
    assert not any("SA" in s.id for s in test_sup)
    # words in text, all of the .PHN's phones in the alignment (q kept), recordings point at the real files
    first = test_sup[0]
    assert first.text == "See."
    phones = [a.symbol for a in first.alignment["phone"]]
    assert phones == [p for _, _, p in PHONES] and "q" in phones
    recordings, _ = sets["train"]
    assert recordings[0].sources[0].source.startswith(str(full_skeleton))
    write_manifests(sets, tmp_path, "timit")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"timit_{k}_{s}.jsonl.gz" for k in ("recordings", "supervisions") for s in ("train", "dev", "test"))


def test_incomplete_copy_fails_the_size_check(tmp_path):
    root = write_timit_skeleton(tmp_path, num_train_speakers=5, num_other_test_speakers=0, num_dev_speakers=2,
                                num_test_speakers=2)
    sets = standard_sets(root)
    with pytest.raises(CorpusError, match="the train set has 40 utterances from 5 speakers"):
        check_standard_sizes(sets, root)


@pytest.mark.parametrize("lower_case,data_folder", [(True, False), (False, True), (True, True)])
def test_case_and_data_folder_variants(tmp_path, lower_case, data_folder):
    root = write_timit_skeleton(tmp_path, num_train_speakers=2, num_other_test_speakers=1, num_dev_speakers=1,
                                num_test_speakers=1, lower_case=lower_case, data_folder=data_folder)
    sets = standard_sets(root)
    assert set(sets) == {"train", "dev", "test"}  # no HELDOUT folder, no held-out set
    assert set_sizes(sets["train"][1]) == (16, 2)
    assert set_sizes(sets["test"][1]) == (8, 1)


def write_heldout_speakers(root, speakers, folder="HELDOUT"):
    for i, speaker in enumerate(speakers):
        speaker_dir = root / folder / f"DR{i % 8 + 1}" / speaker
        speaker_dir.mkdir(parents=True)
        for j, utt in enumerate(UTTERANCES):
            write_utterance(speaker_dir, utt, seed=1000 * i + j)


@pytest.mark.parametrize("folder", ["HELDOUT", "heldout"])
def test_heldout_folder_becomes_the_heldout_set(tmp_path, folder):
    root = small_corpus(tmp_path)
    speakers = [invented_speaker("H", i) for i in range(3)]
    write_heldout_speakers(root, speakers, folder)
    sets = standard_sets(root, num_jobs=2)
    assert set_sizes(sets["heldout"][1]) == (24, 3)
    assert {s.speaker for s in sets["heldout"][1]} == set(speakers)
    assert {split: set_sizes(sup) for split, (_, sup) in sets.items() if split != "heldout"} == {
        "train": (16, 2), "dev": (8, 1), "test": (8, 1)}
    supervision = sets["heldout"][1][0]
    assert supervision.id == f"{supervision.speaker}-SI1573"  # sorted, SA left out
    assert [a.symbol for a in supervision.alignment["phone"]] == [label for _, _, label in PHONES]  # all 61 kept
    assert sets["heldout"][0][0].sources[0].source.startswith(str(root / folder))
    write_manifests(sets, tmp_path / "manifests", "timit")
    assert (tmp_path / "manifests/timit_supervisions_heldout.jsonl.gz").is_file()


def test_heldout_speaker_with_a_standard_folder_is_refused(tmp_path):
    root = small_corpus(tmp_path)
    test_speaker = next((root / "TEST").glob("*/*")).name
    write_heldout_speakers(root, [test_speaker])
    with pytest.raises(CorpusError, match=f"speaker {test_speaker} has 2 folders"):
        standard_sets(root)


def small_corpus(tmp_path):
    return write_timit_skeleton(tmp_path, num_train_speakers=2, num_other_test_speakers=0, num_dev_speakers=1,
                                num_test_speakers=1)


def first_utterance(root):
    return sorted((root / "TRAIN").glob("*/*/SI943.WAV"))[0]


def test_one_preparation_serves_every_phone_set(tmp_path):
    """The manifests keep TIMIT's 61 labels; the phone set is chosen where tokens are made (stage 3's token
    table, the units), so 61, 60 and 48 all train from the same manifests: with q only in the 61 set's."""
    write_manifests(standard_sets(small_corpus(tmp_path / "corpus")), tmp_path / "manifests", "timit")
    cuts = CutSet.from_manifests(RecordingSet.from_file(tmp_path / "manifests/timit_recordings_train.jsonl.gz"),
                                 SupervisionSet.from_file(tmp_path / "manifests/timit_supervisions_train.jsonl.gz"))
    targets = {}
    for num_phones in (61, 60, 48):
        prepare_phones(tmp_path / f"lang{num_phones}", num_phones)
        tokens = TokenTable.load(tmp_path / f"lang{num_phones}" / "tokens.txt")
        assert len(tokens) == num_phones + 1 and ("q" in tokens.symbols) == (num_phones == 61)
        targets[num_phones] = [tokens.decode(token_ids(cut, tokens, PhoneUnits(num_phones))) for cut in cuts]
    assert len(targets[61]) == 16 and all(symbols.count("q") == 1 for symbols in targets[61])
    assert targets[60] == [fold(symbols, 61, 60) for symbols in targets[61]]
    assert targets[48] == [fold(symbols, 61, 48) for symbols in targets[61]]
    assert not any("q" in symbols for symbols in targets[60] + targets[48])


def test_missing_phn_names_the_file(tmp_path):
    root = small_corpus(tmp_path)
    wav = first_utterance(root)
    wav.with_suffix(".PHN").unlink()
    with pytest.raises(CorpusError, match=rf"{wav.with_suffix('.PHN')}: missing .PHN file"):
        standard_sets(root)


@pytest.mark.parametrize("phn_text,problem", [
    ("", "empty phone transcription"),
    ("0 1200 h#\n1200 2000 zz\n", "unknown phone label 'zz'"),
    ("0 1200 h#\n1000 2000 s\n", "before the previous one ends"),
    ("1200 2000 s\n0 1200 h#\n", "before the previous one ends"),  # unsorted
    ("0 1200 h#\n1200 99999 s\n", "past the end of the audio"),
    ("0 1200\n", "expected 'start_sample end_sample phone'"),
])
def test_bad_phone_files(tmp_path, phn_text, problem):
    root = small_corpus(tmp_path)
    phn = first_utterance(root).with_suffix(".PHN")
    phn.write_text(phn_text)
    with pytest.raises(CorpusError, match=str(phn).replace(".", r"\.") + ".*" + problem.replace("(", r"\(")):
        standard_sets(root)


def test_bad_audio(tmp_path):
    root = small_corpus(tmp_path)
    wav = first_utterance(root)
    soundfile.write(str(wav), np.zeros(NUM_SAMPLES, dtype=np.int16), 8000, format="NIST", subtype="PCM_16")
    other = sorted((root / "TRAIN").glob("*/*/SX43.WAV"))[0]
    other.write_bytes(b"NIST_1A\n garbage")
    with pytest.raises(CorpusError) as error:
        standard_sets(root)
    assert f"{wav}: sample rate 8000 Hz, expected 16000 Hz" in str(error.value)
    assert f"{other}: unreadable audio" in str(error.value)


def test_stereo_and_truncated_audio(tmp_path):
    root = small_corpus(tmp_path)
    stereo = first_utterance(root)
    soundfile.write(str(stereo), np.zeros((NUM_SAMPLES, 2), dtype=np.int16), 16000, format="NIST", subtype="PCM_16")
    truncated = sorted((root / "TRAIN").glob("*/*/SX43.WAV"))[0]
    truncated.write_bytes(truncated.read_bytes()[:1024 + NUM_SAMPLES])  # half the samples
    with pytest.raises(CorpusError) as error:
        standard_sets(root)
    assert f"{stereo}: 2 channels, expected mono" in str(error.value)
    assert f"{truncated}: truncated audio: the header says {NUM_SAMPLES} samples, the file holds {NUM_SAMPLES // 2}" \
        in str(error.value)


def test_missing_train_folder(tmp_path):
    root = small_corpus(tmp_path)
    (root / "TRAIN").rename(root / "TRAINING")
    with pytest.raises(CorpusError, match="no TRAIN folder"):
        standard_sets(root)


def test_empty_transcript(tmp_path):
    root = small_corpus(tmp_path)
    txt = first_utterance(root).with_suffix(".TXT")
    txt.write_text(f"0 {NUM_SAMPLES}\n")
    with pytest.raises(CorpusError, match=f"{txt}: empty transcript"):
        standard_sets(root)


def test_not_a_timit_copy(tmp_path):
    (tmp_path / "TRAIN").mkdir()
    with pytest.raises(CorpusError, match="no TEST folder"):
        standard_sets(tmp_path)
    with pytest.raises(CorpusError, match="no such directory"):
        standard_sets(tmp_path / "nowhere")


#: Kaldi's egs/timit/s5/conf/dev_spk.list and conf/test_spk.list (the standard dev and core-test speakers)
KALDI_DEV_SPEAKERS = """faks0 fdac1 fjem0 mgwt0 mjar0 mmdb1 mmdm2 mpdf0 fcmh0 fkms0 mbdg0 mbwm0 mcsh0 fadg0 fdms0 fedw0
    mgjf0 mglb0 mrtk0 mtaa0 mtdt0 mthc0 mwjg0 fnmr0 frew0 fsem0 mbns0 mmjr0 mdls0 mdlf0 mdvc0 mers0 fmah0 fdrw0 mrcs0
    mrjm4 fcal1 mmwh0 fjsj0 majc0 mjsw0 mreb0 fgjd0 fjmg0 mroa0 mteb0 mjfc0 mrjr0 fmml0 mrws1""".upper().split()
KALDI_TEST_SPEAKERS = """mdab0 mwbt0 felc0 mtas1 mwew0 fpas0 mjmp0 mlnt0 fpkt0 mlll0 mtls0 fjlm0 mbpm0 mklt0 fnlp0 mcmj0
    mjdh0 fmgd0 mgrt0 mnjm0 fdhc0 mjln0 mpam0 fmld0""".upper().split()


def test_kaggle_copy_gives_the_standard_sets_of_its_sphere_files(tmp_path):
    """The Kaggle copy (data/, a RIFF X.WAV.wav beside each SPHERE X.WAV, two CSV files at the top) gave a
    'missing .PHN file' for every RIFF copy; now the SPHERE files make Kaldi's standard sets."""
    root = write_timit_skeleton(tmp_path, kaggle=True)
    assert {p.name for p in root.iterdir()} == {"data", "train_data.csv", "test_data.csv"}
    spheres, copies = (sorted(root.glob(f"data/*/*/*/{pattern}")) for pattern in ("*.WAV", "*.WAV.wav"))
    assert len(spheres) == len(copies) == 6300 and copies[0] == spheres[0].with_name(spheres[0].name + ".wav")
    sets = standard_sets(root, num_jobs=2)
    assert {split: set_sizes(sup) for split, (_, sup) in sets.items()} == {
        "train": (3696, 462), "dev": (400, 50), "test": (192, 24)}
    assert {s.speaker for s in sets["dev"][1]} == set(KALDI_DEV_SPEAKERS)
    assert {s.speaker for s in sets["test"][1]} == set(KALDI_TEST_SPEAKERS)
    sources = [r.sources[0].source for recordings, _ in sets.values() for r in recordings]
    assert all(source.endswith(".WAV") and soundfile.info(source).format == "NIST" for source in sources)


def test_kaggle_riff_copy_that_disagrees_or_stands_alone_is_named(tmp_path):
    root = write_timit_skeleton(tmp_path, num_train_speakers=2, num_other_test_speakers=0, num_dev_speakers=1,
                                num_test_speakers=1, kaggle=True)
    wav = sorted((root / "data/TRAIN").glob("*/*/SI943.WAV"))[0]
    short_copy = wav.parent / "SI943.WAV.wav"
    soundfile.write(str(short_copy), np.zeros(NUM_SAMPLES // 2, dtype=np.int16), 16000, format="WAV")
    alone = wav.parent / "SX43.WAV"
    alone.unlink()
    with pytest.raises(CorpusError) as error:
        standard_sets(root)
    assert str(error.value) == (
        f"2 problem(s) in the corpus:\n"
        f"  {short_copy}: {NUM_SAMPLES // 2} samples at 16000 Hz, but {wav}, the SPHERE file that is read, holds "
        f"{NUM_SAMPLES} at 16000 Hz: one of the two is damaged\n"
        f"  {alone}: missing .WAV file for utterance {wav.parent.name}-SX43 (only its RIFF copy {alone}.wav is here: "
        f"the SPHERE file is the one read)")


def test_ldc_disc_timit_folder_is_accepted_and_a_deeper_copy_named(tmp_path):
    disc = tmp_path / "disc"
    sizes = {"num_train_speakers": 2, "num_other_test_speakers": 0, "num_dev_speakers": 1, "num_test_speakers": 1}
    write_timit_skeleton(disc / "TIMIT", **sizes)
    (disc / "README.DOC").write_text("the LDC disc's top\n")
    assert set_sizes(standard_sets(disc)["train"][1]) == (16, 2)
    with pytest.raises(CorpusError) as error:
        standard_sets(tmp_path)
    assert str(error.value) == (f"{tmp_path}: not a TIMIT copy: no TRAIN and TEST folder here (nor in a data/ or "
                                f"TIMIT/ folder); {disc / 'TIMIT'} has them: set corpus_dir to it")
    (disc / "TIMIT/TEST").rename(disc / "TIMIT/TESTING")
    with pytest.raises(CorpusError) as error:
        standard_sets(disc)
    assert str(error.value) == f"{disc}: not a TIMIT copy: no TEST folder beside {disc / 'TIMIT/TRAIN'}"
