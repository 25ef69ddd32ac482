"""RNN transducer parts: loss backend, prediction network, joiner, pruned loss, peephole LSTM, searches."""

import importlib
import itertools
import math
import sys
from typing import List, Tuple

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.config import TransducerConfig
from asrkit.model import rnnt_backend
from asrkit.search.transducer_search import beam_search, beam_search_nbest, greedy_search_batch, modified_beam_search
from asrkit.model.decoder import Decoder
from asrkit.model.encoder import BiLstmEncoder
from asrkit.model.joiner import Joiner
from asrkit.model.peephole_lstm import PeepholeLstm, PeepholeRecurrence
from asrkit.model.transducer import Transducer
from random_transducer import make_model, random_encoder_batch


def losses(model: Transducer, x, x_lens, y, y_lens, **settings) -> Tuple[torch.Tensor, torch.Tensor]:
    """(simple, transducer) loss with the config's loss settings, some of them changed by ``settings``."""
    loss = TransducerConfig.from_dict(settings)
    return model(x, x_lens, y, y_lens, prune_range=loss.prune_range, am_scale=loss.am_scale,
                 lm_scale=loss.lm_scale, loss=loss.loss)


def make_batch(vocab: int, input_dim: int = 5, dtype: torch.dtype = torch.float32
               ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three utterances of 12, 8 and 5 frames with 4, 2 and 3 labels; label padding is -1."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, 12, input_dim, generator=generator, dtype=dtype)
    x_lens = torch.tensor([12, 8, 5])
    y_lens = torch.tensor([4, 2, 3])
    y = torch.randint(1, vocab, (3, 4), generator=generator)
    y[torch.arange(4) >= y_lens.unsqueeze(1)] = -1
    return x, x_lens, y, y_lens


# --- loss backend -----------------------------------------------------------------------------------------

def test_backend_is_k2_when_it_imports_else_fast_rnnt():
    try:
        import k2  # noqa: F401
        expected = "k2"
    except ImportError:
        expected = "fast_rnnt"
    assert rnnt_backend.BACKEND == expected
    module = importlib.import_module(expected)
    for name in ("rnnt_loss", "rnnt_loss_smoothed", "get_rnnt_prune_ranges", "do_rnnt_pruning", "rnnt_loss_pruned"):
        assert getattr(rnnt_backend, name) is getattr(module, name)


def test_backend_falls_back_to_fast_rnnt_without_k2(monkeypatch):
    monkeypatch.setitem(sys.modules, "k2", None)  # makes ``import k2`` raise ImportError
    try:
        assert importlib.reload(rnnt_backend).BACKEND == "fast_rnnt"
    finally:
        monkeypatch.undo()
        importlib.reload(rnnt_backend)


# --- prediction network and joiner ------------------------------------------------------------------------

def test_decoder_step_equals_forward():
    torch.manual_seed(0)
    for num_layers in (1, 2):
        decoder = Decoder(7, 5, 6, num_layers=num_layers)
        y = torch.randint(0, 7, (3, 4))
        out, state = decoder(y)
        assert out.shape == (3, 4, decoder.output_dim)
        _, state_before = decoder(y[:, :3])
        step_out, step_state = decoder.step(y[:, 3], state_before)
        torch.testing.assert_close(step_out, out[:, 3])
        for a, b in zip(step_state, state):
            torch.testing.assert_close(a, b)


def test_lm_loss_of_untrained_decoder_has_perplexity_near_vocab_size():
    vocab = 62
    torch.manual_seed(0)
    decoder = Decoder(vocab, 32, 64)
    y_lens = torch.tensor([20, 13, 7, 1])
    y = torch.randint(1, vocab, (4, 20))
    nll, count = decoder.lm_loss(y, y_lens)
    assert count == int((y_lens + 1).sum())  # every label, then blank as the end
    assert 0.9 * vocab < math.exp(nll.item() / count) < 1.1 * vocab
    padded_differently = y.masked_fill(torch.arange(20) >= y_lens.unsqueeze(1), -1)
    torch.testing.assert_close(decoder.lm_loss(padded_differently, y_lens)[0], nll)


def test_joiner_shapes():
    joiner = Joiner(encoder_dim=10, decoder_dim=7, joiner_dim=9, vocab_size=6)
    encoder_proj = joiner.project_encoder(torch.randn(2, 5, 10))
    decoder_proj = joiner.project_decoder(torch.randn(2, 4, 7))
    assert encoder_proj.shape == (2, 5, 9) and decoder_proj.shape == (2, 4, 9)
    assert joiner(encoder_proj.unsqueeze(2), decoder_proj.unsqueeze(1)).shape == (2, 5, 4, 6)
    pruned = torch.randn(2, 5, 3, 9)
    assert joiner(pruned, pruned).shape == (2, 5, 3, 6)
    assert joiner(encoder_proj[:, 0], decoder_proj[:, 0]).shape == (2, 6)


# --- pruned RNN-T loss ------------------------------------------------------------------------------------

def test_pruned_loss_equals_full_loss_when_prune_range_exceeds_label_length():
    """With prune_range > U (the padded label length), every frame keeps all U + 1 label positions."""
    vocab = 6
    model = make_model(vocab, dtype=torch.float64)
    x, x_lens, y, y_lens = make_batch(vocab, dtype=torch.float64)
    simple_full, full = losses(model, x, x_lens, y, y_lens, loss="full")
    for prune_range in (y.size(1) + 1, y.size(1) + 5):
        simple, pruned = losses(model, x, x_lens, y, y_lens, prune_range=prune_range)
        torch.testing.assert_close(pruned, full, rtol=1e-12, atol=1e-10)
        torch.testing.assert_close(simple, simple_full)
    # A narrower range drops lattice paths, so it can only lose probability.
    _, narrow = losses(model, x, x_lens, y, y_lens, prune_range=2)
    assert narrow.item() >= full.item() - 1e-9


def test_pruned_loss_float32_close_to_full_and_gradients_finite():
    vocab = 6
    model = make_model(vocab)
    x, x_lens, y, y_lens = make_batch(vocab)
    _, full = losses(model, x, x_lens, y, y_lens, loss="full")
    simple, pruned = losses(model, x, x_lens, y, y_lens, prune_range=y.size(1) + 1)
    assert abs(pruned.item() - full.item()) < 1e-4
    model.zero_grad()
    simple, pruned = losses(model, x, x_lens, y, y_lens, prune_range=3)
    (0.5 * simple + pruned).backward()
    for name, parameter in model.named_parameters():
        if name.startswith("decoder.lm_output"):  # the language-model head is only used by lm_loss
            continue
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
    assert model.joiner.output_linear.weight.grad.abs().sum() > 0
    assert model.simple_am_proj.weight.grad.abs().sum() > 0


# --- peephole LSTM ----------------------------------------------------------------------------------------

def reference_peephole_lstm(lstm: PeepholeLstm, x: torch.Tensor) -> torch.Tensor:
    """The peephole equations step by step on one unpadded sequence x (T, C) -> (T, D * H)."""
    out = x
    for layer in lstm.layers:
        directions = []
        for d in range(layer.weight_ih.size(0)):
            w_xi, w_xf, w_xc, w_xo = layer.weight_ih[d].chunk(4)
            w_hi, w_hf, w_hc, w_ho = layer.weight_hh[d].chunk(4)
            b_i, b_f, b_c, b_o = layer.bias[d].chunk(4)
            w_ci, w_cf, w_co = layer.peephole[d]
            h = c = torch.zeros(layer.weight_hh.size(2), dtype=x.dtype)
            hs = [None] * len(out)
            for t in (range(len(out)) if d == 0 else reversed(range(len(out)))):
                x_t = out[t]
                i = torch.sigmoid(w_xi @ x_t + w_hi @ h + w_ci * c + b_i)
                f = torch.sigmoid(w_xf @ x_t + w_hf @ h + w_cf * c + b_f)
                c = f * c + i * torch.tanh(w_xc @ x_t + w_hc @ h + b_c)
                o = torch.sigmoid(w_xo @ x_t + w_ho @ h + w_co * c + b_o)
                h = o * torch.tanh(c)
                hs[t] = h
            directions.append(torch.stack(hs))
        out = torch.cat(directions, dim=1)
    return out


@pytest.mark.parametrize("bidirectional", [True, False])
def test_peephole_lstm_matches_reference_equations_on_padded_batch(bidirectional):
    torch.manual_seed(0)
    lstm = PeepholeLstm(3, 4, num_layers=2, bidirectional=bidirectional).double()
    lens = torch.tensor([6, 4, 1])
    x = torch.randn(3, 6, 3, dtype=torch.float64, requires_grad=True)
    out = lstm(x, lens)
    assert out.shape == (3, 6, lstm.output_dim)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    grads = [p.grad.clone() for p in lstm.parameters()] + [x.grad.clone()]

    lstm.zero_grad()
    x.grad = None
    reference_loss = 0.0
    for n in range(3):
        length = int(lens[n])
        reference = reference_peephole_lstm(lstm, x[n, :length])
        torch.testing.assert_close(out[n, :length], reference)
        assert (out[n, length:] == 0).all()
        reference_loss = reference_loss + (reference * weights[n, :length]).sum()
    reference_loss.backward()
    for grad, reference_grad in zip(grads, [p.grad for p in lstm.parameters()] + [x.grad]):
        torch.testing.assert_close(grad, reference_grad)


def test_peephole_recurrence_gradcheck():
    torch.manual_seed(0)
    gates = torch.randn(4, 2, 3, 8, dtype=torch.float64, requires_grad=True)
    weight_hh = torch.randn(2, 8, 2, dtype=torch.float64, requires_grad=True)
    peephole = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(PeepholeRecurrence.apply, (gates, weight_hh, peephole))


def copy_lstm_into_peephole(lstm: nn.LSTM, peephole: PeepholeLstm) -> None:
    """Give ``peephole`` the weights of ``lstm`` and zero peephole weights."""
    with torch.no_grad():
        for k, layer in enumerate(peephole.layers):
            for d, suffix in enumerate(["", "_reverse"]):
                layer.weight_ih[d] = getattr(lstm, f"weight_ih_l{k}{suffix}")
                layer.weight_hh[d] = getattr(lstm, f"weight_hh_l{k}{suffix}")
                layer.bias[d] = getattr(lstm, f"bias_ih_l{k}{suffix}") + getattr(lstm, f"bias_hh_l{k}{suffix}")
            layer.peephole.zero_()


def test_peephole_lstm_without_peepholes_equals_torch_lstm():
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 8, num_layers=2, batch_first=True, bidirectional=True)
    peephole = PeepholeLstm(5, 8, num_layers=2)
    copy_lstm_into_peephole(lstm, peephole)
    x, lens = torch.randn(3, 7, 5), torch.tensor([7, 3, 5])
    expected, _ = pad_packed_sequence(lstm(pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False))[0],
                                      batch_first=True, total_length=7)
    torch.testing.assert_close(peephole(x, lens), expected)


