"""Token language models for shallow fusion in the beam searches: stage 5's n-gram LM (an ARPA file) and its neural
phone LM (the prediction network pretrained on the tokens, exp/phone_lm/model.pt).

A search with :class:`ShallowFusion` ranks a label sequence y by

    log P(y | x) + weight * log P_LM(y, end) + bonus * |y|,

each label adding ``weight * log P_LM(label | labels before) + bonus`` when it is emitted, and the end of the
sentence ``weight * log P_LM(end | y)`` when the search ranks its final beam. Greedy search uses no LM.

The searches see one small interface, :class:`LmScorer`: LM states are ints, :data:`START` the empty sequence;
``next_states`` gives the states after tokens, ``log_probs`` the natural-log probabilities of every token id
after states, in which the column of blank stands for the end of the sentence (the neural phone LM is
trained to predict blank there; the n-gram LM's </s>). A scorer caches its states for one search.
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
import torch

from asrkit.data.arpa import BOS, EOS, ArpaLm, read_arpa
from asrkit.model.decoder import Decoder

START = 0  #: the LM state of the empty label sequence, in every scorer
LM_KINDS = ("none", "ngram", "neural")  #: the choices of the config's decoding.lm


class LmScorer(ABC):
    """One search's view of a token LM: states as ints, the log-probabilities of the tokens after them."""

    @abstractmethod
    def next_states(self, states: Sequence[int], tokens: Sequence[int]) -> List[int]:
        """The state after each ``states[i]`` followed by label ``tokens[i]`` (not blank)."""

    @abstractmethod
    def log_probs(self, states: Sequence[int]) -> np.ndarray:
        """(S, V) float64 natural-log probabilities of each token id after each state; column blank: the end."""


class TokenLm(ABC):
    """A token LM over a model's token ids (blank = 0)."""

    @abstractmethod
    def scorer(self) -> LmScorer:
        """A fresh scorer, its cache empty but for :data:`START`."""


class NgramLm(TokenLm):
    """An ARPA n-gram LM whose words are the token symbols (blank excluded), </s> ending the sentence."""

    def __init__(self, arpa: ArpaLm, symbols: Sequence[str], blank: int = 0):
        self.arpa = arpa
        #: the ARPA word of each token id, </s> for blank
        self.words = [EOS if i == blank else s for i, s in enumerate(symbols)]

    @classmethod
    def load(cls, path: Path, symbols: Sequence[str]) -> "NgramLm":
        return cls(read_arpa(path), symbols)

    def scorer(self) -> LmScorer:
        return _NgramScorer(self)


class _NgramScorer(LmScorer):
    """States are the contexts (the last ``order - 1`` token ids, <s> first at the start), numbered as met."""

    def __init__(self, lm: NgramLm):
        self.lm = lm
        self.contexts: List[Tuple[int, ...]] = [()]
        self.ids: Dict[Tuple[int, ...], int] = {(): START}
        self.rows: Dict[int, np.ndarray] = {}

    def next_states(self, states: Sequence[int], tokens: Sequence[int]) -> List[int]:
        keep = self.lm.arpa.order - 1
        result = []
        for state, token in zip(states, tokens):
            context = (self.contexts[state] + (token,))[-keep:] if keep else ()
            if context not in self.ids:
                self.ids[context] = len(self.contexts)
                self.contexts.append(context)
            result.append(self.ids[context])
        return result

    def log_probs(self, states: Sequence[int]) -> np.ndarray:
        for state in states:
            if state not in self.rows:
                context = self.contexts[state]
                # the sentence start is part of the context while fewer than order - 1 labels were emitted
                words = [BOS, *(self.lm.words[t] for t in context)][-(self.lm.arpa.order - 1):] \
                    if self.lm.arpa.order > 1 else []
                self.rows[state] = np.array([self.lm.arpa.log10_prob(words, w) for w in self.lm.words]) * math.log(10)
        return np.stack([self.rows[state] for state in states]) if len(states) else np.empty((0, len(self.lm.words)))


class NeuralLm(TokenLm):
    """The neural phone LM of stage 5: the prediction network read through its ``lm_output`` head."""

    def __init__(self, decoder: Decoder):
        self.decoder = decoder.eval()

    def scorer(self) -> LmScorer:
        return _NeuralScorer(self.decoder)


class _NeuralScorer(LmScorer):
    """States are rows of the LSTM states met so far; equal (state, token) pairs share one row."""

    @torch.no_grad()
    def __init__(self, decoder: Decoder):
        self.decoder = decoder
        out, (h, c) = decoder(torch.full((1, 1), decoder.blank_id, dtype=torch.long))
        self.h, self.c = [h[:, 0]], [c[:, 0]]  # per state: (L, H)
        self.rows = [self._log_probs(out[:, 0])[0]]
        self.children: Dict[Tuple[int, int], int] = {}

    def _log_probs(self, out: torch.Tensor) -> np.ndarray:
        return self.decoder.lm_output(out).log_softmax(dim=-1).double().numpy()

    @torch.no_grad()
    def next_states(self, states: Sequence[int], tokens: Sequence[int]) -> List[int]:
        pairs = list(zip(states, tokens))
        new = [pair for pair in dict.fromkeys(pairs) if pair not in self.children]
        if new:
            parents = [state for state, _ in new]
            h = torch.stack([self.h[s] for s in parents], dim=1)
            c = torch.stack([self.c[s] for s in parents], dim=1)
            out, (h, c) = self.decoder.step(torch.tensor([token for _, token in new]), (h, c))
            first = len(self.rows)
            self.rows.extend(self._log_probs(out))
            self.h.extend(h.unbind(1))
            self.c.extend(c.unbind(1))
            self.children.update(zip(new, range(first, first + len(new))))
        return [self.children[pair] for pair in pairs]

    def log_probs(self, states: Sequence[int]) -> np.ndarray:
        return np.stack([self.rows[s] for s in states]) if len(states) else np.empty((0, self.decoder.vocab_size))


@dataclass(frozen=True)
class ShallowFusion:
    """An LM added to a search's scores: ``weight`` times its log-probabilities, ``bonus`` per emitted label."""

    lm: TokenLm
    weight: float
    bonus: float
    blank: int = 0

    def label_scores(self, scorer: LmScorer, states: Sequence[int]) -> np.ndarray:
        """(S, V): what emitting each token after each state adds; 0 in the blank column (no label)."""
        scores = self.weight * scorer.log_probs(states) + self.bonus
        scores[:, self.blank] = 0.0
        return scores

    def end_scores(self, scorer: LmScorer, states: Sequence[int]) -> np.ndarray:
        """(S,): what ending the sentence after each state adds."""
        return self.weight * scorer.log_probs(states)[:, self.blank]
