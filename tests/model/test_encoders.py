"""The encoders of the registry: exact on padded batches, with frame stacking, and scriptable."""

import pytest
import torch

from asrkit.config import TransducerConfig
from asrkit.model.registry import ENCODERS, build_encoder, build_model
from asrkit.search.searches import search

INPUT_DIM = 5
LENGTHS = [11, 7, 4]


def encoder_options(name: str, stack_frames: int) -> dict:
    return {"encoder": name, "num_layers": 2, "hidden_size": 6, "stack_frames": stack_frames}


def padded_batch(padding_value: float):
    generator = torch.Generator().manual_seed(0)
    x = torch.full((len(LENGTHS), max(LENGTHS), INPUT_DIM), padding_value)
    for n, length in enumerate(LENGTHS):
        x[n, :length] = torch.randn(length, INPUT_DIM, generator=generator)
    return x, torch.tensor(LENGTHS)


@pytest.mark.parametrize("stack_frames", [1, 3])
@pytest.mark.parametrize("name", list(ENCODERS))
def test_padded_batch_gives_each_utterance_its_own_output(name, stack_frames):
    torch.manual_seed(0)
    encoder = build_encoder(encoder_options(name, stack_frames), INPUT_DIM).eval()
    x, lens = padded_batch(padding_value=1e3)  # padding that would show if it reached a valid frame
    with torch.no_grad():
        out, out_lens = encoder(x, lens)
        assert out_lens.tolist() == [-(-length // stack_frames) for length in LENGTHS]
        assert out.shape == (len(LENGTHS), -(-max(LENGTHS) // stack_frames), encoder.output_dim)
        for n, length in enumerate(LENGTHS):
            alone, _ = encoder(x[n : n + 1, :length], lens[n : n + 1])
            torch.testing.assert_close(out[n, : out_lens[n]], alone[0], rtol=1e-5, atol=1e-6)
            assert not out[n, out_lens[n]:].any()  # padded frames are zero


@pytest.mark.parametrize("name", ["tanh_rnn", "lstm"])
def test_new_encoders_script(name):
    torch.manual_seed(0)
    encoder = build_encoder(encoder_options(name, 3), INPUT_DIM).eval()
    scripted = torch.jit.script(encoder)
    x, lens = padded_batch(padding_value=0.0)
    with torch.no_grad():
        for expected, got in zip(encoder(x, lens), scripted(x, lens)):
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name, output_dim", [("tanh_rnn", 12), ("lstm", 6)])
def test_new_encoders_carry_ctc_and_transducers(name, output_dim):
    options = {**encoder_options(name, 1), "decoder_embedding_dim": 4, "decoder_hidden_size": 4, "joiner_dim": 4}
    x, lens = padded_batch(padding_value=0.0)
    batch = {"features": x, "feature_lens": lens, "targets": torch.tensor([[1, 2], [2, 0], [1, 0]]),
             "target_lens": torch.tensor([2, 1, 1])}
    loss_options = TransducerConfig.from_dict({"warmup_batches": 0})
    for model_type in ("ctc", "transducer"):
        model = build_model({**options, "type": model_type}, INPUT_DIM, vocab_size=3)
        assert model.encoder.output_dim == output_dim
        model.training_loss(batch, loss_options, batch_index=0).backward()
        with torch.no_grad():
            assert len(search(model.eval(), "greedy", 1, x, lens)) == len(LENGTHS)


def test_peephole_is_refused_where_there_is_none():
    with pytest.raises(ValueError, match="only the blstm and lstm encoders have peephole connections"):
        build_encoder({**encoder_options("tanh_rnn", 1), "peephole": True}, INPUT_DIM)


@pytest.mark.parametrize("stack_frames", [1, 3])
def test_unidirectional_lstm_with_peepholes(stack_frames):
    """The lstm encoder with peepholes: the paper's peephole LSTM, forward only. With its peephole weights
    zero it is torch's LSTM of the same weights; each utterance of a padded batch gets its own output; and
    it scripts."""
    torch.manual_seed(0)
    options = encoder_options("lstm", stack_frames)
    plain = build_encoder(options, INPUT_DIM).eval()
    peephole = build_encoder({**options, "peephole": True}, INPUT_DIM).eval()
    assert peephole.output_dim == plain.output_dim == 6
    with torch.no_grad():
        for k, layer in enumerate(peephole.lstm.layers):
            assert layer.peephole.shape == (1, 3, 6) and layer.peephole.abs().sum() > 0  # trained, not zero
            layer.weight_ih[0] = getattr(plain.rnn, f"weight_ih_l{k}")
            layer.weight_hh[0] = getattr(plain.rnn, f"weight_hh_l{k}")
            layer.bias[0] = getattr(plain.rnn, f"bias_ih_l{k}") + getattr(plain.rnn, f"bias_hh_l{k}")
        with_peepholes, _ = peephole(*padded_batch(padding_value=0.0))
        for layer in peephole.lstm.layers:
            layer.peephole.zero_()
        x, lens = padded_batch(padding_value=1e3)
        out, out_lens = peephole(x, lens)
        torch.testing.assert_close(out, plain(x, lens)[0], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(with_peepholes, out)  # the peepholes do something
        for n, length in enumerate(LENGTHS):
            alone, _ = peephole(x[n : n + 1, :length], lens[n : n + 1])
            torch.testing.assert_close(out[n, : out_lens[n]], alone[0], rtol=1e-5, atol=1e-6)
        scripted = torch.jit.script(peephole)
        torch.testing.assert_close(scripted(x, lens)[0], out)
