"""The transducer as Graves et al. 2013 train it: the dev loss is the exact -log p(y | x), the start symbol's
input stays zero, and the warm-up leaves pretrained parts alone (transducer.pretrained_warmup)."""

import math
from typing import Dict

import pytest
import torch

from asrkit.config import TransducerConfig
from asrkit.training.weight_noise import initialise_uniformly
from random_transducer import make_model

VOCAB = 5


def batch(input_dim: int = 5) -> Dict[str, torch.Tensor]:
    """Two utterances: 7 frames with 3 labels, 4 frames with 2 (label padding 0)."""
    generator = torch.Generator().manual_seed(4)
    return {"features": torch.randn(2, 7, input_dim, generator=generator, dtype=torch.float64),
            "feature_lens": torch.tensor([7, 4]), "targets": torch.tensor([[1, 3, 2], [4, 4, 0]]),
            "target_lens": torch.tensor([3, 2])}


def forward_algorithm_log_prob(model, features: torch.Tensor, labels) -> float:
    """log p(labels | x) of one utterance by Graves 2012's forward variables, in plain Python: the sum over
    all alignments, any number of labels per frame, a final blank at the last frame."""
    with torch.no_grad():
        encoder_out = model.utterance_encoding(features)  # (T, E)
        decoder_out, _ = model.decoder(torch.tensor([[model.decoder.blank_id, *labels]]))
        log_probs = model.joiner(model.joiner.project_encoder(encoder_out).unsqueeze(1),
                                 model.joiner.project_decoder(decoder_out[0]).unsqueeze(0)).log_softmax(-1)
    blank, frames, count = model.decoder.blank_id, encoder_out.size(0), len(labels)
    alpha = [[-math.inf] * (count + 1) for _ in range(frames)]
    for t in range(frames):
        for u in range(count + 1):
            if t == u == 0:
                alpha[t][u] = 0.0
                continue
            paths = []
            if t > 0:
                paths.append(alpha[t - 1][u] + log_probs[t - 1, u, blank].item())
            if u > 0:
                paths.append(alpha[t][u - 1] + log_probs[t, u - 1, labels[u - 1]].item())
            alpha[t][u] = max(paths) + math.log(sum(math.exp(p - max(paths)) for p in paths))
    return alpha[frames - 1][count] + log_probs[frames - 1, count, blank].item()


def test_the_dev_loss_is_the_exact_transducer_loss():
    """Summed over the batch, -log p(y | x) by the forward algorithm, also when the model trains the pruned
    loss (whose training value, 0.5 x simple + pruned, is another number)."""
    model = make_model(vocab=VOCAB, seed=1, dtype=torch.float64).eval()
    b = batch()
    pruned = TransducerConfig.from_dict({"loss": "pruned", "prune_range": 2, "warmup_batches": 0})
    exact = -sum(forward_algorithm_log_prob(model, b["features"][n, :length], b["targets"][n, :labels].tolist())
                 for n, (length, labels) in enumerate(zip(b["feature_lens"].tolist(), b["target_lens"].tolist())))
    with torch.no_grad():
        dev = model.dev_loss_terms(b, pruned)
        training = model.training_loss_terms(b, pruned, batch_index=10 ** 9)
    assert set(dev) == {"transducer"}
    assert dev["transducer"].item() == pytest.approx(exact, rel=1e-6)  # the losses run in float32
    assert abs(training["transducer"].item() - exact) > 0.1  # what the dev loss was before


