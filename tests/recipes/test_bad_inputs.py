"""Bad inputs and what the user sees: the cases of docs/bad_inputs.md that no other test file covers.

The catalogue in docs/bad_inputs.md lists every case with its message and the test that checks it; most corpus
problems are tested in test_prepare_timit.py and config mistakes in test_config.py.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from lhotse import CutSet

from asrkit.model.registry import build_model
from asrkit.checkpoint import load_checkpoint, load_model, save_checkpoint
from prepare_timit import CorpusError, main as prepare_timit_main, standard_sets
from process_groups import kill_group, run_group
from tiny_recipe import RUN_ARGS, SNAKEMAKE_ARGS
from timit_skeleton import NUM_SAMPLES, PHONES, write_timit_skeleton, write_utterance

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "recipes" / "timit" / "run.sh"


def small_corpus(root: Path, **sizes) -> Path:
    return write_timit_skeleton(root, **{"num_train_speakers": 2, "num_other_test_speakers": 0,
                                         "num_dev_speakers": 1, "num_test_speakers": 1, **sizes})


# ----------------------------------------------------------------------------------------------------------
# Corpus


def first_utterance(root: Path) -> Path:
    return sorted((root / "TRAIN").glob("*/*/SI943.WAV"))[0]


def test_zeroed_sphere_header_is_unreadable_audio(tmp_path):
    """A header overwritten with zeros (a typical disk or copy fault), beside test_bad_audio's garbled one."""
    root = small_corpus(tmp_path)
    wav = sorted((root / "TRAIN").glob("*/*/SI943.WAV"))[0]
    data = wav.read_bytes()
    wav.write_bytes(bytes(1024) + data[1024:])
    with pytest.raises(CorpusError, match=re.escape(f"{wav}: unreadable audio (")):
        standard_sets(root)


def test_empty_audio_and_reversed_segment(tmp_path):
    root = small_corpus(tmp_path)
    empty = sorted((root / "TRAIN").glob("*/*/SI943.WAV"))[0]
    soundfile.write(str(empty), np.zeros(0, dtype=np.int16), 16000, format="NIST", subtype="PCM_16")
    reversed_phn = sorted((root / "TRAIN").glob("*/*/SX43.PHN"))[0]
    reversed_phn.write_text("0 1200 h#\n2000 1200 s\n")
    with pytest.raises(CorpusError) as error:
        standard_sets(root)
    assert f"{empty}: empty audio" in str(error.value)
    assert f"{reversed_phn}:2: segment ends (1200) before it starts (2000)" in str(error.value)


def test_part_without_utterances(tmp_path):
    root = small_corpus(tmp_path)
    for speaker in (root / "TRAIN").glob("*/*"):
        for f in speaker.iterdir():
            f.unlink()
    with pytest.raises(CorpusError, match=re.escape(f"{root / 'TRAIN'}: no utterances found")):
        standard_sets(root)


@pytest.mark.parametrize("split,sizes,speakers", [
    ("test", {"num_test_speakers": 0, "num_other_test_speakers": 1}, "24 core-test speakers"),
    ("dev", {"num_dev_speakers": 0, "num_other_test_speakers": 1}, "50 dev speakers"),
])
def test_empty_test_or_dev_set_is_named(tmp_path, split, sizes, speakers):
    """TEST/ holds speakers, but none of the standard set's (lhotse alone fails with "No recordings left")."""
    root = small_corpus(tmp_path / "corpus", **sizes)
    with pytest.raises(SystemExit, match=re.escape(f"error: {root / 'TEST'}: the {split} set is empty: "
                                                   f"none of TIMIT's {speakers}")):
        prepare_timit_main(["--corpus-dir", str(root), "--output-dir", str(tmp_path / "manifests")])
    assert not (tmp_path / "manifests").exists()


