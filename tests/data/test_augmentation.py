"""Augmented copies of the training cuts (asrkit.data.augmentation) through the feature stage (asrkit.data.features)."""

import argparse
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from lhotse import CutSet, RecordingSet, SupervisionSet

from asrkit.config import AugmentationConfig, add_flags, from_flags, to_flags
from asrkit.data.augmentation import augment, is_augmented
from asrkit.data.corpus import write_manifests
from asrkit.data.features import compute_features, compute_global_stats, merge_shards
from prepare_timit import standard_sets
from timit_skeleton import FEATURES, training_setup, write_timit_skeleton

RUN_SH = Path(__file__).resolve().parents[2] / "recipes" / "timit" / "run.sh"
#: every kind of copy, one each
ALL_KINDS = AugmentationConfig.from_dict({"speed_perturb": [0.9, 1.1], "reverb": 1, "noise": 1})


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    """The recordings and supervisions manifests of a skeleton corpus's train and dev splits (16 + 8 cuts)."""
    root = tmp_path_factory.mktemp("augmentation")
    corpus = write_timit_skeleton(root / "corpus", num_train_speakers=2, num_other_test_speakers=0,
                                  num_dev_speakers=1, num_test_speakers=1)
    write_manifests(standard_sets(corpus), root / "manifests", "timit")
    return {split: (root / f"manifests/timit_recordings_{split}.jsonl.gz",
                    root / f"manifests/timit_supervisions_{split}.jsonl.gz") for split in ("train", "dev")}


def features_by_id(cuts: CutSet):
    return {cut.id: cut.load_features() for cut in cuts}


def assert_same_features(a: CutSet, b: CutSet):
    first, second = features_by_id(a), features_by_id(b)
    assert sorted(first) == sorted(second)
    for cut_id in first:
        np.testing.assert_array_equal(first[cut_id], second[cut_id], err_msg=cut_id)


def test_speed_perturbed_copies_have_rescaled_frames_and_the_same_transcript(manifests, tmp_path):
    speed = AugmentationConfig.from_dict({"speed_perturb": [0.9, 1.1]})
    cuts = compute_features(*manifests["train"], tmp_path / "cuts.jsonl.gz", tmp_path / "feats", FEATURES,
                            augmentation=speed, seed=1)
    stored = CutSet.from_file(tmp_path / "cuts.jsonl.gz").to_eager()  # reads back: the copies without audio
    originals = [cut for cut in stored if not is_augmented(cut)]
    assert len(originals) == 16 and len(stored) == len(cuts) == 3 * 16
    for original in originals:
        for factor in (0.9, 1.1):
            copy = stored[f"{original.id}_sp{factor}"]
            assert copy.custom == {"augmentation": f"sp{factor}"} and copy.recording is None
            assert abs(copy.load_features().shape[0] - original.num_frames / factor) <= 1
            assert [s.text for s in copy.supervisions] == [s.text for s in original.supervisions]
            assert copy.supervisions[0].id != original.supervisions[0].id
            assert copy.supervisions[0].duration == pytest.approx(original.supervisions[0].duration / factor,
                                                                  abs=1e-3)


def test_off_the_manifest_and_features_are_those_without_augmentation(manifests, tmp_path):
    """Off (dev and test always), a split is computed exactly as before augmentation existed."""
    plain = compute_features(*manifests["dev"], tmp_path / "plain.jsonl.gz", tmp_path / "plain", FEATURES)
    off = compute_features(*manifests["dev"], tmp_path / "off.jsonl.gz", tmp_path / "off", FEATURES,
                           augmentation=AugmentationConfig.from_dict({}), seed=3)
    assert not any(map(is_augmented, off))
    relocated = [{**cut.to_dict(), "features": {**cut.to_dict()["features"], "storage_path": ""}}
                 for cut in (plain, off) for cut in cut]
    assert relocated[:len(plain)] == relocated[len(plain):]
    assert_same_features(plain, off)


def test_copies_are_the_same_for_a_seed_whatever_the_jobs_and_shards(manifests, tmp_path):
    one = compute_features(*manifests["train"], tmp_path / "one.jsonl.gz", tmp_path / "one", FEATURES,
                           augmentation=ALL_KINDS, seed=5)
    two_jobs = compute_features(*manifests["train"], tmp_path / "two.jsonl.gz", tmp_path / "two", FEATURES,
                                num_jobs=2, min_seconds_per_job=0, augmentation=ALL_KINDS, seed=5)
    shards = [compute_features(*manifests["train"], tmp_path / f"shard{i}.jsonl.gz", tmp_path / f"shard{i}",
                               FEATURES, shard=(i, 2), augmentation=ALL_KINDS, seed=5) for i in (1, 2)]
    assert all(len(shard) for shard in shards)
    merged = merge_shards([tmp_path / f"shard{i}.jsonl.gz" for i in (1, 2)], tmp_path / "merged.jsonl.gz")
    assert len(one) == 16 * 5
    assert_same_features(one, two_jobs)
    assert_same_features(one, merged)
    # another seed: other rooms and babble, the same originals and speed-perturbed copies
    other = features_by_id(compute_features(*manifests["train"], tmp_path / "other.jsonl.gz", tmp_path / "other",
                                            FEATURES, augmentation=ALL_KINDS, seed=6))
    for cut_id, feats in features_by_id(one).items():
        changed = not np.array_equal(feats, other[cut_id])
        assert changed == ("_rvb" in cut_id or "_noise" in cut_id), cut_id


