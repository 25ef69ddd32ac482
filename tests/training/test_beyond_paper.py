"""The training switches beyond the paper: SpecAugment, the transducer's auxiliary CTC loss, lr annealing on dev
plateaus, checkpoint averaging's checks; and a run with them all interrupted mid-epoch resumes exactly."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from lhotse import CutSet

import asrkit.training.train as train_module
from asrkit.config import TrainingConfig, TransducerConfig, UnitsConfig, check_across_keys
from asrkit.data.dataset import RecognitionDataset
from asrkit.data.features import load_stats
from asrkit.data.lang import TokenTable
from asrkit.data.spec_augment import SpecAugment
from asrkit.data.units import load_units
from asrkit.decoding.decode import averaged_checkpoints
from asrkit.model.ctc import CtcModel
from asrkit.model.registry import build_model
from asrkit.checkpoint import load_checkpoint, save_checkpoint
from asrkit.training.schedule import LrSchedule
from asrkit.training.train import initialise, train
from interrupted_training import stopped_after, timeless
from timit_skeleton import FEATURES, UNITS, training_setup

#: every mask as wide as it may be, to see them: 2 frequency masks of up to 10 bands, 2 time masks of up to 10
#: frames, a warp of up to 3 frames (the skeleton's utterances have 28 frames)
AUGMENTED = {"spec_augment": True, "spec_augment_time_warp": 3, "spec_augment_freq_width": 10,
             "spec_augment_time_width": 10}


def dataset(skeleton: Path) -> RecognitionDataset:
    return RecognitionDataset(TokenTable.load(skeleton / "lang/tokens.txt"),
                              load_units(UnitsConfig.from_dict(UNITS), skeleton / "lang"),
                              FEATURES, load_stats(skeleton / "features/stats.pt"))


def spec_augment(epoch: int, **changes) -> SpecAugment:
    training = TrainingConfig.from_dict({"num_epochs": 1, "max_duration": 3, **AUGMENTED, **changes})
    return SpecAugment.for_epoch(training, seed=3, epoch=epoch)


def cuts(skeleton: Path, split: str = "train") -> CutSet:
    return CutSet.from_file(skeleton / f"features/cuts_{split}.jsonl.gz").to_eager().subset(first=4)


# ------------------------------------------------------------------------------------------------ SpecAugment


def test_spec_augment_changes_training_batches_deterministically(skeleton):
    plain = dataset(skeleton)
    batch = plain[cuts(skeleton)]
    augmented = plain.augmented(spec_augment(epoch=1))[cuts(skeleton)]
    again = plain.augmented(spec_augment(epoch=1))[cuts(skeleton)]
    next_epoch = plain.augmented(spec_augment(epoch=2))[cuts(skeleton)]
    assert augmented["cut_ids"] == batch["cut_ids"] and augmented["features"].shape == batch["features"].shape
    assert not torch.equal(augmented["features"], batch["features"])
    assert torch.equal(augmented["features"], again["features"])  # the same seed, epoch and cuts: the same draws
    assert not torch.equal(augmented["features"], next_epoch["features"])
    # an utterance's augmentation does not depend on the batch it is in (the loader's workers, a resume)
    alone = plain.augmented(spec_augment(epoch=1))[cuts(skeleton).subset(cut_ids=[batch["cut_ids"][1]])]
    length = int(batch["feature_lens"][1])
    assert torch.equal(alone["features"][0, :length], augmented["features"][1, :length])


def test_frequency_masks_cover_the_same_bands_of_static_delta_and_delta_delta(skeleton):
    plain = dataset(skeleton)
    only_freq = spec_augment(epoch=1, spec_augment_time_warp=0, spec_augment_time_masks=0)
    batch = plain[cuts(skeleton)]
    augmented = plain.augmented(only_freq)[cuts(skeleton)]
    static_dim = batch["features"].size(2) // 3
    for i, length in enumerate(batch["feature_lens"].tolist()):
        changed = (augmented["features"][i, :length] != batch["features"][i, :length]).any(dim=0)  # (3 * D,)
        masked = (augmented["features"][i, :length] == 0).all(dim=0)
        assert torch.equal(changed, masked) and masked.any()  # what changed is masked to 0 (the mean), whole bands
        blocks = masked.view(3, static_dim)
        assert torch.equal(blocks[0], blocks[1]) and torch.equal(blocks[0], blocks[2])
        assert blocks[0].sum() <= 2 * 10


def test_time_masks_zero_whole_frames_and_warp_keeps_the_length():
    spec = spec_augment(epoch=1, spec_augment_freq_masks=0)
    frames = torch.randn(50, 9) + 5  # no value is 0 by chance
    masked = spec.mask(frames, 3, spec.generator("utt"))
    zero_rows = (masked == 0).all(dim=1)
    assert zero_rows.any() and torch.equal(masked[~zero_rows], frames[~zero_rows]) and zero_rows.sum() <= 20
    warped = [spec.warp(frames[:, :3], spec.generator(f"utt{i}")) for i in range(5)]
    assert all(w.shape == (50, 3) for w in warped)
    assert any(not torch.equal(w, frames[:, :3]) for w in warped)  # (a warp may move its centre by 0 frames)
    assert all(torch.equal(w[[0, -1]], frames[[0, -1], :3]) for w in warped)  # the ends stay where they are


# ------------------------------------------------------------------------------------- the auxiliary CTC loss

VOCAB, INPUT_DIM = 6, 5


def transducer(ctc_loss_scale: float) -> torch.nn.Module:
    torch.manual_seed(0)
    options = {"type": "transducer", "num_layers": 2, "hidden_size": 8, "decoder_embedding_dim": 8,
               "decoder_hidden_size": 8, "joiner_dim": 8, "ctc_loss_scale": ctc_loss_scale}
    return build_model(options, INPUT_DIM, VOCAB)


def loss_batch() -> Dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    target_lens = torch.tensor([4, 2, 3])
    targets = torch.randint(1, VOCAB, (3, 4), generator=generator).masked_fill(
        torch.arange(4) >= target_lens[:, None], 0)
    return {"features": torch.randn(3, 12, INPUT_DIM, generator=generator), "feature_lens": torch.tensor([12, 8, 5]),
            "targets": targets, "target_lens": target_lens}


def test_ctc_aux_loss_adds_scale_times_the_ctc_models_loss_on_the_same_encoder():
    with_head, without_head = transducer(0.25), transducer(0.0)
    assert without_head.ctc_output is None
    without_head.load_state_dict({k: v for k, v in with_head.state_dict().items() if not k.startswith("ctc_output.")})
    ctc = CtcModel(with_head.encoder, VOCAB)
    ctc.output.load_state_dict(with_head.ctc_output.state_dict())
    loss_options = TransducerConfig.from_dict({"loss": "full", "ctc_loss_scale": 0.25})
    batch = loss_batch()
    terms = with_head.training_loss_terms(batch, loss_options, batch_index=0)
    ctc_loss = ctc.training_loss(batch, None, 0)
    assert ctc_loss > 0 and set(terms) == {"transducer", "ctc"}
    torch.testing.assert_close(terms["ctc"], 0.25 * ctc_loss)
    torch.testing.assert_close(with_head.training_loss(batch, loss_options, 0),
                               without_head.training_loss(batch, loss_options, 0) + 0.25 * ctc_loss)
    with_head.training_loss(batch, loss_options, 0).backward()
    assert with_head.ctc_output.weight.grad.abs().sum() > 0


def test_ctc_aux_loss_needs_the_frames_ctc_needs():
    pruned = TransducerConfig.from_dict({"loss": "pruned"})
    assert CtcModel.frames_needed([1, 1, 2], None) == 4
    assert type(transducer(0.0)).frames_needed([1, 1, 2], pruned) == 3
    assert type(transducer(0.0)).frames_needed([1, 1, 2], replace(pruned, ctc_loss_scale=0.3)) == 4


def test_pretrans_starts_the_ctc_head_from_the_ctc_models_output_layer(tmp_path):
    torch.manual_seed(5)
    ctc = build_model({"type": "ctc", "num_layers": 2, "hidden_size": 8}, INPUT_DIM, VOCAB)
    save_checkpoint(tmp_path / "ctc.pt", {"model": ctc.state_dict()})
    model = transducer(0.3)
    initialise(model, {"encoder": tmp_path / "ctc.pt"})
    for name, weights in ctc.state_dict().items():
        assert torch.equal(model.state_dict()[name.replace("output.", "ctc_output.")], weights), name
    plain = transducer(0.0)
    initialise(plain, {"encoder": tmp_path / "ctc.pt"})  # no head: the encoder alone
    assert torch.equal(plain.encoder.lstm.weight_hh_l1, ctc.encoder.lstm.weight_hh_l1)


# ------------------------------------------------------------------------------------------ lr annealing


@pytest.mark.parametrize("patience", [1, 2])
def test_plateau_anneals_after_patience_epochs_without_a_lower_dev_loss(patience):
    training = TrainingConfig.from_dict({"num_epochs": 1, "max_duration": 3, "lr": 1.0, "lr_schedule": "plateau",
                                         "lr_anneal_factor": 0.5, "lr_anneal_patience": patience})
    schedule = LrSchedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0), training)
    lrs = []
    for dev_loss in [3.0, 2.0, 2.0, 2.5, 1.0, 1.5]:  # no improvement at the 3rd and 4th epochs, and the 6th
        schedule.step(dev_loss)
        lrs.append(schedule.lr())
    assert lrs == ([1.0, 1.0, 0.5, 0.25, 0.25, 0.125] if patience == 1 else [1.0, 1.0, 1.0, 0.5, 0.5, 0.5])


def test_constant_schedule_and_lr_decay_combine():
    training = TrainingConfig.from_dict({"num_epochs": 1, "max_duration": 3, "lr": 1.0, "lr_decay": 0.9,
                                         "lr_schedule": "plateau", "lr_anneal_patience": 1})
    schedule = LrSchedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0), training)
    schedule.step(1.0)
    schedule.step(2.0)
    assert schedule.lr() == pytest.approx(0.9 * 0.9 * 0.5)
    constant = LrSchedule(torch.optim.SGD(torch.nn.Linear(1, 1).parameters(), lr=1.0),
                          replace(training, lr_schedule="constant"))
    constant.step(1.0)
    constant.step(2.0)
    assert constant.lr() == pytest.approx(0.81) and "plateau" not in constant.state_dict()


# ------------------------------------------------------- a training with them all, and its exact resume

#: CTC on the skeleton; a high lr so that the dev loss stalls within 5 epochs and the lr is annealed
OPTIONS = {"seed": 3, "model_type": "ctc", "model": {"num_layers": 2, "hidden_size": 16, "stack_frames": 3,
                                                     "dropout": 0.2},
           "training": {"num_epochs": 5, "max_duration": 3, "optimizer": "adam", "lr": 0.5, "lr_schedule": "plateau",
                        "lr_anneal_patience": 1, "num_workers": 1, "keep_last_checkpoints": 10,
                        "checkpoint_every_batches": 2, **AUGMENTED}}


def run(skeleton: Path, exp_dir: Path) -> List[Dict]:
    features = skeleton / "features"
    train(features / "cuts_train.jsonl.gz", features / "cuts_dev.jsonl.gz", features / "stats.pt",
          skeleton / "lang/tokens.txt", exp_dir, training_setup(OPTIONS))
    return json.loads((exp_dir / "history.json").read_text())


@pytest.fixture(scope="module")
def straight(skeleton, tmp_path_factory):
    """An uninterrupted run, noting whether each loader it made augments."""
    exp_dir, augmenting = tmp_path_factory.mktemp("straight"), []
    make_loader = train_module.make_loader

    def spy(dataset, *args, **kwargs):
        augmenting.append(dataset.spec_augment is not None)
        return make_loader(dataset, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "make_loader", spy)
        history = run(skeleton, exp_dir)
    return {"dir": exp_dir, "history": history, "augmenting": augmenting}


def test_only_training_batches_are_augmented(straight):
    assert straight["augmenting"] == [False] + [True] * OPTIONS["training"]["num_epochs"]  # dev's loader first


def test_the_lr_is_annealed_after_an_epoch_without_a_lower_dev_loss(straight):
    history = straight["history"]
    annealed = [history[i + 1]["lr"] < history[i]["lr"] for i in range(len(history) - 1)]
    stalled = [history[i]["dev_loss"] >= min(h["dev_loss"] for h in history[:i]) if i else False
               for i in range(len(history) - 1)]
    assert annealed == stalled and any(annealed)
    for i in range(len(history) - 1):
        assert history[i + 1]["lr"] == pytest.approx(history[i]["lr"] * (0.5 if annealed[i] else 1.0))


def test_a_run_interrupted_mid_epoch_resumes_exactly_with_its_lr_schedule(straight, skeleton, tmp_path):
    """Stopped after the first epoch that annealed the lr, mid-way through the next one."""
    history = straight["history"]
    annealed = next(h["epoch"] for h, after in zip(history, history[1:]) if after["lr"] < h["lr"])
    stop_after = f"epoch-{annealed + 1}-batch-2.pt"
    with stopped_after(stop_after):
        run(skeleton, tmp_path)
    assert "plateau" in load_checkpoint(tmp_path / "checkpoints" / stop_after)["scheduler"]
    assert timeless(run(skeleton, tmp_path)) == timeless(history)
    straight_model = load_checkpoint(straight["dir"] / "model.pt")["model"]
    resumed_model = load_checkpoint(tmp_path / "model.pt")["model"]
    for name, weights in straight_model.items():
        assert torch.equal(weights, resumed_model[name]), name


def test_averaging_takes_the_last_epochs(straight):
    averaged = averaged_checkpoints(straight["dir"] / "model.pt", 3)
    last = OPTIONS["training"]["num_epochs"]
    assert [p.name for p in averaged] == [f"epoch-{e}.pt" for e in (last - 2, last - 1, last)]


# ------------------------------------------------------------------------------------- averaging's checks


def test_averaging_more_epochs_than_kept_is_refused_naming_both_keys():
    config = {"training": {"num_epochs": 1, "max_duration": 3, "keep_last_checkpoints": 3},
              "decoding": {"ctc": ["greedy"], "transducer": ["greedy"], "beams": [1], "avg": 4}}
    with pytest.raises(ValueError, match="decoding.avg 4 is more than training.keep_last_checkpoints 3"):
        check_across_keys(config)
    check_across_keys({**config, "decoding": {**config["decoding"], "avg": 3}})


def test_averaging_across_the_paper_schedules_restart_is_refused(tmp_path):
    phases = ["noiseless", "noiseless", "noisy", "noisy"]
    (tmp_path / "checkpoints").mkdir()
    for epoch, _ in enumerate(phases, 1):
        history = [{"epoch": e, "phase": p} for e, p in enumerate(phases[:epoch], 1)]
        save_checkpoint(tmp_path / f"checkpoints/epoch-{epoch}.pt", {"history": history})
    assert [p.name for p in averaged_checkpoints(tmp_path / "model.pt", 2)] == ["epoch-3.pt", "epoch-4.pt"]
    with pytest.raises(ValueError, match="decoding.avg 3: .* span the phases .* at most 2"):
        averaged_checkpoints(tmp_path / "model.pt", 3)
