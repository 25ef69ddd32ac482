"""Graves's transducer beam search, batched, against the one-utterance-at-a-time search it replaced
(tests/graves_reference.py): the same results on random models and on a trained one."""

from pathlib import Path
from typing import List, Tuple

import pytest
import torch
from lhotse import CutSet

from asrkit.data.dataset import RecognitionDataset
from asrkit.search.transducer_search import beam_search, beam_search_batch_nbest
from asrkit.model.transducer import Transducer
from asrkit.checkpoint import load_checkpoint, load_model
from asrkit.training.train import train
from graves_reference import reference_beam_search_nbest
from random_transducer import make_model, random_encoder_batch
from timit_skeleton import training_setup

NBest = List[Tuple[List[int], float]]


def assert_same_beams(model: Transducer, encoder_out: torch.Tensor, lens: torch.Tensor, beam: int) -> None:
    """The batched search's final beams are the reference's, utterance by utterance: the same label sequences
    in the same order, and the same log probabilities up to float32 rounding (the matrix products of the
    joiner round a row differently in batches of different sizes); the best hypotheses are the same."""
    found = beam_search_batch_nbest(model, encoder_out, lens, beam)
    expected: List[NBest] = [reference_beam_search_nbest(model, encoder_out[u, :length], beam)
                             for u, length in enumerate(lens.tolist())]
    assert [[labels for labels, _ in nbest] for nbest in found] == [[labels for labels, _ in nbest] for nbest in expected]
    for nbest, expected_nbest in zip(found, expected):
        assert [score for _, score in nbest] == pytest.approx([score for _, score in expected_nbest], abs=1e-4, rel=0)
    for length_norm in (True, False):
        assert beam_search(model, encoder_out, lens, beam, length_norm=length_norm) == [
            max(nbest, key=lambda h: h[1] / max(1, len(h[0])) if length_norm else h[1])[0] for nbest in expected]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beam", [1, 4, 10, 100])
def test_batched_search_equals_the_reference_on_random_models(seed, beam):
    """Random models that emit labels often (blank bias 1; 0 makes frames emit up to the 3-label limit),
    utterances of unequal lengths, one empty."""
    model = make_model(vocab=8, seed=seed, blank_bias=1.0 if seed else 0.0).eval()
    encoder_out, lens = random_encoder_batch(model, [15, 9, 12, 1, 0], seed)
    assert_same_beams(model, encoder_out, lens, beam)


@pytest.fixture(scope="module")
def trained_transducer(skeleton, tmp_path_factory) -> Path:
    """A small transducer trained on the skeleton corpus until it is sure of most frames."""
    exp_dir = tmp_path_factory.mktemp("graves") / "transducer"
    setup = training_setup({
        "seed": 1, "model_type": "transducer", "model": {"num_layers": 1, "hidden_size": 16, "stack_frames": 3},
        "transducer": {"decoder_embedding_dim": 16, "decoder_hidden_size": 16, "joiner_dim": 16,
                       "warmup_batches": 10},
        "training": {"num_epochs": 50, "max_duration": 3, "optimizer": "adam", "lr": 0.01, "num_workers": 0}})
    train(skeleton / "features/cuts_train.jsonl.gz", skeleton / "features/cuts_dev.jsonl.gz",
          skeleton / "features/stats.pt", skeleton / "lang/tokens.txt", exp_dir, setup)
    return exp_dir / "model.pt"


@pytest.mark.parametrize("beam", [1, 4, 10, 100])
def test_batched_search_equals_the_reference_on_a_trained_model(trained_transducer, skeleton, beam):
    model = load_model(trained_transducer).eval()
    dataset = RecognitionDataset.for_model(load_checkpoint(trained_transducer))
    cuts = CutSet.from_file(skeleton / "features/cuts_dev.jsonl.gz").to_eager()
    features = dataset[cuts]
    with torch.no_grad():
        encoder_out, lens = model.encoder(features["features"], features["feature_lens"])
    assert_same_beams(model, encoder_out, lens, beam)
    assert any(beam_search(model, encoder_out, lens, beam))  # it learned to emit labels
