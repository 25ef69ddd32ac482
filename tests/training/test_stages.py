"""Stages 2-8 as functions, on a TIMIT-shaped skeleton corpus: features, lang, model, training, decoding."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from lhotse import CutSet

from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.config import UnitsConfig
from asrkit.data.dataset import RecognitionDataset
from asrkit.data.feature_archives import main as verify_main, verify_archives
from asrkit.data.units import units_from_state
from asrkit.decoding import lm_weights
from asrkit.decoding.decode import decode, main as decode_main
from asrkit.scoring.hypotheses import error_rate
from asrkit.training import ngram_lm
from asrkit.data.features import (add_deltas, compute_features, compute_global_stats, input_dim, load_stats, merge_shards,
                             parse_shard)
from asrkit.data.units import PhoneUnits
from asrkit.data.lang import BLANK, TokenTable, prepare_phones
from asrkit.model.encoder import BiLstmEncoder
from asrkit.training.train import train
from asrkit.data.corpus import write_manifests
from prepare_timit import standard_sets
from interrupted_training import stopped_after
from timit_skeleton import FEATURES, training_flags, training_setup, write_timit_skeleton


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Manifests, features of every split, statistics and lang of a small skeleton corpus."""
    root = tmp_path_factory.mktemp("stages")
    corpus = write_timit_skeleton(root / "corpus", num_train_speakers=4, num_other_test_speakers=0,
                                  num_dev_speakers=1, num_test_speakers=1)
    write_manifests(standard_sets(corpus), root / "manifests", "timit")
    for split in ("train", "dev", "test"):
        compute_features(root / f"manifests/timit_recordings_{split}.jsonl.gz",
                         root / f"manifests/timit_supervisions_{split}.jsonl.gz",
                         root / f"features/cuts_{split}.jsonl.gz", root / f"features/feats_{split}", FEATURES,
                         num_jobs=2 if split == "train" else 1, min_seconds_per_job=0)  # 2 workers, though small
    compute_global_stats(CutSet.from_file(root / "features/cuts_train.jsonl.gz"), FEATURES, root / "features/stats.pt")
    prepare_phones(root / "lang", 60)
    return root


def test_features_are_fbank_plus_energy_and_deterministic(prepared, tmp_path):
    cuts = CutSet.from_file(prepared / "features/cuts_train.jsonl.gz")
    assert len(cuts) == 32
    feats = cuts[0].load_features()
    assert feats.shape == (30, 41)  # 0.3 s at 10 ms; 40 mel bands + energy
    again = compute_features(prepared / "manifests/timit_recordings_train.jsonl.gz",
                             prepared / "manifests/timit_supervisions_train.jsonl.gz",
                             tmp_path / "cuts.jsonl.gz", tmp_path / "feats", FEATURES, num_jobs=1)
    np.testing.assert_array_equal(again[cuts[0].id].load_features(), feats)
    # no temporary artifacts are left behind
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_features_in_shards_equal_those_in_one(prepared, tmp_path):
    """Three shard jobs and their merge give every cut the same features, and the same statistics, as one job."""
    manifests = [prepared / f"manifests/timit_{kind}_train.jsonl.gz" for kind in ("recordings", "supervisions")]
    whole = CutSet.from_file(prepared / "features/cuts_train.jsonl.gz")
    shards = [tmp_path / f"cuts_train_{i}-of-3.jsonl.gz" for i in (1, 2, 3)]
    for index, shard in enumerate(shards, start=1):
        compute_features(*manifests, shard, tmp_path / f"feats_train/{index}-of-3", FEATURES, shard=(index, 3))
    assert [len(CutSet.from_file(shard)) for shard in shards] == [10, 11, 11]  # of 32, sorted by ID
    merged = merge_shards(shards, tmp_path / "cuts_train.jsonl.gz")
    assert list(merged.ids) == sorted(whole.ids)
    for cut in whole:
        np.testing.assert_array_equal(merged[cut.id].load_features(), cut.load_features())
    compute_global_stats(merged, FEATURES, tmp_path / "stats.pt")
    for key, value in load_stats(prepared / "features/stats.pt").items():
        assert torch.equal(load_stats(tmp_path / "stats.pt")[key], value), key
    # more shards than cuts: some are empty
    assert len(compute_features(*manifests, tmp_path / "empty.jsonl.gz", tmp_path / "empty", FEATURES, shard=(1, 33))) == 0
    assert len(merge_shards([tmp_path / "empty.jsonl.gz"], tmp_path / "merged_empty.jsonl.gz")) == 0
    with pytest.raises(ValueError, match=f"is in two shards: {shards[0]} and {shards[0]}"):
        merge_shards([shards[0], shards[0]], tmp_path / "twice.jsonl.gz")
    with pytest.raises(ValueError, match="bad shard '4-of-3'"):
        parse_shard("4-of-3")


