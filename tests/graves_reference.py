"""The transducer beam search of Graves 2012 as asrkit ran it before it was batched (one utterance at a time,
each expansion stepping the prediction network for all its labels): the reference that
tests/test_transducer.py compares the batched search in asrkit.search.transducer_search against.
"""

import heapq
import itertools
import math
from typing import Dict, List, Optional, Set, Tuple

import numpy as np
import torch

from asrkit.search.prefix_trie import PrefixTrie
from asrkit.model.decoder import LstmState
from asrkit.model.transducer import Transducer


@torch.no_grad()
def reference_beam_search_nbest(model: Transducer, encoder_out: torch.Tensor, beam: int,
                      max_symbols_per_frame: Optional[int] = 3) -> List[Tuple[List[int], float]]:
    """Graves 2012, Algorithm 1, on one utterance; returns the final beam.

    encoder_out: (T, C), already cut to the utterance's length.
    Returns up to ``beam`` pairs (label ids, log P(labels | x)), most probable first.

    Each frame starts from the beam A of the frame before. Prefix merging first adds to each y in A the
    probability of reaching it from its prefixes in A by emitting the rest of y in this frame. Then the most
    probable hypothesis of A is repeatedly moved to the new beam B with the probability of blank (ending the
    frame), and its extensions by one label are added to A, until B holds ``beam`` hypotheses more probable
    than all of A. An extension that was in A at the start of the frame is skipped: prefix merging counted it.

    Pruning beyond the paper: each expansion adds only the ``beam`` most probable labels, and a hypothesis
    of A gains at most ``max_symbols_per_frame`` labels within one frame (None: no limit). Without that
    limit, a prediction network that keeps predicting labels with little blank probability (as untrained
    ones do) made one frame expand tens of thousands of hypotheses. With nothing pruned the log
    probabilities are exact: they sum over all alignments.
    """
    if encoder_out.dim() != 2:
        raise ValueError(f"encoder_out must be (T, C), got shape {tuple(encoder_out.shape)}")
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    blank = model.decoder.blank_id
    encoder_proj = model.joiner.project_encoder(encoder_out)  # (T, J)
    tree = _PrefixTree(model)
    num_extensions = min(beam, model.joiner.output_linear.out_features - 1)
    max_symbols = math.inf if max_symbols_per_frame is None else max_symbols_per_frame
    counter = itertools.count()  # tie-breaker, so that heap entries never compare nodes
    beam_scores: Dict[int, float] = {0: 0.0}  # trie node -> log probability: B after each frame

    for t in range(encoder_proj.size(0)):
        scorer = _FrameScorer(model, tree, encoder_proj[t])
        scores = _merge_prefixes(tree, beam_scores, scorer)
        # Max-heap (negated) of A. Entries (-log prob, tie, node, rank, labels emitted in this frame) stand
        # for ``node`` itself when rank is -1, else for ``node`` extended by its rank-th most probable label.
        # Only the best extension is pushed on expansion, and each popped extension pushes the next best:
        # a sibling cannot be popped before the better ones, so the order of pops is that of pushing all.
        frontier = [(-score, next(counter), node, -1, 0) for node, score in scores.items()]
        heapq.heapify(frontier)
        start_children: Dict[int, Set[int]] = {}
        for node in scores:
            if node > 0:
                start_children.setdefault(tree.parent[node], set()).add(tree.token[node])
        extensions: Dict[int, Tuple[List[int], List[float]]] = {}  # expanded node -> labels, log probs
        finished: List[Tuple[float, int]] = []  # B: (log prob, node)
        # B's log probs not yet above the best of A. The best of A never rises (an extension is less
        # probable than the hypothesis it extends), so a hypothesis of B, once above it, stays above.
        below: List[float] = []  # max-heap (negated)
        num_above = 0
        while frontier:
            best_in_frontier = -frontier[0][0]
            while below and -below[0] > best_in_frontier:
                heapq.heappop(below)
                num_above += 1
            if num_above >= beam:
                break
            negative_score, _, node, rank, emitted = heapq.heappop(frontier)
            if rank < 0:
                log_probs = scorer.node(node)
            else:
                parent = node
                labels, label_scores = extensions[parent]
                node, log_probs = scorer.child(parent, rank, labels)
                if rank + 1 < len(labels):
                    heapq.heappush(frontier, (-label_scores[rank + 1], next(counter), parent, rank + 1, emitted))
            score = -negative_score
            finished.append((score + log_probs[blank], node))
            heapq.heappush(below, -finished[-1][0])
            if emitted < max_symbols:
                skip = start_children.get(node, ())
                labels = [label for label in _top_labels(log_probs, num_extensions, blank) if label not in skip]
                if labels:
                    extensions[node] = (labels, (score + log_probs[labels]).tolist())
                    heapq.heappush(frontier, (-extensions[node][1][0], next(counter), node, 0, emitted + 1))
        beam_scores = {node: score for score, node in heapq.nlargest(beam, finished)}

    ranked = sorted(beam_scores.items(), key=lambda item: -item[1])
    return [(tree.labels(node), float(score)) for node, score in ranked]



