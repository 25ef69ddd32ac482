import itertools
import math
from collections import defaultdict

import numpy as np
import pytest
import torch

from asrkit.search.ctc_search import ctc_greedy_search, ctc_prefix_beam_search, ctc_prefix_beam_search_batch_nbest, \
    ctc_prefix_beam_search_nbest


def _posteriors(frames_argmax, vocab: int, peak: float = 0.7) -> torch.Tensor:
    """(T, V) log posteriors whose per-frame argmax is ``frames_argmax``."""
    probs = torch.full((len(frames_argmax), vocab), (1.0 - peak) / (vocab - 1))
    probs[torch.arange(len(frames_argmax)), torch.tensor(frames_argmax)] = peak
    return probs.log()


def _brute_force_label_probs(log_probs: torch.Tensor, blank: int) -> dict:
    """P(labels | x) of every label sequence, by summing over all V^T paths."""
    num_frames, vocab = log_probs.shape
    totals = defaultdict(float)
    for path in itertools.product(range(vocab), repeat=num_frames):
        path_log_prob = sum(log_probs[t, token].item() for t, token in enumerate(path))
        labels = tuple(
            token for t, token in enumerate(path) if token != blank and (t == 0 or path[t - 1] != token)
        )
        totals[labels] += math.exp(path_log_prob)
    return dict(totals)


def test_greedy_collapses_repeats_removes_blanks_and_ignores_padding():
    first = _posteriors([0, 1, 1, 0, 1, 2, 2, 0, 3], vocab=4)
    second = _posteriors([2, 2, 3, 3, 0, 0, 1, 1, 1], vocab=4)  # frames 5.. are padding
    batch = torch.stack([first, second])
    assert ctc_greedy_search(batch, torch.tensor([9, 5])) == [[1, 1, 2, 3], [2, 3]]
    assert ctc_greedy_search(batch, torch.tensor([0, 9])) == [[], [2, 3, 1]]


def test_greedy_respects_a_non_zero_blank():
    log_probs = _posteriors([3, 1, 3, 1, 1, 2], vocab=4).unsqueeze(0)
    assert ctc_greedy_search(log_probs, torch.tensor([6]), blank=3) == [[1, 1, 2]]


def test_prefix_beam_search_beats_best_path_when_alignments_add_up():
    # Best path is (blank, blank) with 0.36, but "a" has paths aa, a-, -a totalling 0.64.
    log_probs = torch.tensor([[0.6, 0.4], [0.6, 0.4]]).log()
    lengths = torch.tensor([2])
    assert ctc_greedy_search(log_probs.unsqueeze(0), lengths) == [[]]
    assert ctc_prefix_beam_search(log_probs.unsqueeze(0), lengths, beam=4) == [[1]]
    nbest = ctc_prefix_beam_search_nbest(log_probs, beam=4)
    assert [labels for labels, _ in nbest] == [[1], []]
    assert nbest[0][1] == pytest.approx(math.log(0.64))
    assert nbest[1][1] == pytest.approx(math.log(0.36))


def test_beam_one_equals_greedy_on_random_batches():
    generator = torch.Generator().manual_seed(0)
    for vocab, scale in ((5, 1.0), (61, 3.0)):
        log_probs = (torch.randn(6, 40, vocab, generator=generator) * scale).log_softmax(dim=-1)
        lengths = torch.tensor([40, 33, 1, 0, 17, 40])
        assert ctc_prefix_beam_search(log_probs, lengths, beam=1) == ctc_greedy_search(log_probs, lengths)
        assert ctc_prefix_beam_search(log_probs, lengths, beam=1, blank=2) == ctc_greedy_search(
            log_probs, lengths, blank=2
        )


@pytest.mark.parametrize("blank", [0, 2])
def test_unpruned_beam_scores_equal_brute_force_sums(blank):
    generator = torch.Generator().manual_seed(blank)
    log_probs = torch.randn(5, 3, generator=generator, dtype=torch.float64).log_softmax(dim=-1)
    expected = _brute_force_label_probs(log_probs, blank)
    # Beam 100 keeps every prefix of a 5-frame, 2-label problem, so nothing is pruned.
    nbest = ctc_prefix_beam_search_nbest(log_probs, beam=100, blank=blank)
    found = {tuple(labels): math.exp(score) for labels, score in nbest}
    assert found.keys() == expected.keys()
    for labels, prob in expected.items():
        assert found[labels] == pytest.approx(prob, rel=1e-9, abs=1e-15)
    assert sum(found.values()) == pytest.approx(1.0)
    scores = [score for _, score in nbest]
    assert scores == sorted(scores, reverse=True)
    assert ctc_prefix_beam_search(log_probs.unsqueeze(0), torch.tensor([5]), beam=100, blank=blank) == [
        list(max(expected, key=expected.get))
    ]


