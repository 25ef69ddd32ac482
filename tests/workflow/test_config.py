"""The recipe config is validated against the schema before any stage runs; errors name the key."""

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from asrkit.config import to_flags

RUN_SH = Path(__file__).resolve().parents[2] / "recipes" / "timit" / "run.sh"


def dry_run(tmp_path, extra_yaml):
    extra = tmp_path / "extra.yaml"
    extra.write_text(extra_yaml)
    return subprocess.run([str(RUN_SH), "--config", str(extra), "--dir", str(tmp_path / "work"), "--", "--dry-run"],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("extra_yaml,message", [
    ("trainig: {num_epochs: 3}\n", "'trainig' was unexpected"),
    ("model: {num_layers: 0, hidden_size: 8}\n", "0 is less than the minimum of 1"),
    ("model: {num_layers: 1, hidden_size: 8, stack_frames: 100}\n", "100 is greater than the maximum of 8"),
    ("training: {max_infeasible_fraction: 2}\n", "2 is greater than the maximum of 1"),
    ("features: {type: plp}\n", "'plp' is not one of ['fbank', 'mfcc']"),
    ("decoding: {ctc: [greedy], transducer: [greedy], beams: [4], splits: [eval]}\n",
     "'eval' is not one of ['dev', 'test', 'heldout']"),
    ("decoding: {ctc: [greedy], transducer: [greedy], beams: [4], splits: [test, heldout]}\n",
     "decoding.splits: 'heldout' is the demo corpus's held-out test set, and there is none: set "
     "demo_corpus.heldout_voices"),
    ("models: [ctc]\ndecoding: {ctc: [], beams: [4]}\n",
     "decoding.ctc: empty, so ctc would be trained and never decoded"),
    ("models: [ctc, rnnt]\n", "models: 'rnnt' not known; expected some of ctc, transducer, pretrained_transducer"),
    ("units: {phone_set: 39}\n", "39 is not one of [61, 60, 48, None]"),  # a scoring set, not trained
    ("corpus: {parts: {train: a, dev: b}}\n", "'test' is a required property"),
    ("decoding: {avg: 4}\ntraining: {keep_last_checkpoints: 3}\n",
     "decoding.avg 4 is more than training.keep_last_checkpoints 3"),
])
def test_bad_config_is_refused_with_its_key(tmp_path, extra_yaml, message):
    result = dry_run(tmp_path, extra_yaml)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "work" / "data").exists()


def test_valid_config_plans_every_stage(tmp_path):
    result = dry_run(tmp_path, "corpus_dir: null\n")
    assert result.returncode == 0, result.stderr
    for rule in ("demo_corpus", "manifests", "features", "feature_stats", "lang", "train_ctc", "phone_lm",
                 "train_transducer", "train_pretrained_transducer", "decode", "score", "results"):
        assert rule in result.stdout
    assert "_heldout" not in result.stdout and "--heldout" not in result.stdout  # none unless asked for


def test_heldout_voices_make_a_heldout_split_that_is_decoded_and_scored(tmp_path):
    result = dry_run(tmp_path, "corpus_dir: null\nmodels: [ctc]\n"
                               "demo_corpus: {heldout_voices: [awb, ked_diphone], num_heldout_speakers: 2}\n"
                               "decoding: {ctc: [greedy], transducer: [greedy], beams: [4], splits: [dev, heldout]}\n")
    assert result.returncode == 0, result.stderr
    assert "--heldout-voices awb ked_diphone --" in result.stdout and "--num-heldout-speakers 2 " in result.stdout
    for output in ("timit_supervisions_heldout.jsonl.gz", "cuts_heldout.jsonl.gz", "exp/ctc/decode_greedy/per_heldout.txt"):
        assert output in result.stdout
    assert "per_test.txt" not in result.stdout  # only the splits asked for are decoded


def test_run_sh_rejects_unknown_options():
    result = subprocess.run([str(RUN_SH), "--stgae", "1"], capture_output=True, text=True)
    assert result.returncode == 2 and "unknown option --stgae" in result.stderr


def test_librispeech_config_plans_sentencepiece_units_and_word_scoring(tmp_path):
    run_sh = RUN_SH.parents[1] / "librispeech" / "run.sh"
    result = subprocess.run([str(run_sh), "--config", "demo.yaml", "--dir", str(tmp_path / "work"), "--", "--dry-run"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    units = yaml.safe_load((run_sh.parent / "demo.yaml").read_text())["units"]
    assert units["type"] == "sentencepiece"
    assert shlex.join(to_flags("units", units)) in result.stdout  # stage 3 trains the demo's pieces
    assert "wer_test.txt" in result.stdout and "cer_test.txt" in result.stdout and "per_test.txt" not in result.stdout