class _PrefixTree(PrefixTrie):
    """Label prefixes as trie nodes (node 0 is the empty prefix), with the decoder state of the nodes that
    have been expanded: projected output (J,) and LSTM state (L, 1, H) x 2."""

    def __init__(self, model: Transducer):
        super().__init__()
        self.model = model
        start = torch.full((1, 1), model.decoder.blank_id, dtype=torch.long,
                           device=model.joiner.output_linear.weight.device)
        out, state = model.decoder(start)
        self.states: Dict[int, Tuple[torch.Tensor, LstmState]] = {0: (model.joiner.project_decoder(out[0, 0]), state)}

    def extend(self, node: int, tokens: List[int]) -> Tuple[torch.Tensor, LstmState]:
        """Decoder outputs of ``node`` followed by each of ``tokens``, in one step: projected (K, J) and the
        LSTM state (L, K, H) x 2. ``node`` must have a state."""
        _, (h, c) = self.states[node]
        k = len(tokens)
        tokens_tensor = torch.tensor(tokens, device=h.device)
        out, state = self.model.decoder.step(tokens_tensor, (h.expand(-1, k, -1), c.expand(-1, k, -1)))
        return self.model.joiner.project_decoder(out), state

    def projected(self, nodes: List[int]) -> torch.Tensor:
        """(len(nodes), J) projected decoder outputs of nodes that have a state."""
        return torch.stack([self.states[node][0] for node in nodes])

class _FrameScorer:
    """log P(token | prefix) at one frame, as float64 arrays (V,), computed in batches.

    Beam members and their prefixes are scored together by :meth:`compute`. The extensions of an expanded
    hypothesis are scored together when the first of them is popped (:meth:`child`): one decoder step and
    one joiner call for all siblings rather than one per popped hypothesis.
    """

    def __init__(self, model: Transducer, tree: _PrefixTree, encoder_proj: torch.Tensor):
        self.model = model
        self.tree = tree
        self.encoder_proj = encoder_proj  # (J,)
        self._log_probs: Dict[int, np.ndarray] = {}
        self._siblings: Dict[int, Tuple[torch.Tensor, LstmState, np.ndarray]] = {}  # parent -> its extensions

    def compute(self, nodes: List[int]) -> None:
        """Score the nodes (which must have decoder states) not scored yet, in one joiner call."""
        missing = [node for node in dict.fromkeys(nodes) if node not in self._log_probs]
        if missing:
            self._log_probs.update(zip(missing, self._score(self.tree.projected(missing))))

    def node(self, node: int) -> np.ndarray:
        """The log probs of ``node``, which must have a decoder state."""
        self.compute([node])
        return self._log_probs[node]

    def child(self, parent: int, rank: int, labels: List[int]) -> Tuple[int, np.ndarray]:
        """The node of ``parent`` + ``labels[rank]`` and its log probs. The first call for a parent scores
        all of ``labels`` (its extensions) at once; the node keeps its decoder state for later frames."""
        if parent not in self._siblings:
            projected, state = self.tree.extend(parent, labels)
            self._siblings[parent] = (projected, state, self._score(projected))
        projected, (h, c), log_probs = self._siblings[parent]
        node = self.tree.child(parent, labels[rank])
        if node not in self.tree.states:  # copies, so that the batch is not kept alive by one row
            self.tree.states[node] = (projected[rank].clone(),
                                      (h[:, rank : rank + 1].clone(), c[:, rank : rank + 1].clone()))
        return node, log_probs[rank]

    def _score(self, decoder_proj: torch.Tensor) -> np.ndarray:
        """(K, J) projected decoder outputs -> (K, V) float64 log probs at this frame."""
        logits = self.model.joiner(self.encoder_proj, decoder_proj)
        return logits.log_softmax(dim=-1).double().cpu().numpy()


def _merge_prefixes(tree: _PrefixTree, beam_scores: Dict[int, float], scorer: _FrameScorer) -> Dict[int, float]:
    """Graves's prefix merging: log P(y) + sum over proper prefixes p of y in the beam of
    log P(p) + log P(rest of y emitted at this frame | p), for each y in the beam.

    Going from the shortest hypotheses to the longest, each y adds only the merged probability of its
    nearest prefix z in the beam times P(z -> y): prefixes shorter than z are already summed in z's. All
    prefixes of a beam member have decoder states, having been expanded at some frame.
    """
    nodes = sorted(beam_scores, key=lambda node: tree.depth[node])
    min_depth = tree.depth[nodes[0]]
    paths: Dict[int, List[int]] = {}  # y -> nodes from its nearest beam prefix z down to y's parent
    for node in nodes:
        path = []
        ancestor = tree.parent[node]
        while ancestor >= 0 and tree.depth[ancestor] >= min_depth:
            path.append(ancestor)
            if ancestor in beam_scores:
                paths[node] = path[::-1]
                break
            ancestor = tree.parent[ancestor]
    scorer.compute(nodes + [p for path in paths.values() for p in path])
    merged: Dict[int, float] = {}
    for node in nodes:
        score = beam_scores[node]
        if node in paths:
            path = paths[node]
            steps = path[1:] + [node]  # the label each path node emits is the token of the next one
            from_prefix = merged[path[0]] + sum(scorer.node(p)[tree.token[s]] for p, s in zip(path, steps))
            score = float(np.logaddexp(score, from_prefix))
        merged[node] = score
    return merged


def _top_labels(log_probs: np.ndarray, count: int, blank: int) -> List[int]:
    """The ``count`` most probable non-blank tokens of log_probs (V,), most probable first."""
    scores = log_probs.copy()
    scores[blank] = -np.inf
    top = np.argpartition(-scores, count - 1)[:count] if count < len(scores) - 1 else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    return top[top != blank].tolist()


