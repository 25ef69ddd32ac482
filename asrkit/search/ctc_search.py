"""CTC decoding: best-path (greedy) search and prefix beam search (Graves 2012, ch. 7.5; Graves et al. 2013).

Both decoders take the network's log-softmax output and return label ids with blanks removed and repeats
collapsed. Prefix beam search sums over all alignments of a label sequence, so it can find a sequence that
is more probable than the one read off the single best path.
"""

from typing import List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from asrkit.search.lm import START, ShallowFusion
from asrkit.search.prefix_trie import PrefixTrie

PADDING = -2  # the trie node of an empty place in a beam: never a node, nor a parent (-1 is the root's parent)


def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Best-path decoding of a padded batch.

    log_probs: (N, T, V) log-softmax output (any monotone transform of it gives the same result).
    lengths: (N,) number of valid frames of each utterance; frames at or beyond it are ignored.
    Returns N label-id lists: per-frame argmax, repeats collapsed, blanks removed.
    """
    return [tokens for tokens, _ in ctc_greedy_emissions(log_probs, lengths, blank)]


def ctc_greedy_emissions(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0
                         ) -> List[Tuple[List[int], List[int]]]:
    """Best-path decoding of a padded batch, with the frame of each emission.

    log_probs, lengths and blank as in :func:`ctc_greedy_search`. Returns per utterance (label ids, frames):
    a label is emitted at a frame whose argmax is not blank and differs from the frame before.
    """
    check_padded_batch(log_probs, lengths)
    best = log_probs.argmax(dim=-1)  # (N, T)
    frames = torch.arange(best.size(1), device=best.device)
    valid = frames.unsqueeze(0) < lengths.to(best.device).unsqueeze(1)  # (N, T)
    previous = F.pad(best[:, :-1], (1, 0), value=-1)  # (N, T): the argmax of the frame before, -1 at t = 0
    keep = valid & (best != blank) & (best != previous)
    return [(best[n][keep[n]].tolist(), frames[keep[n]].tolist()) for n in range(best.size(0))]


def ctc_prefix_beam_search(
    log_probs: torch.Tensor, lengths: torch.Tensor, beam: int, blank: int = 0,
    fusion: Optional[ShallowFusion] = None
) -> List[List[int]]:
    """Prefix beam search of a padded batch; returns the most probable label sequence of each utterance.

    log_probs: (N, T, V) log-softmax output.
    lengths: (N,) number of valid frames of each utterance.
    beam: number of prefixes kept after each frame; per frame only the ``min(beam, V)`` most probable tokens
        are tried as extensions. ``beam=1`` reproduces :func:`ctc_greedy_search` (without an LM).
    fusion: a token LM whose scores the ranking adds (:mod:`asrkit.search.lm`), or None.
    """
    return [nbest[0][0] for nbest in ctc_prefix_beam_search_batch_nbest(log_probs, lengths, beam, blank, fusion)]


def ctc_prefix_beam_search_nbest(
    log_probs: torch.Tensor, beam: int, blank: int = 0
) -> List[Tuple[List[int], float]]:
    """Prefix beam search of one utterance, returning the final beam.

    log_probs: (T, V) log-softmax output of one utterance, already cut to its length.
    Returns up to ``beam`` pairs (label ids, log P(labels | x)), most probable first. The log probability sums
    over all alignments of the labels; it is exact when nothing was pruned (``beam`` at least the number of
    distinct prefixes and at least V).
    """
    if log_probs.dim() != 2:
        raise ValueError(f"log_probs must be (T, V), got shape {tuple(log_probs.shape)}")
    return ctc_prefix_beam_search_batch_nbest(log_probs.unsqueeze(0), torch.tensor([log_probs.size(0)]), beam,
                                              blank)[0]


def ctc_prefix_beam_search_batch_nbest(
    log_probs: torch.Tensor, lengths: torch.Tensor, beam: int, blank: int = 0,
    fusion: Optional[ShallowFusion] = None
) -> List[List[Tuple[List[int], float]]]:
    """Prefix beam search of a padded batch, all utterances advanced together; returns each final beam.

    log_probs: (N, T, V) log-softmax output; lengths: (N,) valid frames of each utterance.
    Returns per utterance what :func:`ctc_prefix_beam_search_nbest` returns for it alone. With ``fusion``, every
    alignment of a prefix carries the prefix's LM score (added when a label extends it), and the final scores
    the end of the sentence's, so that the ranking is shallow fusion's (:mod:`asrkit.search.lm`). The beams of all
    utterances are rows of the same arrays, so each frame costs a fixed number of array operations
    whatever the batch size (one utterance at a time, the per-operation overhead dominated).
    """
    check_padded_batch(log_probs, lengths)
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    scores = log_probs.detach().to(device="cpu", dtype=torch.float64)  # float64: sums over many paths
    num_utts, num_frames, vocab = scores.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank id {blank} outside the vocabulary of size {vocab}")
    width = min(beam, vocab)
    top_scores, top_tokens = (x.numpy() for x in scores.topk(width, dim=-1))  # (N, T, width) each
    blank_scores = scores[..., blank].numpy()  # (N, T)
    lengths = lengths.cpu().numpy()

    trie = PrefixTrie()  # shared by the utterances: a hypothesis is identified by (utterance, node)
    # The beams as arrays (U, B): one row per unfinished utterance (``utts`` says which), one column per
    # hypothesis, padded with empty columns. Per hypothesis: trie node (``PADDING`` in padding), the node's
    # parent, last label (``vocab`` for the empty prefix) and the log probabilities of the prefix's alignments
    # ending in blank (pb) and in its last label (pnb), -inf in padding.
    utts = np.arange(num_utts)
    nodes = np.zeros((num_utts, 1), dtype=np.int64)
    parents = np.full((num_utts, 1), -1, dtype=np.int64)
    last = np.full((num_utts, 1), vocab, dtype=np.int64)
    pb = np.zeros((num_utts, 1))
    pnb = np.full((num_utts, 1), -np.inf)
    lm_states = np.full((num_utts, 1), START)  # each hypothesis's LM state (START in padding)
    scorer = fusion.lm.scorer() if fusion is not None else None
    results: List[List[Tuple[List[int], float]]] = [[] for _ in range(num_utts)]

    def finish(done: np.ndarray) -> None:
        """Move the beams of finished utterances (``done``, per row) to ``results``, most probable first."""
        nonlocal utts, nodes, parents, last, pb, pnb, lm_states
        for row in np.nonzero(done)[0]:
            total = np.logaddexp(pb[row], pnb[row])
            if fusion is not None:
                total = total + fusion.end_scores(scorer, lm_states[row].tolist())
            real = np.nonzero(nodes[row] != PADDING)[0]
            results[int(utts[row])] = [(trie.labels(int(nodes[row, k])), float(total[k]))
                                       for k in real[np.argsort(-total[real], kind="stable")]]
        utts, nodes, parents, last, pb, pnb, lm_states = (x[~done] for x in (utts, nodes, parents, last, pb, pnb,
                                                                            lm_states))

    finish(lengths == 0)
    for t in range(int(lengths.max(initial=0))):
        tokens, token_scores = top_tokens[utts, t], top_scores[utts, t]  # (U, width)
        num_rows, columns = nodes.shape
        rows = np.arange(num_rows)[:, None]
        total = np.logaddexp(pb, pnb)  # (U, B)

        # Staying on the same prefix: emit blank, or repeat the last label without a blank in between.
        is_blank = tokens == blank
        stay_pb = np.where(is_blank.any(axis=1, keepdims=True), total + blank_scores[utts, t, None], -np.inf)
        is_last = tokens[:, None, :] == last[:, :, None]  # (U, B, width)
        last_column = np.where(is_last.any(axis=2), is_last.argmax(axis=2), -1)  # last label's top-k column
        stay_pnb = np.where(last_column >= 0, pnb + np.take_along_axis(token_scores, last_column.clip(0), axis=1),
                            -np.inf)

        # Extending by each top-k token; a repeated label only extends alignments that ended in blank.
        extend = np.where(is_last, pb[:, :, None], total[:, :, None]) + token_scores[:, None, :]  # (U, B, width)
        if fusion is not None:
            label_scores = fusion.label_scores(scorer, lm_states.ravel().tolist()).reshape(num_rows, columns, -1)
            extend += np.take_along_axis(label_scores, np.broadcast_to(tokens[:, None, :], extend.shape), axis=2)
        extend[np.broadcast_to(is_blank[:, None, :], extend.shape)] = -np.inf

        # An extension may be a prefix already in the beam: parent + its last label. Merge it into that entry.
        is_parent = (parents[:, :, None] == nodes[:, None, :]) & (parents[:, :, None] >= 0)  # (U, B, B)
        parent_column = np.where(is_parent.any(axis=2), is_parent.argmax(axis=2), -1)
        merged_rows, children = np.nonzero((parent_column >= 0) & (last_column >= 0))
        merged = (merged_rows, parent_column[merged_rows, children], last_column[merged_rows, children])
        stay_pnb[merged_rows, children] = np.logaddexp(stay_pnb[merged_rows, children], extend[merged])
        extend[merged] = -np.inf

        # Each utterance keeps its ``beam`` best candidates (at least one; beyond it finite ones only), stays
        # before extensions, each most probable first. Candidate k < B stays on hypothesis k; the others
        # extend hypothesis (k - B) // width by top-k token (k - B) % width.
        candidates = np.concatenate([np.logaddexp(stay_pb, stay_pnb), extend.reshape(num_rows, -1)], axis=1)
        keep = min(beam, candidates.shape[1])
        chosen = np.sort(np.argpartition(-candidates, keep - 1, axis=1)[:, :keep], axis=1)
        chosen = np.take_along_axis(chosen, np.argsort(-candidates[rows, chosen], axis=1, kind="stable"), axis=1)
        valid = np.isfinite(candidates[rows, chosen])
        valid[:, 0] = True
        order = np.argsort(np.where(valid, chosen >= columns, 2), axis=1, kind="stable")  # stays, extensions, rest
        count = valid.sum(axis=1, keepdims=True)
        chosen = np.take_along_axis(chosen, order, axis=1)[:, : int(count.max())]
        valid = np.arange(chosen.shape[1])[None, :] < count

        is_extension = chosen >= columns
        source = np.where(is_extension, (chosen - columns) // width, chosen)  # the hypothesis each comes from
        column = np.where(is_extension, (chosen - columns) % width, 0)
        source_nodes = nodes[rows, source]
        new_tokens = tokens[rows, column]
        grown = is_extension & valid
        new_nodes = source_nodes.copy()
        new_nodes[grown] = trie.children(source_nodes[grown].tolist(), new_tokens[grown].tolist())
        nodes = np.where(valid, new_nodes, PADDING)
        if fusion is not None:
            new_states = lm_states[rows, source]
            new_states[grown] = scorer.next_states(new_states[grown].tolist(), new_tokens[grown].tolist())
            lm_states = np.where(valid, new_states, START)
        parents = np.where(valid, np.where(is_extension, source_nodes, parents[rows, source]), -1)
        last = np.where(valid, np.where(is_extension, new_tokens, last[rows, source]), vocab)
        pb = np.where(valid & ~is_extension, stay_pb[rows, source], -np.inf)
        pnb = np.where(valid, np.where(is_extension, extend[rows, source, column], stay_pnb[rows, source]), -np.inf)
        finish(lengths[utts] == t + 1)
    return results


def check_padded_batch(values: torch.Tensor, lengths: torch.Tensor, names: str = "log_probs, lengths",
                       dims: str = "N, T, V") -> None:
    """Check a padded batch (N, T, ...) and its lengths (N,) in [0, T]; errors use the caller's names."""
    values_name, lengths_name = names.split(", ")
    if values.dim() != 3:
        raise ValueError(f"{values_name} must be ({dims}), got shape {tuple(values.shape)}")
    if lengths.shape != (values.size(0),):
        raise ValueError(f"{lengths_name} must be ({values.size(0)},), got shape {tuple(lengths.shape)}")
    if len(lengths) and (int(lengths.min()) < 0 or int(lengths.max()) > values.size(1)):
        raise ValueError(f"{lengths_name} must lie in [0, {values.size(1)}], got {lengths.tolist()}")