def test_encoder_peephole_option():
    torch.manual_seed(0)
    plain = BiLstmEncoder(4, 6, num_layers=2, stack_frames=2)
    assert isinstance(plain.lstm, nn.LSTM)  # the default is unchanged
    with_peepholes = BiLstmEncoder(4, 6, num_layers=2, stack_frames=2, peephole=True)
    copy_lstm_into_peephole(plain.lstm, with_peepholes.lstm)
    x, x_lens = torch.randn(2, 9, 4), torch.tensor([9, 5])
    out, lens = with_peepholes(x, x_lens)
    expected, expected_lens = plain(x, x_lens)
    assert torch.equal(lens, expected_lens) and out.shape == expected.shape == (2, 5, 12)
    torch.testing.assert_close(out, expected)


# --- searches ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_modified_beam_search_with_beam_1_equals_greedy_search(seed):
    model = make_model(vocab=8, seed=seed).eval()
    encoder_out, lens = random_encoder_batch(model, [15, 9, 12, 1], seed)
    greedy = greedy_search_batch(model, encoder_out, lens)
    assert any(greedy)
    assert modified_beam_search(model, encoder_out, lens, beam=1) == greedy


def test_batched_searches_equal_searching_each_utterance_alone():
    model = make_model(vocab=8, blank_bias=1.0).eval()
    encoder_out, lens = random_encoder_batch(model, [12, 7, 9])
    greedy = greedy_search_batch(model, encoder_out, lens)
    modified = modified_beam_search(model, encoder_out, lens, beam=4)
    graves = beam_search(model, encoder_out, lens, beam=4)
    for u, length in enumerate(lens.tolist()):
        alone, alone_lens = encoder_out[u : u + 1, :length], lens[u : u + 1]
        assert greedy_search_batch(model, alone, alone_lens) == [greedy[u]]
        assert modified_beam_search(model, alone, alone_lens, beam=4) == [modified[u]]
        assert beam_search(model, alone, alone_lens, beam=4) == [graves[u]]


