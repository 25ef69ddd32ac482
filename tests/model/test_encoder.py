"""The BiLSTM encoder: its padded-batch LSTM (the CPU path) against torch's packed LSTM, and TorchScript."""

from typing import Tuple

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from asrkit.model.encoder import BiLstmEncoder, FusedBiLstm

LENGTHS = [23, 5, 17, 1, 23, 9]  # unequal, one of a single frame, the longest twice


def batch(input_dim: int, seed: int, padding: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """A random padded batch (N, T, input_dim) of ``LENGTHS``, its padding set to ``padding``, and (N,) lengths."""
    lens = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), max(LENGTHS), input_dim, generator=torch.Generator().manual_seed(seed))
    return x.masked_fill(torch.arange(x.size(1))[None, :, None] >= lens[:, None, None], padding), lens


def packed_reference(lstm: FusedBiLstm, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """What the encoder computed before the padded path: ``nn.LSTM`` itself on the packed batch, padded again."""
    packed = pack_padded_sequence(x, lens, batch_first=True, enforce_sorted=False)
    return pad_packed_sequence(nn.LSTM.forward(lstm, packed)[0], batch_first=True, total_length=x.size(1))[0]


def outputs_and_gradients(lstm: nn.Module, run, x: torch.Tensor, lens: torch.Tensor):
    """Output (N, T', 2H) of ``run(x, lens) -> output, output lengths``, and the gradients of the input and of
    every parameter of ``lstm``, of a loss that weights each valid output frame differently."""
    x = x.clone().requires_grad_(True)
    lstm.zero_grad()
    out, out_lens = run(x, lens)
    valid = (torch.arange(out.size(1))[None, :] < out_lens[:, None]).unsqueeze(2)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(9)) * valid
    (out * weights).sum().backward()
    return out.detach(), x.grad, {name: p.grad.clone() for name, p in lstm.named_parameters()}


@pytest.mark.parametrize("num_layers, dropout", [(1, 0.0), (3, 0.0), (3, 0.3)])
def test_padded_lstm_equals_packed_outputs_and_gradients(num_layers, dropout):
    """The CPU path (each direction on a padded batch) against ``nn.LSTM`` on the packed batch: the same outputs
    on valid frames, zeros on padding, the same gradients of the input and the weights. With dropout the
    model is in eval mode (in training the two paths draw different dropout masks)."""
    torch.manual_seed(0)
    lstm = FusedBiLstm(7, 10, num_layers, dropout=dropout)
    lstm.train(dropout == 0.0)
    x, lens = batch(7, seed=1)
    out, x_grad, grads = outputs_and_gradients(lstm, lambda x, lens: (lstm._padded(x, lens), lens), x, lens)
    expected, expected_x_grad, expected_grads = outputs_and_gradients(
        lstm, lambda x, lens: (packed_reference(lstm, x, lens), lens), x, lens)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(x_grad, expected_x_grad, atol=1e-6, rtol=0)
    assert grads.keys() == expected_grads.keys() and len(grads) == 8 * num_layers
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=1e-5, msg=name)
    # the packed path (the one taken on CUDA) is torch's packed LSTM too
    packed, _, _ = outputs_and_gradients(lstm, lambda x, lens: (lstm._packed(x, lens), lens), x, lens)
    torch.testing.assert_close(packed, expected, atol=0, rtol=0)


@pytest.mark.parametrize("stack_frames", [1, 3])
def test_encoder_output_is_independent_of_padding_and_batch(stack_frames):
    """Whatever the padding holds (NaN included), each utterance gets the output it gets alone, and zeros
    beyond its length; the parameters keep nn.LSTM's names (checkpoints load as before)."""
    torch.manual_seed(0)
    encoder = BiLstmEncoder(4, 6, num_layers=2, stack_frames=stack_frames).eval()
    assert list(encoder.state_dict())[:4] == ["lstm.weight_ih_l0", "lstm.weight_hh_l0", "lstm.bias_ih_l0",
                                              "lstm.bias_hh_l0"]
    x, lens = batch(4, seed=2, padding=float("nan"))
    out, out_lens = encoder(x, lens)
    assert out.isfinite().all()
    for n, length in enumerate(LENGTHS):
        alone, alone_lens = encoder(x[n : n + 1, :length], lens[n : n + 1])
        steps = int(alone_lens)
        assert steps == int(out_lens[n])
        torch.testing.assert_close(out[n, :steps], alone[0], atol=1e-6, rtol=0)
        assert out[n, steps:].abs().sum() == 0


def test_scripted_encoder_equals_the_encoder():
    """torch.jit.script of the encoder (what the export holds) gives the same outputs and gradients; the
    peephole encoder is exported for inference, without gradients (test_use_after_training checks its output)."""
    torch.manual_seed(0)
    encoder = BiLstmEncoder(4, 6, num_layers=2, stack_frames=2)
    scripted = torch.jit.script(encoder)
    x, lens = batch(4, seed=3, padding=5.0)

    def run(module):
        return outputs_and_gradients(encoder, module, x, lens)

    out, x_grad, grads = run(scripted)
    expected, expected_x_grad, expected_grads = run(encoder)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(x_grad, expected_x_grad, atol=1e-6, rtol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], atol=1e-5, rtol=1e-5, msg=name)


@pytest.mark.parametrize("path", ["_padded", "_packed"])
def test_dropout_is_between_layers_and_in_training_only(path):
    """Both paths (the CPU's padded one, CUDA's packed one) drop out the input of every layer but the first while
    training, and nothing in eval mode: a one-layer LSTM given dropout computes the same either way."""
    x, lens = batch(7, seed=1)
    torch.manual_seed(0)
    deep = FusedBiLstm(7, 10, 3, dropout=0.5)
    run = lambda lstm: getattr(lstm, path)(x, lens)
    deep.train()
    assert not torch.equal(run(deep), run(deep))  # fresh masks at each call
    deep.eval()
    assert torch.equal(run(deep), run(deep))
    shallow = BiLstmEncoder(7, 10, 1, dropout=0.5)  # nothing between layers: the encoder gives it no dropout
    shallow.train()
    assert shallow.lstm.dropout == 0.0 and torch.equal(getattr(shallow.lstm, path)(x, lens),
                                                       getattr(shallow.lstm, path)(x, lens))
