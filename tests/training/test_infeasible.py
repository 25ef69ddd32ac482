"""No silent drops: utterances with fewer encoder frames than their tokens need are counted before training; a
few are left out with a warning, more stop the training naming them; the CTC loss never zeroes one silently."""

import logging

import pytest
import torch
from lhotse import CutSet

from asrkit.config import TransducerConfig, UnitsConfig
from asrkit.data.dataset import token_ids
from asrkit.data.lang import TokenTable
from asrkit.data.units import load_units
from asrkit.model.ctc import CtcModel
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.transducer import Transducer
from asrkit.training.batches import InfeasibleError, feasible_cuts
from timit_skeleton import UNITS


def test_frames_needed_ctc_counts_a_blank_between_repeats():
    assert CtcModel.frames_needed([], None) == 0
    assert CtcModel.frames_needed([1, 2, 3], None) == 3
    assert CtcModel.frames_needed([1, 1, 2, 2, 2], None) == 8


def test_frames_needed_transducer_pruned_a_frame_per_token_full_one():
    assert Transducer.frames_needed([1, 1, 2], TransducerConfig.from_dict({})) == 3
    assert Transducer.frames_needed([1, 1, 2], TransducerConfig.from_dict({"loss": "full"})) == 1


@pytest.fixture
def lang(skeleton):
    tokens = TokenTable.load(skeleton / "lang/tokens.txt")
    return tokens, load_units(UnitsConfig.from_dict(UNITS), skeleton / "lang")


def ctc_model(vocab_size: int, stack_frames: int) -> CtcModel:
    return CtcModel(BiLstmEncoder(input_dim=8, hidden_size=4, num_layers=1, stack_frames=stack_frames), vocab_size)


def test_too_many_infeasible_utterances_stop_the_training_naming_them(skeleton, lang):
    tokens, units = lang
    cuts = CutSet.from_file(skeleton / "features/cuts_train.jsonl.gz").to_eager()
    # 0.3 s, 30 frames: 3 steps of 10 frames for 4 phones (h# s iy h#)
    with pytest.raises(InfeasibleError) as error:
        feasible_cuts(cuts, "train", ctc_model(len(tokens), 10), None, tokens, units, 0.01)
    message = str(error.value)
    assert f"of {len(cuts)} train utterances are too short for their tokens" in message
    assert "training.max_infeasible_fraction 0.01" in message
    assert f"{cuts[0].id}: 3 encoder frames (30 / stack_frames 10) for 4 needed by its tokens" in message


def test_a_few_infeasible_utterances_are_left_out_with_a_warning(skeleton, lang, caplog):
    tokens, units = lang
    cuts = CutSet.from_file(skeleton / "features/cuts_train.jsonl.gz").to_eager()
    # one utterance cut to 2 frames
    short = cuts[0].truncate(duration=0.02)
    cuts = CutSet.from_cuts([short, *list(cuts)[1:]])
    assert CtcModel.frames_needed(token_ids(short, tokens, units), None) > short.num_frames
    with caplog.at_level(logging.WARNING):
        kept = feasible_cuts(cuts, "train", ctc_model(len(tokens), 1), None, tokens, units, 0.05)
    assert sorted(kept.ids) == sorted(list(cuts.ids)[1:])
    assert f"left out 1 of {len(cuts)} train utterances, too short for their tokens: {short.id}:" in caplog.text


def test_ctc_loss_of_an_infeasible_utterance_is_infinite_not_zeroed():
    model = ctc_model(5, 1)
    batch = {"features": torch.randn(1, 2, 8), "feature_lens": torch.tensor([2]),
             "targets": torch.tensor([[1, 2, 3]]), "target_lens": torch.tensor([3])}
    assert torch.isinf(model.training_loss(batch, None, 0))