@pytest.mark.parametrize("damage", ["cut short", "grown", "changed"])
def test_a_damaged_feature_archive_is_named_with_its_cuts_and_removed_for_the_rerun(prepared, tmp_path, damage):
    """A cut-short feats.lca failed training in a DataLoader worker with lilcom's "Length of string was too
    short", naming no archive; the check run before training and decoding names it and its cuts."""
    manifests = [prepared / f"manifests/timit_{kind}_dev.jsonl.gz" for kind in ("recordings", "supervisions")]
    cuts_path, storage = tmp_path / "cuts_dev.jsonl.gz", tmp_path / "feats_dev"
    cuts = compute_features(*manifests, cuts_path, storage, FEATURES)
    archive = storage / "feats.lca"
    assert json.loads((storage / "archives.json").read_text())["feats.lca"]["bytes"] == archive.stat().st_size
    assert verify_archives([cuts_path], remove_damaged=False) == []
    data = archive.read_bytes()
    damaged = {"cut short": data[:len(data) // 2], "grown": data + b"\0",
               "changed": data[:100] + bytes([data[100] ^ 1]) + data[101:]}[damage]
    archive.write_bytes(damaged)
    problem = {"cut short": f"{len(damaged)} bytes, {len(data)} when it was written (cut short)",
               "grown": f"{len(damaged)} bytes, {len(data)} when it was written (grown)",
               "changed": "its content changed since it was written (SHA-256 differs)"}[damage]
    shown = ", ".join(sorted(cuts.ids)[:3])
    expected = (f"{archive}: damaged feature archive: {problem}; it holds the features of 8 cut(s) of {cuts_path} "
                f"({shown}, ...); ")
    assert verify_archives([cuts_path], remove_damaged=False) == [expected + f"remove {storage} and rerun to recompute it"]
    if damage == "cut short":  # what training met: now the error names the archive and the cut
        dataset = RecognitionDataset(TokenTable.load(prepared / "lang/tokens.txt"), PhoneUnits(60), FEATURES,
                                     load_stats(prepared / "features/stats.pt"))
        last = CutSet.from_cuts([sorted(cuts, key=lambda c: c.id)[-1]])
        with pytest.raises(ValueError, match=re.escape(f"{archive}: cannot read the features of cut {last[0].id} (")):
            dataset[last]
    with pytest.raises(SystemExit) as failed:
        verify_main(["--remove-damaged", "--cuts", str(cuts_path)])
    assert str(failed.value) == ("error: " + expected + f"removed {storage} and {cuts_path}: a rerun recomputes them "
                                 f"(stage 2) and what was made from them")
    assert not storage.exists() and not cuts_path.exists() and tmp_path.exists()


def test_global_stats_normalise_the_training_set(prepared):
    stats = load_stats(prepared / "features/stats.pt")
    assert stats["mean"].shape == (123,) == (input_dim(FEATURES),)
    cuts = CutSet.from_file(prepared / "features/cuts_train.jsonl.gz")
    frames = torch.cat([add_deltas(torch.from_numpy(c.load_features())) for c in cuts])
    normalised = (frames - stats["mean"]) / stats["std"]
    assert normalised.mean(0).abs().max() < 1e-3
    assert (normalised.std(0) - 1).abs().max() < 1e-2


def test_deltas_follow_kaldi():
    ramp = torch.arange(10.0).unsqueeze(1) * 3  # slope 3: delta 3 inside, delta-delta 0 inside
    out = add_deltas(ramp)
    assert out.shape == (10, 3)
    assert torch.allclose(out[2:-2, 1], torch.tensor(3.0))
    assert torch.allclose(out[4:-4, 2], torch.tensor(0.0), atol=1e-5)
    # Kaldi replicates the edge frames: at t=0 the window is [0, 0, 0, 3, 6] -> (1*3 + 2*6 - 0) / 10
    assert out[0, 1].item() == pytest.approx(1.5)
    # delta-deltas: Kaldi's order-2 window is the delta window convolved with itself, on replicated edges
    nine_tap = torch.tensor([4.0, 4, 1, -4, -10, -4, 1, 4, 4]) / 100
    x = torch.randn(12, 1)
    padded = torch.cat([x[:1].expand(4, 1), x, x[-1:].expand(4, 1)])
    expected = torch.stack([(padded[t:t + 9, 0] * nine_tap).sum() for t in range(12)])
    assert torch.allclose(add_deltas(x)[:, 2], expected, atol=1e-6)


def test_lang_token_tables(prepared, tmp_path):
    tokens = TokenTable.load(prepared / "lang/tokens.txt")
    assert tokens.symbols[0] == BLANK and len(tokens) == 61
    assert tokens.decode(tokens.encode(["h#", "s", "iy"])) == ["h#", "s", "iy"]
    with pytest.raises(ValueError, match="utt1: symbol 'zz' is not in the token table"):
        tokens.encode(["zz"], context="utt1")
    prepare_phones(tmp_path, 48)
    assert len(TokenTable.load(tmp_path / "tokens.txt")) == 49
    lines = [line.split() for line in (tmp_path / "phones.61-39.map").read_text().splitlines()]
    assert len(lines) == 61 and ["q"] in lines  # TIMIT's labels; q alone: deleted, as in Kaldi's map
    folding = dict(line for line in lines if len(line) == 2)
    assert folding["ix"] == "ih" and folding["pcl"] == "sil" and len(set(folding.values())) == 39


def test_encoder_frame_stacking():
    encoder = BiLstmEncoder(input_dim=5, hidden_size=4, num_layers=2, stack_frames=3)
    out, lens = encoder(torch.randn(2, 10, 5), torch.tensor([10, 7]))
    assert out.shape == (2, 4, 8) and lens.tolist() == [4, 3]
    assert out[1, 3:].abs().sum() == 0  # padding stays zero


def training_options(num_epochs):
    return {"seed": 1, "model_type": "ctc", "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3},
            "training": {"num_epochs": num_epochs, "max_duration": 3, "optimizer": "adam", "lr": 0.01,
                         "num_workers": 0, "keep_last_checkpoints": 2}}


def run_training(prepared, exp_dir, num_epochs):
    train(prepared / "features/cuts_train.jsonl.gz", prepared / "features/cuts_dev.jsonl.gz",
          prepared / "features/stats.pt", prepared / "lang/tokens.txt", exp_dir, training_setup(training_options(num_epochs)))


def test_training_resumes_to_the_same_model(prepared, tmp_path):
    run_training(prepared, tmp_path / "straight", 3)
    run_training(prepared, tmp_path / "resumed", 2)
    (tmp_path / "resumed/model.pt").unlink()
    run_training(prepared, tmp_path / "resumed", 3)  # continues from epoch-2.pt
    straight = load_checkpoint(tmp_path / "straight/checkpoints/epoch-3.pt")
    resumed = load_checkpoint(tmp_path / "resumed/checkpoints/epoch-3.pt")
    for name, weights in straight["model"].items():
        assert torch.equal(weights, resumed["model"][name]), name
    assert sorted(p.name for p in (tmp_path / "resumed/checkpoints").iterdir()) == ["epoch-2.pt", "epoch-3.pt"]
    history = json.loads((tmp_path / "straight/history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_training_killed_mid_epoch_resumes_exactly(prepared, tmp_path):
    """SIGKILL a real training process once a mid-epoch checkpoint exists; the rerun ends at the same weights."""
    options = training_options(2)
    options["training"]["checkpoint_every_batches"] = 2
    options["training"]["num_workers"] = 1
    command = [sys.executable, "-m", "asrkit.training.train", "--train-cuts", str(prepared / "features/cuts_train.jsonl.gz"),
               "--dev-cuts", str(prepared / "features/cuts_dev.jsonl.gz"), "--stats", str(prepared / "features/stats.pt"),
               "--tokens", str(prepared / "lang/tokens.txt"), *training_flags(options), "--training.num_threads", "1"]
    subprocess.run(command + ["--exp-dir", str(tmp_path / "straight")], check=True, capture_output=True)

    killed = subprocess.Popen(command + ["--exp-dir", str(tmp_path / "killed")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not list((tmp_path / "killed/checkpoints").glob("epoch-*-batch-*.pt")) and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not (tmp_path / "killed/model.pt").exists()
    resumed = subprocess.run(command + ["--exp-dir", str(tmp_path / "killed")], check=True, capture_output=True,
                             text=True)
    assert "resuming from" in resumed.stderr
    assert not [p for p in (tmp_path / "killed").rglob("*.partial*")]  # leftovers of the kill are cleared
    straight = load_checkpoint(tmp_path / "straight/model.pt")["model"]
    after_kill = load_checkpoint(tmp_path / "killed/model.pt")["model"]
    for name, weights in straight.items():
        assert torch.equal(weights, after_kill[name]), name


def test_changed_options_do_not_resume_stale_checkpoints(prepared, tmp_path):
    run_training(prepared, tmp_path, 1)
    options = training_options(1)
    options["model"]["hidden_size"] = 8
    train(prepared / "features/cuts_train.jsonl.gz", prepared / "features/cuts_dev.jsonl.gz",
          prepared / "features/stats.pt", prepared / "lang/tokens.txt", tmp_path, training_setup(options))
    assert load_model(tmp_path / "model.pt").encoder.lstm.hidden_size == 8
    assert not list(tmp_path.glob("checkpoints.stale-*"))  # the stale checkpoints were deleted, not kept aside


@pytest.mark.parametrize("damaged", ["epoch-2.pt", "epoch-2-batch-2.pt"])
def test_a_damaged_latest_checkpoint_is_set_aside_and_an_older_one_resumed(prepared, tmp_path, caplog, damaged):
    """A truncated newest checkpoint (end of epoch, or mid-epoch) stopped the rerun; now it is set aside with a
    warning naming it, and training resumes from the checkpoint before it, to the weights of a run never stopped."""
    setup = training_setup({**training_options(2), "training": {**training_options(2)["training"],
                                                                 "checkpoint_every_batches": 2}})
    cuts = [prepared / "features/cuts_train.jsonl.gz", prepared / "features/cuts_dev.jsonl.gz",
            prepared / "features/stats.pt", prepared / "lang/tokens.txt"]
    train(*cuts, tmp_path / "straight", setup)
    if damaged == "epoch-2.pt":
        train(*cuts, tmp_path / "resumed", setup)
        (tmp_path / "resumed/model.pt").unlink()
    else:
        with stopped_after(damaged):
            train(*cuts, tmp_path / "resumed", setup)
    checkpoints = tmp_path / "resumed/checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted(["epoch-1.pt", damaged])
    data = (checkpoints / damaged).read_bytes()
    (checkpoints / damaged).write_bytes(data[:len(data) // 2])
    caplog.set_level("INFO")
    train(*cuts, tmp_path / "resumed", setup)
    assert f"{checkpoints / damaged} is damaged: set aside as {checkpoints / damaged}.damaged" in caplog.text
    assert f"resuming from {checkpoints / 'epoch-1.pt'}" in caplog.text
    assert (checkpoints / f"{damaged}.damaged").read_bytes() == data[:len(data) // 2]
    straight, resumed = (load_checkpoint(tmp_path / run / "model.pt")["model"] for run in ("straight", "resumed"))
    for name, weights in straight.items():
        assert torch.equal(weights, resumed[name]), name


def test_decode_uses_only_the_model_file(prepared, tmp_path):
    run_training(prepared, tmp_path, 1)
    cuts = CutSet.from_file(prepared / "features/cuts_test.jsonl.gz")
    greedy = decode(cuts, tmp_path / "model.pt", "greedy", beam=1, avg=1)
    beam1 = decode(cuts, tmp_path / "model.pt", "prefix_beam", beam=1, avg=1)
    assert set(greedy) == set(cuts.ids) and greedy == beam1


def test_broken_checkpoint_is_named(tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{bad}: not a readable asrkit checkpoint"):
        load_model(bad)


def test_ngram_lm_stage_writes_an_arpa_file_that_kenlm_reads(prepared, tmp_path):
    """Stage 5's n-gram LM of the training transcripts in the models' phone set: kenlm loads it, and the dev
    perplexity the stage reports is kenlm's."""
    kenlm = pytest.importorskip("kenlm")
    arpa = tmp_path / "3gram.arpa"
    ngram_lm.main(["--train-cuts", str(prepared / "features/cuts_train.jsonl.gz"), "--dev-cuts",
                   str(prepared / "features/cuts_dev.jsonl.gz"), "--tokens", str(prepared / "lang/tokens.txt"),
                   "--units.type", "phones", "--units.phone_set", "60", "--ngram_lm.order", "3", "--output", str(arpa)])
    report = json.loads(arpa.with_suffix(".json").read_text())
    model = kenlm.Model(str(arpa))
    assert model.order == 3 and report["order"] == 3
    tokens = TokenTable.load(prepared / "lang/tokens.txt")
    assert all(symbol in model for symbol in tokens.symbols[1:])  # every phone the models emit, seen or not
    dev = ngram_lm.transcripts(prepared / "features/cuts_dev.jsonl.gz", tokens, UnitsConfig.from_dict(
        {"type": "phones", "phone_set": 60}), prepared / "lang")
    log10_prob = sum(model.score(" ".join(words)) for words in dev)
    kenlm_perplexity = 10 ** (-log10_prob / sum(len(words) + 1 for words in dev))
    assert report["dev_perplexity"] == pytest.approx(kenlm_perplexity, rel=1e-5)
    # the skeleton's dev speakers read the training sentences: a perplexity near 1, but not below
    assert 1 <= report["train_perplexity"] <= report["dev_perplexity"] < 60


def test_lm_weights_are_chosen_on_dev_and_stored_with_the_decoding(prepared, tmp_path):
    run_training(prepared, tmp_path, 1)
    lm_file = tmp_path / "2gram.arpa"
    ngram_lm.main(["--train-cuts", str(prepared / "features/cuts_train.jsonl.gz"), "--dev-cuts",
                   str(prepared / "features/cuts_dev.jsonl.gz"), "--tokens", str(prepared / "lang/tokens.txt"),
                   "--units.type", "phones", "--units.phone_set", "60", "--output", str(lm_file)])
    model, dev = tmp_path / "model.pt", prepared / "features/cuts_dev.jsonl.gz"
    search = ["--model", str(model), "--method", "prefix_beam", "--beam", "4", "--device", "cpu"]
    lm_weights.main(["--cuts", str(dev), *search, "--lm", "ngram", "--lm-file", str(lm_file),
                     "--decoding.lm_weight", "0", "2", "--decoding.lm_bonus", "0", "1",
                     "--output", str(tmp_path / "lm_weights.json")])
    chosen = json.loads((tmp_path / "lm_weights.json").read_text())
    grid = {(point["weight"], point["bonus"]): point["PER"] for point in chosen["grid"]}
    assert set(grid) == {(0, 0), (0, 1), (2, 0), (2, 1)}
    assert chosen["dev_PER"] == min(grid.values()) == grid[chosen["weight"], chosen["bonus"]]
    # weight and bonus 0: the decoding without an LM
    plain = decode(CutSet.from_file(dev), model, "prefix_beam", beam=4, avg=1)
    assert grid[0, 0] == error_rate(CutSet.from_file(dev), plain, load_checkpoint_units(model))

    test = prepared / "features/cuts_test.jsonl.gz"
    decode_main(["--cuts", str(test), *search, "--lm", "ngram", "--lm-file", str(lm_file), "--lm-weights",
                 str(tmp_path / "lm_weights.json"), "--output", str(tmp_path / "hyps_test.txt")])
    timing = json.loads((tmp_path / "hyps_test.json").read_text())
    assert (timing["lm"], timing["lm_weight"], timing["lm_bonus"]) == ("ngram", chosen["weight"], chosen["bonus"])


def load_checkpoint_units(model_path):
    return units_from_state(load_checkpoint(model_path)["units"])