def all_label_sequences(vocab: int, max_length: int) -> List[Tuple[int, ...]]:
    return [s for length in range(max_length + 1) for s in itertools.product(range(1, vocab), repeat=length)]


def lattice_log_probs(model: Transducer, encoder_out: torch.Tensor, labels: Tuple[int, ...]) -> torch.Tensor:
    """log P(token | frame t, first u labels): (T, U + 1, V) for one utterance encoder_out (T, C)."""
    decoder_out, _ = model.decoder(torch.tensor([(model.decoder.blank_id,) + labels]))
    logits = model.joiner(model.joiner.project_encoder(encoder_out).unsqueeze(1),
                          model.joiner.project_decoder(decoder_out[0]).unsqueeze(0))
    return logits.log_softmax(dim=-1)


def exact_log_prob(model: Transducer, encoder_out: torch.Tensor, labels: Tuple[int, ...]) -> float:
    """log P(labels | x) summed over all transducer alignments, by the loss backend (directly if empty)."""
    if not labels:
        return lattice_log_probs(model, encoder_out, labels)[:, 0, model.decoder.blank_id].sum().item()
    logits_input = lattice_log_probs(model, encoder_out, labels).unsqueeze(0)
    return -rnnt_backend.rnnt_loss(logits_input, torch.tensor([labels]), model.decoder.blank_id,
                                   reduction="sum").item()