def test_decoding_an_empty_cut_set_is_refused(tmp_path):
    """Stage 1 refuses an empty set (above); decoding a hand-made empty cut set must say so too."""
    empty = tmp_path / "cuts_test.jsonl.gz"
    CutSet.from_cuts([]).to_file(empty)
    result = subprocess.run([sys.executable, "-m", "asrkit.decoding.decode", "--cuts", str(empty), "--model",
                             str(tmp_path / "model.pt"), "--output", str(tmp_path / "hyps.txt")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert f"error: {empty}: no utterances to decode" in result.stderr
    assert not (tmp_path / "hyps.txt").exists()


def first_speaker_dir(root: Path) -> Path:
    return sorted((root / "TRAIN").glob("*/*"))[0]


def test_case_duplicate_utterance_files_are_refused_naming_both(tmp_path):
    """SX43.WAV/.PHN/... and sx43.wav/.phn/... in one folder (a copy made on a case-insensitive disk): which
    file is whose is unknown, so neither wins (one's audio was paired with the other's phones)."""
    root = small_corpus(tmp_path)
    speaker_dir = first_speaker_dir(root)
    write_utterance(speaker_dir, "SX43", seed=99, lower_case=True)
    with pytest.raises(CorpusError) as error:
        standard_sets(root)
    for suffix in (".WAV", ".PHN", ".WRD", ".TXT"):
        assert (f"{speaker_dir / ('SX43' + suffix)}, {speaker_dir / ('sx43' + suffix.lower())}: two {suffix} files "
                f"of utterance {speaker_dir.name}-SX43 (names that differ only in case); keep one") in str(error.value)


@pytest.mark.parametrize("suffix,text,problem", [
    (".TXT", "0\t4800\tSee the cat.\n", r":1: expected fields separated by single spaces, got '0\t4800\tSee the cat.'"),
    (".TXT", "0 4800  See.\n", ":1: expected fields separated by single spaces, got '0 4800  See.'"),
    (".TXT", "0 4800 See.\n0 4800 Again.\n", ":2: a second line (a transcript is one line"),
    (".TXT", "zero 4800 See.\n", ":1: expected 'start_sample end_sample words...', got 'zero 4800 See.'"),
    (".PHN", "".join(f"{s} {e} {p}\n" for s, e, p in PHONES) + "\n", f":{len(PHONES) + 1}: blank line"),
    (".PHN", "0 1200\th#\n", r":1: expected fields separated by single spaces, got '0 1200\th#'"),
    (".PHN", "0  1200 h#\n", ":1: expected fields separated by single spaces, got '0  1200 h#'"),
    (".WRD", "", ": empty word transcription"),
    (".WRD", "1200 3400 see\n\n", ":2: blank line"),
    (".WRD", "1200\t3400\tsee\n", r":1: expected fields separated by single spaces, got '1200\t3400\tsee'"),
    (".WRD", "\xff\xfe\x00garbage", ": not a text file (invalid start byte at byte 0)"),
    (".WRD", "1200 see\n", ":1: expected 'start_sample end_sample word', got '1200 see'"),
    (".WRD", "3400 1200 see\n", ":1: segment ends (1200) before it starts (3400)"),
    (".WRD", "1200 99999 see\n", ":1: segment ends at sample 99999, past the end of the audio (4800)"),
])
def test_bad_lines_in_txt_phn_and_wrd_are_named(tmp_path, suffix, text, problem):
    """lhotse splits every line on single spaces: it fails with a bare ValueError on such a .PHN or .WRD, and
    silently drops the first words of such a .TXT."""
    root = small_corpus(tmp_path)
    path = first_utterance(root).with_suffix(suffix)
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CorpusError) as error:
        standard_sets(root)
    assert f"\n  {path}{problem}" in str(error.value)


def test_windows_line_ends_and_overlapping_words_are_accepted(tmp_path):
    """Harmless to lhotse, and words of TIMIT's .WRD files may overlap (a shared boundary phone)."""
    root = small_corpus(tmp_path)
    wav = first_utterance(root)
    wav.with_suffix(".WRD").write_text("1200 3400 see\r\n3000 4000 it\r\n", newline="")
    wav.with_suffix(".TXT").write_text("0 4800 See it.\r\n", newline="")
    supervision = next(s for s in standard_sets(root)["train"][1] if s.recording_id == wav_id(wav))
    assert supervision.text == "See it."
    assert [w.symbol for w in supervision.alignment["word"]] == ["see", "it"]


def wav_id(wav: Path) -> str:
    return f"{wav.parent.name}-{wav.stem}"


def test_non_regular_files_are_refused_before_they_are_opened(tmp_path):
    """Opening a FIFO waits for a writer forever (stage 1 hung); a directory gave an IsADirectoryError, a symbolic
    link loop an OSError ("Too many levels of symbolic links") from a worker process."""
    root = small_corpus(tmp_path / "corpus")
    fifo_phn, fifo_wav = first_utterance(root).with_suffix(".PHN"), sorted((root / "TRAIN").glob("*/*/SX43.WAV"))[0]
    directory_phn = sorted((root / "TRAIN").glob("*/*/SX133.PHN"))[0]
    loop_wav = sorted((root / "TRAIN").glob("*/*/SX223.WAV"))[0]
    for path in (fifo_phn, fifo_wav, directory_phn, loop_wav):
        path.unlink()
    os.mkfifo(fifo_phn)
    os.mkfifo(fifo_wav)
    directory_phn.mkdir()
    os.symlink(loop_wav.name, loop_wav)  # a link to itself
    result = subprocess.run([sys.executable, str(ROOT / "recipes/timit/local/prepare_timit.py"), "--corpus-dir",
                             str(root), "--output-dir", str(tmp_path / "manifests")],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert f"{fifo_phn}: a named pipe (FIFO), not a regular file" in result.stderr
    assert f"{fifo_wav}: a named pipe (FIFO), not a regular file" in result.stderr
    assert f"{directory_phn}: a directory, not a regular file" in result.stderr
    assert f"{loop_wav}: a symbolic link loop, not a regular file" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "manifests").exists()


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_nan_or_inf_samples_in_corpus_audio_are_named(tmp_path, bad_value):
    """Stage 1 passed them and stage 2 died in lilcom ("cannot convert float NaN to integer"), naming no file."""
    root = small_corpus(tmp_path)
    wav = first_utterance(root)
    samples = np.zeros(NUM_SAMPLES, dtype=np.float32)
    samples[[100, 2000]] = bad_value
    soundfile.write(str(wav), samples, 16000, format="WAV", subtype="FLOAT")  # TIMIT's name, RIFF float content
    with pytest.raises(CorpusError, match=re.escape(f"{wav}: 2 of {NUM_SAMPLES} samples are NaN or infinite")):
        standard_sets(root)


@pytest.mark.parametrize("copy_in", ["TRAIN/DR8/{name}", "TRAIN/DR1/{lower}", "TEST/DR1/{name}"])
def test_a_speaker_with_two_folders_is_named(tmp_path, copy_in):
    """The same speaker in two dialect regions (lhotse: "RecordingSet has recordings with duplicated IDs"), as
    FCEO0 and fceo0 in one (a FileExistsError on a temporary link), or in TRAIN and TEST (tested on its own
    training data)."""
    root = small_corpus(tmp_path)
    speaker_dir = first_speaker_dir(root)
    assert speaker_dir.parent.name == "DR1"
    copy = root / copy_in.format(name=speaker_dir.name, lower=speaker_dir.name.lower())
    shutil.copytree(speaker_dir, copy)
    first, second = sorted([speaker_dir, copy])
    with pytest.raises(CorpusError, match=re.escape(f"speaker {speaker_dir.name} has 2 folders: {first}, {second} "
                                                    f"(a TIMIT speaker has one; remove the copies)")):
        standard_sets(root)


# ----------------------------------------------------------------------------------------------------------
# Config (the other mistakes are in test_config.py)


def test_nothing_to_decode_is_refused_before_anything_runs(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("decoding: {splits: []}\n")
    result = run_group([str(RUN_SH), "--config", str(extra), "--dir", str(tmp_path / "work"), "--", "--dry-run"],
                       timeout=120)
    assert result.returncode != 0 and "[] should be non-empty" in result.stdout + result.stderr



@pytest.mark.parametrize("text,problem", [
    ("", "{extra}: empty (a config file holds settings, e.g. 'training: {{num_epochs: 5}}')"),
    ("- training\n- models\n", "{extra}: a YAML list, not a mapping of settings"),
    ("training: {num_epochs: 1}\nmodels: [ctc]\ntraining: {lr: 0.1}\n",
     "{extra}:3: key 'training' given twice (first on line 1); only the last would be used"),
    ("training:\n  lr: 0.1\n  lr: 0.2\n", "{extra}:3: key 'lr' given twice (first on line 2)"),
    ('{"models": ["ctc"], "models": ["transducer"]}', "{extra}: key 'models' given twice"),
    ("models: [ctc\n", "{extra}:2: not valid YAML (expected ',' or ']'"),
])
def test_a_bad_config_file_is_named_before_snakemake_runs(tmp_path, text, problem):
    """Snakemake named no file for an empty config or a list, and kept a repeated key's last value silently."""
    extra = tmp_path / "extra config.yaml"
    extra.write_text(text)
    result = run_group([str(RUN_SH), "--config", str(extra), "--dir", str(tmp_path / "work"), "--", "--dry-run"],
                       timeout=120)
    assert result.returncode == 1
    assert result.stderr.startswith("error: " + problem.format(extra=extra)), result.stderr
    assert not (tmp_path / "work").exists()  # refused before anything was made or locked

def test_a_relative_config_path_is_looked_for_from_the_callers_folder_then_the_recipes(tmp_path):
    """`recipes/timit/run.sh --config my.yaml` from another folder said only "my.yaml: no such config file": it
    looked in the recipe folder alone."""
    (tmp_path / "my.yaml").write_text("")  # found in the caller's folder: read, and named by its full path
    work = str(tmp_path / "work")
    mine = subprocess.run([str(RUN_SH), "--config", "my.yaml", "--dir", work, "--", "--dry-run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert mine.returncode == 1
    assert mine.stderr.startswith(f"error: {tmp_path / 'my.yaml'}: empty"), mine.stderr
    gone = subprocess.run([str(RUN_SH), "--config", "gone.yaml", "--dir", work], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert (gone.returncode, gone.stderr) == (2, f"run.sh: --config gone.yaml: no such config file (looked in "
                                                 f"{tmp_path} and in {RUN_SH.parent})\n")
    assert not (tmp_path / "work").exists()
    # not in the caller's folder: the recipe's own (its demo.yaml), as before
    recipes = run_group(["sh", "-c", f"cd {tmp_path} && exec {RUN_SH} --config demo.yaml --dir {work} --stop-stage 0 "
                                     f"-- --dry-run"], timeout=120)
    assert recipes.returncode == 0, recipes.stderr[-3000:]
    assert "demo_corpus" in recipes.stdout


# ----------------------------------------------------------------------------------------------------------
# Checkpoints

MODEL = {"type": "ctc", "num_layers": 1, "hidden_size": 16, "stack_frames": 3}


def test_checkpoint_of_another_model_config_is_named(tmp_path):
    """Weights of a 16-cell model in a checkpoint that says 8 cells: the error names the file."""
    model = build_model(MODEL, input_dim=123, vocab_size=61)
    path = tmp_path / "model.pt"
    save_checkpoint(path, {"model": model.state_dict(), "model_options": {**MODEL, "hidden_size": 8},
                           "input_dim": 123, "vocab_size": 61})
    with pytest.raises(ValueError, match=re.escape(f"{path}: weights do not fit")):
        load_model(path)


class Payload:
    """Unpickling this runs os.mkdir(marker): what a malicious checkpoint could do with any command."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path):
    path, marker = tmp_path / "model.pt", tmp_path / "pwned"
    torch.save({"model": Payload(marker)}, path)
    with pytest.raises(ValueError, match=re.escape(f"{path}: not a readable asrkit checkpoint (")):
        load_checkpoint(path)
    assert not marker.exists()
    # the payload is real: an unrestricted torch.load runs it
    torch.load(path, weights_only=False)
    assert marker.is_dir()


# ----------------------------------------------------------------------------------------------------------
# Spaces in the corpus and run paths, through run.sh, with a kill and an unlock on the way

SPACED_CONFIG = """
corpus_dir: {corpus}
models: [ctc]
units: {{type: phones, phone_set: 60}}
data: {{require_standard_sizes: false}}
model: {{num_layers: 1, hidden_size: 16, stack_frames: 3}}
training: {{schedule: fixed, init: torch, grad_clip: 5.0, num_epochs: 1, max_duration: 5, optimizer: adam, lr: 0.01, weight_noise_std: 0.0, num_workers: 0}}
decoding: {{ctc: [greedy], beams: [1], splits: [test]}}
"""


@pytest.mark.slow  # a whole recipe run
def test_recipe_runs_with_spaces_in_the_corpus_and_run_paths(tmp_path, monkeypatch):
    corpus = small_corpus(tmp_path / "my corpora" / "TIMIT copy", num_train_speakers=4)
    work = tmp_path / "my runs" / "run 1"
    config = tmp_path / "my configs" / "extra config.yaml"
    config.parent.mkdir()
    config.write_text(SPACED_CONFIG.format(corpus=json.dumps(str(corpus))))
    command = [str(RUN_SH), "--config", str(config), "--dir", str(work), *RUN_ARGS, "--", *SNAKEMAKE_ARGS]

    # killed in stage 1: the unlock command run.sh prints must work as printed, spaces and all
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (work / "logs/1_manifests.log").exists():
            assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-3000:]
            time.sleep(0.02)
    finally:
        kill_group(first)
    locked = run_group(command, timeout=60)
    assert locked.returncode == 1, locked.stderr
    unlock = re.search(r"unlock it with: +(.+)", locked.stderr).group(1)
    unlocked = run_group(["bash", "-c", unlock], timeout=120)
    assert unlocked.returncode == 0, unlocked.stderr[-2000:]

    result = run_group(command, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^\| *CTC *\| *greedy *\|", (work / "RESULTS.md").read_text(), re.M)
    cuts = CutSet.from_file(work / "data/features/cuts_test.jsonl.gz")
    assert len(cuts) == 8
    assert cuts[0].recording.sources[0].source.startswith(str(corpus.resolve()))
    monkeypatch.chdir(work)  # feature paths are relative to the run folder
    assert cuts[0].load_features().shape[1] == 41
