"""The prediction network of the transducer (Graves 2012): an LSTM language model over the previous tokens."""

from typing import Any, Mapping, Optional, Tuple

import torch
from torch import nn

LstmState = Tuple[torch.Tensor, torch.Tensor]  # (h, c), each (num_layers, N, hidden_size)


class Decoder(nn.Module):
    """Embedding + LSTM over the tokens emitted so far, started by blank.

    Blank, which the transducer never feeds back as a label, serves as the start symbol. Its embedding is
    the zero vector, as the start input is in Graves 2012, whatever the weights' initialisation
    (:class:`StartEmbedding`). ``lm_output`` is a head used only
    when the network is pretrained as a phone language model (Graves et al. 2013, PRETRANS), see
    :meth:`lm_loss`; the transducer itself reads the LSTM output through its joiner.
    """

    def __init__(self, vocab_size: int, embedding_dim: int, hidden_size: int, num_layers: int = 1,
                 blank_id: int = 0):
        super().__init__()
        self.vocab_size = vocab_size
        self.blank_id = blank_id
        self.embedding = StartEmbedding(vocab_size, embedding_dim, padding_idx=blank_id)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.lm_output = nn.Linear(hidden_size, vocab_size)
        self.output_dim = hidden_size

    @classmethod
    def from_options(cls, options: Mapping[str, Any], vocab_size: int) -> "Decoder":
        """From the model options ``decoder_embedding_dim``, ``decoder_hidden_size``, ``decoder_num_layers``."""
        return cls(vocab_size, options["decoder_embedding_dim"], options["decoder_hidden_size"],
                   options["decoder_num_layers"])

    def forward(self, y: torch.Tensor, state: Optional[LstmState] = None) -> Tuple[torch.Tensor, LstmState]:
        """y: (N, U) token ids, a sequence starting with blank or the continuation of ``state``.

        Returns the LSTM output (N, U, hidden_size), where position u has read y[:, :u + 1], and the state
        after the last position (h, c), each (num_layers, N, hidden_size).
        """
        out, state = self.lstm(self.embedding(y), state)
        return out, state

    def step(self, tokens: torch.Tensor, state: LstmState) -> Tuple[torch.Tensor, LstmState]:
        """One step for the searches: tokens (N,) after ``state`` -> output (N, hidden_size) and the new state.

        The same function as :meth:`forward` on (N, 1), computed from the LSTM's weights with a few small
        operations: ``nn.LSTM`` costs several times more per call on one step of a small batch.
        """
        x = self.embedding(tokens)  # (N, embedding_dim)
        hs, cs = [], []
        for layer, (h, c) in enumerate(zip(*state)):
            w_ih, b_ih, w_hh, b_hh = (getattr(self.lstm, f"{name}_l{layer}")
                                      for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"))
            gates = torch.addmm(nn.functional.linear(x, w_ih, b_ih + b_hh), h, w_hh.t())  # (N, 4H): i, f, g, o
            i, f, g, o = gates.chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c)
            hs.append(x)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))

    def start_with_blank(self, y_padded: torch.Tensor, y_lens: torch.Tensor) -> torch.Tensor:
        """(N, U) padded labels and (N,) lengths -> (N, U + 1) decoder input: blank, then the labels.

        Padding (whatever its value) becomes blank, so any padding value is a valid embedding index.
        """
        labels = y_padded.masked_fill(~_label_mask(y_padded, y_lens), self.blank_id)
        start = torch.full_like(labels[:, :1], self.blank_id)
        return torch.cat([start, labels], dim=1)

    def lm_loss(self, y_padded: torch.Tensor, y_lens: torch.Tensor) -> Tuple[torch.Tensor, int]:
        """Phone language-model loss for pretraining: read blank + y, predict y and then blank as its end.

        y_padded: (N, U) labels (ids 1..V-1), y_lens: (N,).
        Returns the summed negative log-likelihood (scalar tensor) of the ``sum(y_lens + 1)`` predicted
        tokens, and that count; the perplexity is ``exp(nll / count)``.
        """
        inputs = self.start_with_blank(y_padded, y_lens)  # (N, U + 1)
        out, _ = self(inputs)
        logits = self.lm_output(out)  # (N, U + 1, V)
        # Next token of position u is inputs[u + 1], and blank (end of sequence) at position y_len.
        targets = torch.cat([inputs[:, 1:], torch.full_like(inputs[:, :1], self.blank_id)], dim=1)
        positions = torch.arange(inputs.size(1), device=y_lens.device)
        valid = positions.unsqueeze(0) <= y_lens.unsqueeze(1)  # (N, U + 1)
        nll = nn.functional.cross_entropy(logits[valid], targets[valid], reduction="sum")
        return nll, int(valid.sum())


class StartEmbedding(nn.Embedding):
    """An embedding whose ``padding_idx`` (the start symbol, blank) always reads as the zero vector.

    ``padding_idx`` alone zeroes that row once, at construction, and then keeps its gradient zero: an
    initialisation that overwrites the row (``training.init: uniform`` draws every weight) would leave a
    random start vector frozen for good. Masking the lookup keeps the start input zero under any
    initialisation, and weight noise on the row changes nothing. Same parameters and state_dict keys as
    ``nn.Embedding``; scriptable.
    """

    start_id: torch.jit.Final[int]

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int):
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.start_id = padding_idx

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        start = tokens == self.start_id
        # the functional form: TorchScript cannot call super()
        embedded = nn.functional.embedding(tokens, self.weight, self.start_id)
        return embedded.masked_fill(start.unsqueeze(-1), 0.0)


def _label_mask(y_padded: torch.Tensor, y_lens: torch.Tensor) -> torch.Tensor:
    """(N, U) True where a position holds a label, False on padding."""
    positions = torch.arange(y_padded.size(1), device=y_padded.device)
    return positions.unsqueeze(0) < y_lens.to(y_padded.device).unsqueeze(1)
