"""CTC decoding: best-path (greedy) search and prefix beam search (Graves 2012, ch. 7.5; Graves et al. 2013).

Both decoders take the network's log-softmax output and return label ids with blanks removed and repeats
collapsed. Prefix beam search sums over all alignments of a label sequence, so it can find a sequence that
is more probable than the one read off the single best path.
"""

from typing import List, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from asrkit.prefix_trie import PrefixTrie


def ctc_greedy_search(log_probs: torch.Tensor, lengths: torch.Tensor, blank: int = 0) -> List[List[int]]:
    """Best-path decoding of a padded batch.

    log_probs: (N, T, V) log-softmax output (any monotone transform of it gives the same result).
    lengths: (N,) number of valid frames of each utterance; frames at or beyond it are ignored.
    Returns N label-id lists: per-frame argmax, repeats collapsed, blanks removed.
    """
    check_padded_batch(log_probs, lengths)
    best = log_probs.argmax(dim=-1)  # (N, T)
    frames = torch.arange(best.size(1), device=best.device)
    valid = frames.unsqueeze(0) < lengths.to(best.device).unsqueeze(1)  # (N, T)
    previous = F.pad(best[:, :-1], (1, 0), value=-1)  # (N, T): the argmax of the frame before, -1 at t = 0
    keep = valid & (best != blank) & (best != previous)
    return [best[n][keep[n]].tolist() for n in range(best.size(0))]


def ctc_prefix_beam_search(
    log_probs: torch.Tensor, lengths: torch.Tensor, beam: int, blank: int = 0
) -> List[List[int]]:
    """Prefix beam search of a padded batch; returns the most probable label sequence of each utterance.

    log_probs: (N, T, V) log-softmax output.
    lengths: (N,) number of valid frames of each utterance.
    beam: number of prefixes kept after each frame; per frame only the ``min(beam, V)`` most probable tokens
        are tried as extensions. ``beam=1`` reproduces :func:`ctc_greedy_search`.
    """
    check_padded_batch(log_probs, lengths)
    return [
        ctc_prefix_beam_search_nbest(log_probs[n, : int(lengths[n])], beam, blank)[0][0]
        for n in range(log_probs.size(0))
    ]


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
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    scores = log_probs.detach().to(device="cpu", dtype=torch.float64)  # float64: sums over many paths
    num_frames, vocab = scores.shape
    if not 0 <= blank < vocab:
        raise ValueError(f"blank id {blank} outside the vocabulary of size {vocab}")
    width = min(beam, vocab)
    top_scores, top_tokens = (x.numpy() for x in scores.topk(width, dim=-1))  # (T, width) each
    scores = scores.numpy()

    trie = PrefixTrie()
    # The beam as parallel arrays: trie node, last label (``vocab`` for the empty prefix) and the log
    # probabilities of the prefix's alignments ending in blank (pb) and in its last label (pnb).
    nodes = np.zeros(1, dtype=np.int64)
    last = np.full(1, vocab, dtype=np.int64)
    pb = np.zeros(1)
    pnb = np.full(1, -np.inf)
    column_of = np.full(vocab + 1, -1, dtype=np.int64)  # token -> column in this frame's top-k, or -1

    for t in range(num_frames):
        tokens, token_scores = top_tokens[t], top_scores[t]
        column_of[tokens] = np.arange(width)
        total = np.logaddexp(pb, pnb)

        # Staying on the same prefix: emit blank, or repeat the last label without a blank in between.
        stay_pb = total + scores[t, blank] if column_of[blank] >= 0 else np.full_like(total, -np.inf)
        last_column = column_of[last]
        stay_pnb = np.where(last_column >= 0, pnb + token_scores[last_column], -np.inf)

        # Extending by each top-k token; a repeated label only extends alignments that ended in blank.
        repeat = tokens[None, :] == last[:, None]
        extend = np.where(repeat, pb[:, None], total[:, None]) + token_scores[None, :]  # (B, width)
        extend[:, tokens == blank] = -np.inf

        # An extension may be a prefix already in the beam: parent + its last label. Merge it into that entry.
        position = {node: i for i, node in enumerate(nodes.tolist())}
        parent_position = np.array([position.get(trie.parent[node], -1) for node in nodes.tolist()])
        merged = np.nonzero((parent_position >= 0) & (last_column >= 0))[0]
        rows, cols = parent_position[merged], last_column[merged]
        stay_pnb[merged] = np.logaddexp(stay_pnb[merged], extend[rows, cols])
        extend[rows, cols] = -np.inf

        candidates = np.concatenate([np.logaddexp(stay_pb, stay_pnb), extend.ravel()])
        keep = max(1, min(beam, int(np.isfinite(candidates).sum())))
        chosen = np.argpartition(-candidates, keep - 1)[:keep]
        chosen = chosen[np.argsort(-candidates[chosen], kind="stable")]

        num_stay = len(nodes)
        stays = chosen[chosen < num_stay]
        extensions = chosen[chosen >= num_stay] - num_stay
        ext_rows, ext_cols = extensions // width, extensions % width
        ext_tokens = tokens[ext_cols]
        ext_nodes = [trie.child(node, token) for node, token in zip(nodes[ext_rows].tolist(), ext_tokens.tolist())]
        nodes = np.concatenate([nodes[stays], np.array(ext_nodes, dtype=np.int64)])
        last = np.concatenate([last[stays], ext_tokens])
        pb = np.concatenate([stay_pb[stays], np.full(len(extensions), -np.inf)])
        pnb = np.concatenate([stay_pnb[stays], extend[ext_rows, ext_cols]])
        column_of[tokens] = -1

    total = np.logaddexp(pb, pnb)
    order = np.argsort(-total, kind="stable")
    return [(trie.labels(int(nodes[i])), float(total[i])) for i in order]


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