def test_the_start_symbol_reads_zero_after_uniform_initialisation_and_never_trains():
    model = make_model(vocab=VOCAB, seed=2)
    initialise_uniformly(model)
    embedding, blank = model.decoder.embedding, model.decoder.blank_id
    assert embedding.weight[blank].abs().sum() > 0  # the init drew the row ...
    start = torch.tensor([[blank, 2, blank]])
    looked_up = embedding(start)
    assert not looked_up[0, 0].any() and not looked_up[0, 2].any()  # ... and the start input is zero anyway
    assert looked_up[0, 1].abs().sum() > 0
    # the prediction network's first output is that of a zero input
    zero_input = torch.zeros(1, 1, embedding.embedding_dim)
    expected, _ = model.decoder.lstm(zero_input)
    torch.testing.assert_close(model.decoder(start[:, :1])[0], expected)
    torch.testing.assert_close(model.decoder.step(start[0, :1], (torch.zeros(1, 1, 7), torch.zeros(1, 1, 7)))[0],
                               expected[0])
    # nor does training move it, or weight noise on it reach the output
    model.decoder.lm_loss(torch.tensor([[1, 2, 3]]), torch.tensor([3]))[0].backward()
    assert not embedding.weight.grad[blank].any() and embedding.weight.grad[1:4].abs().sum() > 0
    scripted = torch.jit.script(embedding)
    torch.testing.assert_close(scripted(start), looked_up)


def warmup_options(policy: str, loss: str = "pruned") -> TransducerConfig:
    return TransducerConfig.from_dict({"warmup_batches": 3, "pretrained_warmup": policy, "loss": loss,
                                       "prune_range": 2})


def gradients(model, options: TransducerConfig, batch_index: int) -> Dict[str, bool]:
    """Which parts get a gradient from the training loss at ``batch_index``."""
    model.zero_grad(set_to_none=True)
    model.training_loss(batch(), options, batch_index).backward()
    parts = {"encoder": model.encoder, "decoder": model.decoder, "joiner": model.joiner,
             "simple_am_proj": model.simple_am_proj, "simple_lm_proj": model.simple_lm_proj}
    return {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
            for name, part in parts.items()}


def test_freeze_trains_only_the_new_parts_while_the_pruned_loss_is_off():
    """warmup_batches batches with no gradient to the pretrained encoder and prediction network: the simple
    projections learn to read them; then everything trains (the joiner at 0.1 for as many batches)."""
    model = make_model(vocab=VOCAB, seed=3, dtype=torch.float64)
    model.mark_pretrained(["encoder", "decoder"])
    freeze = warmup_options("freeze")
    assert gradients(model, freeze, 2) == {"encoder": False, "decoder": False, "joiner": False,
                                           "simple_am_proj": True, "simple_lm_proj": True}
    assert all(gradients(model, freeze, 3).values())
    # a part that was not pretrained trains throughout
    model.mark_pretrained(["decoder"])
    assert gradients(model, freeze, 0)["encoder"] and not gradients(model, freeze, 0)["decoder"]


def test_a_model_trained_from_scratch_warms_up_as_before_whatever_the_policy():
    model = make_model(vocab=VOCAB, seed=3, dtype=torch.float64)
    b = batch()
    for policy in ("freeze", "skip", "train"):
        assert gradients(model, warmup_options(policy), 0) == {"encoder": True, "decoder": True, "joiner": False,
                                                               "simple_am_proj": True, "simple_lm_proj": True}
        with torch.no_grad():
            losses = [model.training_loss(b, warmup_options(policy), i).item() for i in (0, 3, 6)]
        assert losses == [model.training_loss(b, warmup_options("train"), i).item() for i in (0, 3, 6)]


def test_skip_starts_a_pretrained_model_at_the_full_pruned_loss():
    model = make_model(vocab=VOCAB, seed=3, dtype=torch.float64)
    model.mark_pretrained(["encoder", "decoder"])
    b = batch()
    with torch.no_grad():
        after_warmup = model.training_loss(b, warmup_options("train"), 6).item()
        assert model.training_loss(b, warmup_options("skip"), 0).item() == after_warmup
        assert model.training_loss(b, warmup_options("train"), 0).item() != after_warmup
    assert all(gradients(model, warmup_options("skip"), 0).values())


def test_the_full_loss_has_no_warm_up_to_freeze():
    model = make_model(vocab=VOCAB, seed=3, dtype=torch.float64)
    model.mark_pretrained(["encoder", "decoder"])
    grads = gradients(model, warmup_options("freeze", loss="full"), 0)
    assert grads["encoder"] and grads["decoder"] and grads["joiner"]


def test_unknown_pretrained_parts_are_refused():
    with pytest.raises(ValueError, match="encoder or decoder"):
        make_model(vocab=VOCAB).mark_pretrained(["joiner"])