def one_label_per_frame_log_prob(model: Transducer, encoder_out: torch.Tensor, labels: Tuple[int, ...]) -> float:
    """log of the sum over alignments emitting, at each frame, blank or the next label (not both)."""
    log_probs = lattice_log_probs(model, encoder_out, labels)
    blank = model.decoder.blank_id
    alpha = [0.0] + [-math.inf] * len(labels)  # alpha[u]: u labels emitted before the current frame
    for t in range(len(encoder_out)):
        alpha = [float(torch.logaddexp(torch.tensor(alpha[u] + log_probs[t, u, blank].item()),
                                       torch.tensor(alpha[u - 1] + log_probs[t, u - 1, labels[u - 1]].item()
                                                    if u > 0 else -math.inf)))
                 for u in range(len(labels) + 1)]
    return alpha[-1]


@torch.no_grad()
def test_graves_beam_search_finds_exact_best_sequence_and_probabilities():
    model = make_model(vocab=3, seed=3, dtype=torch.float64).eval()
    encoder_out = 2 * torch.randn(3, model.joiner.encoder_proj.in_features, dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(4))
    exact = {labels: exact_log_prob(model, encoder_out, labels) for labels in all_label_sequences(3, 5)}
    nbest = beam_search_nbest(model, encoder_out, beam=20, max_symbols_per_frame=None)
    best = max(exact, key=exact.get)
    assert tuple(nbest[0][0]) == best
    for labels, score in nbest[:10]:  # prefix merging makes the beam's probabilities sums over alignments
        assert score == pytest.approx(exact[tuple(labels)], abs=1e-9)
    assert beam_search(model, encoder_out.unsqueeze(0), torch.tensor([3]), beam=20, max_symbols_per_frame=None,
                       length_norm=False) == [list(best)]


@torch.no_grad()
def test_modified_beam_search_with_wide_beam_finds_best_one_label_per_frame_sequence():
    model = make_model(vocab=3, seed=5, dtype=torch.float64).eval()
    encoder_out = 2 * torch.randn(1, 4, model.joiner.encoder_proj.in_features, dtype=torch.float64,
                                  generator=torch.Generator().manual_seed(6))
    scores = {labels: one_label_per_frame_log_prob(model, encoder_out[0], labels)
              for labels in all_label_sequences(3, 4)}
    found = modified_beam_search(model, encoder_out, torch.tensor([4]), beam=100, length_norm=False)
    assert found == [list(max(scores, key=scores.get))]