def _exact_log_prob(log_probs: torch.Tensor, labels: list) -> float:
    """log P(labels | x) by the CTC forward algorithm; log_probs: (T, V) with blank 0."""
    loss = torch.nn.functional.ctc_loss(
        log_probs.unsqueeze(1),
        torch.tensor([labels]),
        torch.tensor([log_probs.size(0)]),
        torch.tensor([len(labels)]),
        reduction="sum",
    )
    return -loss.item()


def test_pruned_beam_scores_are_lower_bounds_and_beat_greedy():
    generator = torch.Generator().manual_seed(1)
    log_probs = (torch.randn(30, 6, generator=generator, dtype=torch.float64) * 0.7).log_softmax(dim=-1)
    nbest = ctc_prefix_beam_search_nbest(log_probs, beam=8)
    assert len(nbest) == 8
    assert len({tuple(labels) for labels, _ in nbest}) == 8  # equal prefixes were merged
    for labels, score in nbest:  # pruning drops paths, so a score never exceeds the true probability
        assert score <= _exact_log_prob(log_probs, labels) + 1e-9
    greedy = ctc_greedy_search(log_probs.unsqueeze(0), torch.tensor([30]))[0]
    best = nbest[0][0]
    assert best != greedy
    assert _exact_log_prob(log_probs, best) > _exact_log_prob(log_probs, greedy)


def test_empty_utterance_and_bad_arguments():
    assert ctc_prefix_beam_search_nbest(torch.zeros(0, 4), beam=5) == [([], 0.0)]
    with pytest.raises(ValueError, match="beam"):
        ctc_prefix_beam_search_nbest(torch.zeros(3, 4), beam=0)
    with pytest.raises(ValueError, match="lengths"):
        ctc_greedy_search(torch.zeros(2, 3, 4), torch.tensor([3, 4]))


def _dict_prefix_beam_search(log_probs: torch.Tensor, beam: int, blank: int) -> list:
    """Textbook prefix beam search with the same pruning (top-min(beam, V) tokens per frame, then the ``beam``
    most probable prefixes), on dicts: the reference for the vectorised batch search. log_probs: (T, V)."""
    beams = {(): (0.0, -math.inf)}  # prefix -> (log P ending in blank, log P ending in its last label)
    for frame in log_probs.double().numpy():
        following = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            for token in np.argsort(-frame, kind="stable")[: min(beam, len(frame))].tolist():
                if token == blank:
                    following[prefix][0] = np.logaddexp(following[prefix][0], total + frame[token])
                    continue
                if prefix and token == prefix[-1]:
                    following[prefix][1] = np.logaddexp(following[prefix][1], pnb + frame[token])
                extended = following[prefix + (token,)]
                extended[1] = np.logaddexp(extended[1], (pb if prefix and token == prefix[-1] else total) + frame[token])
        ranked = sorted(following.items(), key=lambda item: -np.logaddexp(*item[1]))
        beams = {prefix: tuple(probs) for prefix, probs in ranked[:beam]}
    return [(list(prefix), float(np.logaddexp(*probs))) for prefix, probs in beams.items()]


@pytest.mark.parametrize("vocab, beam, blank", [(5, 3, 0), (8, 4, 3), (12, 10, 0), (6, 20, 1)])
def test_batch_search_equals_textbook_search_of_each_utterance(vocab, beam, blank):
    generator = torch.Generator().manual_seed(vocab * beam)
    log_probs = (torch.randn(5, 12, vocab, generator=generator, dtype=torch.float64) * 2).log_softmax(dim=-1)
    lengths = torch.tensor([12, 0, 7, 12, 1])
    batch = ctc_prefix_beam_search_batch_nbest(log_probs, lengths, beam=beam, blank=blank)
    for n, nbest in enumerate(batch):
        expected = _dict_prefix_beam_search(log_probs[n, : lengths[n]], beam, blank)
        assert [labels for labels, _ in nbest] == [labels for labels, _ in expected]
        assert [score for _, score in nbest] == pytest.approx([score for _, score in expected], abs=1e-9)
