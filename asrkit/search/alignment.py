"""Viterbi alignments of a known token sequence with an utterance: the frame at which each token is emitted.

Transcription reports these frames as token times for the beam searches, which sum over alignments and so have
no single path of their own.
"""

from typing import List

import numpy as np


def ctc_best_path_frames(log_probs: np.ndarray, tokens: List[int], blank: int = 0) -> List[int]:
    """CTC Viterbi alignment: the first frame of each token's segment on the most probable path.

    log_probs: (T, V) one utterance's network output. The path runs through blank, y1, blank, y2, ...,
    blank; it may skip a blank between two different labels, never a label.
    """
    if not tokens:
        return []
    states = np.full(2 * len(tokens) + 1, blank)
    states[1::2] = tokens
    emissions = log_probs[:, states]  # (T, S)
    can_skip = np.zeros(len(states), dtype=bool)  # from state s - 2 to s: a label that differs from the last
    can_skip[3::2] = states[3::2] != states[1:-2:2]
    num_frames = log_probs.shape[0]
    alpha = np.full(len(states), -np.inf)
    alpha[:2] = emissions[0, :2]
    moves = np.zeros((num_frames, len(states)), dtype=np.int64)  # states moved forward to arrive: 0, 1 or 2
    for t in range(1, num_frames):
        step = np.concatenate([[-np.inf], alpha[:-1]])
        skip = np.where(can_skip, np.concatenate([[-np.inf, -np.inf], alpha[:-2]]), -np.inf)
        candidates = np.stack([alpha, step, skip])
        moves[t] = candidates.argmax(axis=0)
        alpha = candidates.max(axis=0) + emissions[t]
    state = len(states) - 1 if alpha[-1] >= alpha[-2] else len(states) - 2
    if not np.isfinite(alpha[state]):
        raise ValueError(f"{len(tokens)} labels cannot be aligned with {num_frames} frames")
    path = np.empty(num_frames, dtype=np.int64)
    for t in range(num_frames - 1, -1, -1):
        path[t] = state
        state -= moves[t, state]
    return [int(np.argmax(path == 2 * k + 1)) for k in range(len(tokens))]


def transducer_best_path_frames(blank_log_probs: np.ndarray, label_log_probs: np.ndarray,
                                one_label_per_frame: bool = False) -> List[int]:
    """Transducer Viterbi alignment: the frame at which each label is emitted on the most probable path.

    blank_log_probs: (T, U + 1) log P(blank) at frame t after u labels; label_log_probs: (T, U) log P(label
    u + 1) there. Paths start at frame 0 with no label. In the transducer's own lattice (Graves 2012, and his
    beam search) a label keeps the frame and blank moves to the next, the last frame ending with blank.
    ``one_label_per_frame`` is the lattice of greedy and modified beam search instead: every frame emits
    exactly one token, blank or a label, and moves to the next.
    """
    num_frames, num_positions = blank_log_probs.shape
    # alpha[t, u]: the best log probability of arriving at frame t (t = T: the end) with u labels emitted
    alpha = np.full((num_frames + 1, num_positions), -np.inf)
    by_label = np.zeros((num_frames + 1, num_positions), dtype=bool)  # the best way in was a label (else blank)
    alpha[0, 0] = 0.0
    for t in range(num_frames + 1):
        for u in range(num_positions):
            if t == u == 0:
                continue
            from_blank = alpha[t - 1, u] + blank_log_probs[t - 1, u] if t > 0 else -np.inf
            if one_label_per_frame:
                from_label = alpha[t - 1, u - 1] + label_log_probs[t - 1, u - 1] if t > 0 and u > 0 else -np.inf
            else:
                from_label = alpha[t, u - 1] + label_log_probs[t, u - 1] if 0 < u and t < num_frames else -np.inf
            by_label[t, u] = from_label > from_blank
            alpha[t, u] = max(from_blank, from_label)
    if not np.isfinite(alpha[num_frames, num_positions - 1]):
        raise ValueError(f"{num_positions - 1} labels cannot be aligned with {num_frames} frames")
    frames = [0] * (num_positions - 1)
    t, u = num_frames, num_positions - 1
    while t > 0 or u > 0:
        if by_label[t, u]:
            if one_label_per_frame:
                t -= 1  # the label took up frame t - 1
            frames[u - 1] = t
            u -= 1
        else:
            t -= 1
    return frames
