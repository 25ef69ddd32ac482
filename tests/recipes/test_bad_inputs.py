"""Bad inputs and what the user sees: the cases of docs/bad_inputs.md that no other test file covers.

The catalogue in docs/bad_inputs.md lists every case with its message and the test that checks it; most corpus
problems are tested in test_prepare_timit.py and config mistakes in test_config.py.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from lhotse import CutSet

from asrkit.training.checkpoint import build_model, load_checkpoint, load_model, save_checkpoint
from prepare_timit import CorpusError, main as prepare_timit_main, standard_sets
from process_groups import kill_group, run_group
from tiny_recipe import RUN_ARGS, SNAKEMAKE_ARGS
from timit_skeleton import write_timit_skeleton

ROOT = Path(__file__).resolve().parents[2]
RUN_SH = ROOT / "recipes" / "timit" / "run.sh"


def small_corpus(root: Path, **sizes) -> Path:
    return write_timit_skeleton(root, **{"num_train_speakers": 2, "num_other_test_speakers": 0,
                                         "num_dev_speakers": 1, "num_test_speakers": 1, **sizes})


# ----------------------------------------------------------------------------------------------------------
# Corpus


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


# ----------------------------------------------------------------------------------------------------------
# Config (the other mistakes are in test_config.py)


def test_nothing_to_decode_is_refused_before_anything_runs(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("decoding: {splits: []}\n")
    result = run_group([str(RUN_SH), "--config", str(extra), "--dir", str(tmp_path / "work"), "--", "--dry-run"],
                       timeout=120)
    assert result.returncode != 0 and "[] should be non-empty" in result.stdout + result.stderr


# ----------------------------------------------------------------------------------------------------------
# Checkpoints

MODEL = {"num_layers": 1, "hidden_size": 16, "stack_frames": 3}


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
training: {{num_epochs: 1, max_duration: 5, optimizer: adam, lr: 0.01, weight_noise_std: 0.0, num_workers: 0}}
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