def train_cuts(manifests) -> CutSet:
    recordings, supervisions = manifests["train"]
    return CutSet.from_manifests(recordings=RecordingSet.from_file(recordings),
                                 supervisions=SupervisionSet.from_file(supervisions)).to_eager()


def test_babble_copy_has_the_snr_drawn(manifests):
    """The noise (the copy's audio minus the original's) has about 1/10^(SNR/10) of the original's power."""
    snr = 15.0
    originals = train_cuts(manifests)
    augmented = augment(originals, AugmentationConfig.from_dict({"noise": 1, "noise_snr": [snr, snr]}), seed=7)
    for original in originals:
        copy = augmented[f"{original.id}_noise1"]
        assert copy.duration == original.duration and copy.custom == {"augmentation": "noise1"}
        assert [s.text for s in copy.supervisions] == [s.text for s in original.supervisions]
        clean = original.load_audio()
        noise = copy.load_audio() - clean
        assert 10 * math.log10(np.mean(clean ** 2) / np.mean(noise ** 2)) == pytest.approx(snr, abs=1.5)
        assert np.mean(noise[..., -100:] ** 2) > 0  # the talkers cover the cut to its end


def test_reverberated_copy_keeps_length_and_power(manifests):
    originals = train_cuts(manifests)
    augmented = augment(originals, AugmentationConfig.from_dict({"reverb": 2}), seed=7)
    for original in originals:
        clean = original.load_audio()
        first, second = (augmented[f"{original.id}_rvb{i}"].load_audio() for i in (1, 2))
        assert first.shape == clean.shape
        assert np.mean(first ** 2) == pytest.approx(np.mean(clean ** 2), rel=1e-3)
        assert not np.allclose(first, clean) and not np.allclose(first, second)  # a room of its own


def test_statistics_are_those_of_the_original_cuts(manifests, tmp_path):
    plain = compute_features(*manifests["train"], tmp_path / "plain.jsonl.gz", tmp_path / "plain", FEATURES)
    augmented = compute_features(*manifests["train"], tmp_path / "aug.jsonl.gz", tmp_path / "aug", FEATURES,
                                 augmentation=ALL_KINDS, seed=5)
    expected = compute_global_stats(plain, FEATURES, tmp_path / "plain.pt")
    found = compute_global_stats(augmented, FEATURES, tmp_path / "aug.pt")
    assert int(found["num_frames"]) == int(expected["num_frames"]) == sum(c.num_frames for c in plain)
    for key in ("mean", "std"):
        assert torch.equal(found[key], expected[key])


def test_flags_round_trip_and_bad_ranges_are_named():
    for values in ({"speed_perturb": [], "reverb": 1, "noise": 0, "noise_snr": [5, 10]},
                   {"speed_perturb": [0.9, 1.1], "reverb": 0, "noise": 2, "noise_snr": [10, 20]}):
        parser = argparse.ArgumentParser()
        add_flags(parser, AugmentationConfig)
        assert from_flags(parser.parse_args(to_flags("augmentation", values)), AugmentationConfig) \
            == AugmentationConfig.from_dict(values)
    assert not AugmentationConfig.from_dict({}).enabled
    with pytest.raises(ValueError, match=r"^config augmentation.noise_snr: \[20.0, 10.0\] is not a range"):
        AugmentationConfig.from_dict({"noise_snr": [20, 10]})
    with pytest.raises(ValueError, match="config augmentation.speed_perturb.0"):
        AugmentationConfig.from_dict({"speed_perturb": [1.0]})


def test_augmentation_changes_the_trainings_fingerprint():
    """Checkpoints of another augmentation are not resumed; off, the fingerprint is that of no section."""
    settings = {"seed": 1, "model_type": "ctc", "model": {"num_layers": 1, "hidden_size": 8},
                "training": {"num_epochs": 1, "max_duration": 10}}
    off = training_setup(settings).digest()
    speed = training_setup({**settings, "augmentation": {"speed_perturb": [0.9, 1.1]}}).digest()
    noise = training_setup({**settings, "augmentation": {"speed_perturb": [0.9, 1.1], "noise": 1}}).digest()
    assert len({off, speed, noise}) == 3
    assert training_setup({**settings, "augmentation": {"reverb": 0}}).digest() == off


def test_only_the_train_features_and_the_trainings_get_the_augmentation(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text("corpus_dir: null\nseed: 11\naugmentation: {speed_perturb: [0.9, 1.1], reverb: 1}\n")
    result = subprocess.run([str(RUN_SH), "--config", str(extra), "--dir", str(tmp_path / "work"), "--", "--dry-run",
                             "--printshellcmds"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "asrkit.data.features compute" in line
                or "asrkit.training.train " in line]
    flags = "--augmentation.noise 0 --augmentation.noise_snr 10 20 --augmentation.reverb 1 " \
            "--augmentation.speed_perturb 0.9 1.1"
    assert len(commands) == 3 + 3  # train, dev and test features; three models
    for command in commands:
        augmented = "timit_recordings_train" in command or "asrkit.training.train" in command
        assert (flags in command) == augmented, command
    assert sum("--seed 11 --augmentation" in command for command in commands) == 1  # the train features'
