"""Searches for the label sequence of a transducer (:class:`asrkit.model.transducer.Transducer`).

All take the encoder output of a padded batch, ``encoder_out`` (N, T, C) with ``encoder_lens`` (N,), and
return N label-id lists (blank never appears in them). Run them with the model in eval mode.

- :func:`greedy_search_batch`: at each frame the single most probable token; at most one label per frame
  (:func:`greedy_paths_batch` also gives each label's frame and the distributions along the path).
- :func:`beam_search`: Graves 2012's transducer beam search (Algorithm 1, with prefix merging), which sums
  over alignments and lets several labels be emitted per frame; all utterances advanced together.
- :func:`modified_beam_search`: icefall's beam search with at most one label per frame, all utterances
  of the batch advanced together, and hypotheses with equal label sequences merged.

The two beam searches take an optional token LM, ``fusion`` (shallow fusion, :mod:`asrkit.search.lm`).
"""

import heapq
import itertools
import math
from typing import TYPE_CHECKING, Dict, Generator, List, Optional, Set, Tuple

import numpy as np
import torch

from asrkit.search.ctc_search import check_padded_batch
from asrkit.search.lm import START, LmScorer, ShallowFusion
from asrkit.model.interface import GreedyPath
from asrkit.search.prefix_trie import PrefixTrie

if TYPE_CHECKING:  # the model calls these searches: it is imported for annotations only
    from asrkit.model.transducer import Transducer


@torch.no_grad()
def greedy_search_batch(model: "Transducer", encoder_out: torch.Tensor, encoder_lens: torch.Tensor
                        ) -> List[List[int]]:
    """Batched greedy search: per frame, the argmax token; a label advances the decoder, and the search
    moves to the next frame after at most one label (as icefall's ``greedy_search_batch``).

    encoder_out: (N, T, C), encoder_lens: (N,) -> N label-id lists.
    """
    return [path.tokens for path in greedy_paths_batch(model, encoder_out, encoder_lens)]


def greedy_paths_batch(model: "Transducer", encoder_out: torch.Tensor, encoder_lens: torch.Tensor,
                       with_log_probs: bool = False) -> List[GreedyPath]:
    """The greedy search of :func:`greedy_search_batch`, with the frame of each label and, ``with_log_probs``,
    the joiner's (T'_n, V) log-probabilities along each path (else empty tensors): what transcription shows.

    encoder_out: (N, T, C), encoder_lens: (N,) -> N paths.
    """
    check_padded_batch(encoder_out, encoder_lens, "encoder_out, encoder_lens", "N, T, C")
    blank = model.decoder.blank_id
    n = encoder_out.size(0)
    encoder_proj = model.joiner.project_encoder(encoder_out)  # (N, T, J)
    decoder_out, (h, c) = model.decoder(torch.full((n, 1), blank, dtype=torch.long, device=encoder_out.device))
    decoder_proj = model.joiner.project_decoder(decoder_out[:, 0])  # (N, J)
    paths = [GreedyPath([], [], torch.empty(0)) for _ in range(n)]
    frame_log_probs: List[torch.Tensor] = []  # (N, V) per frame
    lens = encoder_lens.to(encoder_out.device)
    for t in range(max(encoder_lens.tolist(), default=0)):
        logits = model.joiner(encoder_proj[:, t], decoder_proj)  # (N, V)
        if with_log_probs:
            frame_log_probs.append(logits.log_softmax(dim=-1).cpu())
        best = logits.argmax(dim=-1)  # (N,)
        emitting = torch.nonzero((best != blank) & (lens > t)).squeeze(1)
        if emitting.numel() == 0:
            continue
        tokens = best[emitting]
        for u, token in zip(emitting.tolist(), tokens.tolist()):
            paths[u].tokens.append(token)
            paths[u].frames.append(t)
        out, (h_new, c_new) = model.decoder.step(tokens, (h[:, emitting], c[:, emitting]))
        h[:, emitting], c[:, emitting] = h_new, c_new
        decoder_proj[emitting] = model.joiner.project_decoder(out)
    if with_log_probs and frame_log_probs:
        stacked = torch.stack(frame_log_probs, dim=1)  # (N, T, V)
        for u, length in enumerate(encoder_lens.tolist()):
            paths[u].log_probs = stacked[u, :length]
    return paths


@torch.no_grad()
def beam_search(model: "Transducer", encoder_out: torch.Tensor, encoder_lens: torch.Tensor, beam: int,
                max_symbols_per_frame: Optional[int] = 3, length_norm: bool = True,
                fusion: Optional[ShallowFusion] = None) -> List[List[int]]:
    """Graves 2012's transducer beam search (:func:`beam_search_batch_nbest`) of a padded batch.

    encoder_out: (N, T, C), encoder_lens: (N,). Returns per utterance the hypothesis of the final beam with
    the highest log P(y | x) / |y| (``length_norm``, as in Graves 2012; the empty sequence counts as length 1)
    or the highest log P(y | x); with ``fusion``, that score plus the LM's (:mod:`asrkit.search.lm`).
    """
    return [_best(nbest, length_norm)
            for nbest in beam_search_batch_nbest(model, encoder_out, encoder_lens, beam, max_symbols_per_frame,
                                                 fusion)]


@torch.no_grad()
def beam_search_nbest(model: "Transducer", encoder_out: torch.Tensor, beam: int,
                      max_symbols_per_frame: Optional[int] = 3) -> List[Tuple[List[int], float]]:
    """Graves 2012, Algorithm 1, on one utterance, encoder_out (T, C) already cut to its length; returns the
    final beam: up to ``beam`` pairs (label ids, log P(labels | x)), most probable first.
    See :func:`beam_search_batch_nbest`."""
    if encoder_out.dim() != 2:
        raise ValueError(f"encoder_out must be (T, C), got shape {tuple(encoder_out.shape)}")
    return beam_search_batch_nbest(model, encoder_out.unsqueeze(0), torch.tensor([encoder_out.size(0)]), beam,
                                   max_symbols_per_frame)[0]


@torch.no_grad()
def beam_search_batch_nbest(model: "Transducer", encoder_out: torch.Tensor, encoder_lens: torch.Tensor, beam: int,
                            max_symbols_per_frame: Optional[int] = 3, fusion: Optional[ShallowFusion] = None
                            ) -> List[List[Tuple[List[int], float]]]:
    """Graves 2012, Algorithm 1, on each utterance of a padded batch; returns each final beam.

    encoder_out: (N, T, C), encoder_lens: (N,). Returns per utterance up to ``beam`` pairs (label ids,
    log P(labels | x)), most probable first.

    With ``fusion`` the search runs on the label log probabilities plus the LM's label scores (the blank's are
    the network's), and the final scores add the LM's end of the sentence: the ranking of shallow fusion. An
    insertion bonus can make an extension score above the hypothesis it extends, which the stopping rule
    below assumes it does not: with a positive bonus the search is an approximation, as every beam search
    with a bonus is.

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

    How it is computed: the search of each utterance and frame (:meth:`_FrameSearch.run`) is the sequential
    algorithm above, and stops whenever it needs log probabilities it does not have. The utterances advance
    frame by frame together, and what all of them need is computed in one batch (:class:`_PrefixStates`):
    the prediction network is stepped once per distinct label prefix (for the whole batch and as long as the
    prefix or its parent is in a beam), and the joiner runs for all the requested hypotheses at once. A hypothesis's log probabilities are computed
    only when it is popped from A (not for all labels of the hypothesis it extends), and, so that a frame
    takes few batches, together with those of the hypotheses most likely to be popped next.
    """
    check_padded_batch(encoder_out, encoder_lens, "encoder_out, encoder_lens", "N, T, C")
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    encoder_proj = model.joiner.project_encoder(encoder_out)  # (N, T, J)
    prefixes = _PrefixStates(model, fusion)
    search = _FrameSearch(prefixes, model.decoder.blank_id, beam,
                          min(beam, model.joiner.output_linear.out_features - 1),
                          math.inf if max_symbols_per_frame is None else max_symbols_per_frame)
    lens = encoder_lens.tolist()
    beams: List[Dict[int, float]] = [{0: 0.0} for _ in lens]  # per utterance: trie node -> log prob, B
    for t in range(max(lens, default=0)):
        active = [u for u, length in enumerate(lens) if length > t]
        log_probs: Dict[int, Dict[int, np.ndarray]] = {u: {} for u in active}  # per utterance: node -> (V,)
        frames = {u: search.run(beams[u], log_probs[u]) for u in active}
        requests = {u: next(frame) for u, frame in frames.items()}
        while requests:
            pairs = [(u, node) for u, nodes in requests.items() for node in nodes]
            rows = torch.tensor([u for u, _ in pairs], device=encoder_proj.device)
            scores = prefixes.log_probs(encoder_proj[rows, t], [node for _, node in pairs])
            for (u, node), node_scores in zip(pairs, scores):
                log_probs[u][node] = node_scores
            waiting = {}
            for u in requests:
                try:
                    waiting[u] = frames[u].send(None)
                except StopIteration as done:
                    beams[u] = done.value
            requests = waiting
        prefixes.collect(beams)
    if fusion is not None:
        beams = [dict(zip(beam_u, np.array(list(beam_u.values())) + prefixes.end_scores(list(beam_u))))
                 for beam_u in beams]
    return [[(prefixes.labels(node), float(score)) for node, score in sorted(beam_u.items(), key=lambda i: -i[1])]
            for beam_u in beams]


@torch.no_grad()
def modified_beam_search(model: "Transducer", encoder_out: torch.Tensor, encoder_lens: torch.Tensor, beam: int = 4,
                         length_norm: bool = True, fusion: Optional[ShallowFusion] = None) -> List[List[int]]:
    """icefall's modified beam search: at most one label per frame, all utterances advanced together.

    encoder_out: (N, T, C), encoder_lens: (N,). At each frame every hypothesis is extended by every token
    (blank keeps its labels), the ``beam`` most probable extensions per utterance are kept, and kept
    extensions with equal label sequences are merged by adding their probabilities. Returns per utterance
    the best of the final beam, by log probability divided by the length (``length_norm``; empty counts as 1)
    or by log probability. ``beam=1`` gives :func:`greedy_search_batch`'s result (without an LM).
    fusion: a token LM whose scores each label and the end add (:mod:`asrkit.search.lm`), or None.
    """
    check_padded_batch(encoder_out, encoder_lens, "encoder_out, encoder_lens", "N, T, C")
    if beam < 1:
        raise ValueError(f"beam must be at least 1, got {beam}")
    blank = model.decoder.blank_id
    n = encoder_out.size(0)
    device = encoder_out.device
    encoder_proj = model.joiner.project_encoder(encoder_out)  # (N, T, J)
    # Decoder state of the hypotheses, one row each: projected output (R, J) and LSTM state (L, R, H) x 2.
    decoder_out, (h, c) = model.decoder(torch.full((1, 1), blank, dtype=torch.long, device=device))
    decoder_proj = model.joiner.project_decoder(decoder_out[:, 0])
    # Per utterance: label sequence -> (log prob, row of its decoder state, its LM state).
    beams: List[Dict[Tuple[int, ...], Tuple[float, int, int]]] = [{(): (0.0, 0, START)} for _ in range(n)]
    scorer = fusion.lm.scorer() if fusion is not None else None
    lens = encoder_lens.tolist()

    for t in range(max(lens, default=0)):
        active = [u for u in range(n) if lens[u] > t]
        hyps = [list(beams[u].items()) for u in active]
        rows = torch.tensor([row for utt in hyps for _, (_, row, _) in utt], device=device)
        frames = torch.tensor([u for u, utt in zip(active, hyps) for _ in utt], device=device)
        previous = torch.tensor([score for utt in hyps for _, (score, _, _) in utt], dtype=encoder_proj.dtype,
                                device=device)
        scores = model.joiner(encoder_proj[frames, t], decoder_proj[rows]).log_softmax(dim=-1)
        scores = scores + previous.unsqueeze(1)  # (R, V)
        if fusion is not None:
            states = [state for utt in hyps for _, (_, _, state) in utt]
            scores = scores + torch.from_numpy(fusion.label_scores(scorer, states)).to(scores)

        # Kept extensions, by utterance: labels -> [log prob, parent row, label or -1 for blank, parent LM state].
        kept: List[Dict[Tuple[int, ...], List]] = []
        for utt, utt_scores in zip(hyps, scores.split([len(utt) for utt in hyps])):
            vocab = utt_scores.size(1)
            top_scores, top_indices = utt_scores.flatten().topk(min(beam, utt_scores.numel()))
            extensions: Dict[Tuple[int, ...], List] = {}
            for score, index in zip(top_scores.tolist(), top_indices.tolist()):
                labels, (_, row, state) = utt[index // vocab]
                token = index % vocab
                if token != blank:
                    labels = labels + (token,)
                if labels in extensions:
                    merged = extensions[labels]
                    merged[0] = float(np.logaddexp(merged[0], score))
                    if token == blank:  # same sequence: prefer the route whose decoder state already exists
                        merged[1:] = [row, -1, state]
                else:
                    extensions[labels] = [score, row, -1 if token == blank else token, state]
            kept.append(extensions)

        # One decoder step for all new labels, then a compact table of the rows still in use.
        stepping = [(row, token) for extensions in kept for _, row, token, _ in extensions.values() if token >= 0]
        new_rows = itertools.count(decoder_proj.size(0))
        if stepping:
            parent_rows = torch.tensor([row for row, _ in stepping], device=device)
            tokens = torch.tensor([token for _, token in stepping], device=device)
            out, (h_new, c_new) = model.decoder.step(tokens, (h[:, parent_rows], c[:, parent_rows]))
            decoder_proj = torch.cat([decoder_proj, model.joiner.project_decoder(out)])
            h, c = torch.cat([h, h_new], dim=1), torch.cat([c, c_new], dim=1)
        new_states = iter(_next_lm_states(scorer, [(state, token) for extensions in kept
                                                   for _, _, token, state in extensions.values() if token >= 0]))
        for u, extensions in zip(active, kept):
            beams[u] = {labels: (score, row, state) if token < 0 else (score, next(new_rows), next(new_states))
                        for labels, (score, row, token, state) in extensions.items()}
        keep = [row for beam_u in beams for _, row, _ in beam_u.values()]
        renumber = {old: new for new, old in enumerate(dict.fromkeys(keep))}
        index = torch.tensor(list(renumber), device=device)
        decoder_proj, h, c = decoder_proj[index], h[:, index], c[:, index]
        beams = [{labels: (score, renumber[row], state) for labels, (score, row, state) in beam_u.items()}
                 for beam_u in beams]

    finals = [[(list(labels), score, state) for labels, (score, _, state) in beam_u.items()] for beam_u in beams]
    return [_best(_with_end_scores(fusion, scorer, hyps), length_norm) for hyps in finals]


def _next_lm_states(scorer: Optional[LmScorer], pairs: List[Tuple[int, int]]) -> List[int]:
    """The LM states after (state, label) pairs; START for each without an LM (a search without fusion)."""
    if scorer is None:
        return [START] * len(pairs)
    return scorer.next_states([state for state, _ in pairs], [token for _, token in pairs])


def _with_end_scores(fusion: Optional[ShallowFusion], scorer: Optional[LmScorer],
                     hypotheses: List[Tuple[List[int], float, int]]) -> List[Tuple[List[int], float]]:
    """(labels, log prob, LM state) -> (labels, log prob plus the LM's end-of-sentence score, if any)."""
    if fusion is None:
        return [(labels, score) for labels, score, _ in hypotheses]
    ends = fusion.end_scores(scorer, [state for _, _, state in hypotheses])
    return [(labels, score + float(end)) for (labels, score, _), end in zip(hypotheses, ends)]


class _PrefixStates(PrefixTrie):
    """Label prefixes as trie nodes (node 0 is the empty prefix), with the prediction network's state after
    each: a node's projected output is a row of ``projected`` (rows, J), its LSTM state a column of ``h`` and
    ``c`` (L, rows, H), at index ``rows[node]``. A state depends on the labels alone, so one trie serves all
    utterances and frames. New nodes (:meth:`PrefixTrie.children`; the parent must have a state) get their
    states in one prediction-network step for all of them, when :meth:`log_probs` first needs them.
    :meth:`collect` drops the states that the beams no longer lead to. With ``fusion``, each node also has a
    state of the LM (``lm_states``, kept: an int), and :meth:`log_probs` adds the LM's label scores.
    """

    def __init__(self, model: "Transducer", fusion: Optional[ShallowFusion] = None):
        super().__init__()
        self.model = model
        self.fusion = fusion
        self.scorer = fusion.lm.scorer() if fusion is not None else None
        self.lm_states: List[int] = [START]  # node -> its LM state, -1 for not computed yet
        start = torch.full((1, 1), model.decoder.blank_id, dtype=torch.long,
                           device=model.joiner.output_linear.weight.device)
        out, (h, c) = model.decoder(start)
        self.projected = model.joiner.project_decoder(out[0])  # (1, J); the tensors' size is the capacity
        self.h, self.c = h, c  # (L, 1, H)
        self.rows: List[int] = [0]  # node -> its row, -1 for none (not computed yet, or dropped)
        self.stored: List[int] = [0]  # row -> its node, for the rows in use
        self.collect_above = 4096  # rows in use at which :meth:`collect` next drops states

    def log_probs(self, encoder_proj: torch.Tensor, nodes: List[int]) -> np.ndarray:
        """log P(token | prefix node, frame): encoder_proj (R, J) projected frames and R nodes -> (R, V) float64.

        Float64, as the searches sum log probabilities over many steps and alignments.
        """
        self._compute_states(nodes)
        index = torch.tensor([self.rows[node] for node in nodes], device=self.projected.device)
        logits = self.model.joiner(encoder_proj, self.projected[index])
        scores = logits.log_softmax(dim=-1).double().cpu().numpy()
        if self.fusion is not None:
            scores += self.fusion.label_scores(self.scorer, self._lm_states_of(nodes))
        return scores

    def end_scores(self, nodes: List[int]) -> np.ndarray:
        """(len(nodes),): the fusion's end-of-sentence score after each node (with fusion only)."""
        return self.fusion.end_scores(self.scorer, self._lm_states_of(nodes))

    def _lm_states_of(self, nodes: List[int]) -> List[int]:
        """The LM state of each node, computed for those without one (and their ancestors), shallowest first."""
        self.lm_states.extend([-1] * (len(self.parent) - len(self.lm_states)))
        missing = set()
        for node in nodes:
            while self.lm_states[node] < 0 and node not in missing:
                missing.add(node)
                node = self.parent[node]
        for depth in sorted({self.depth[node] for node in missing}):
            level = [node for node in missing if self.depth[node] == depth]
            states = self.scorer.next_states([self.lm_states[self.parent[node]] for node in level],
                                             [self.token[node] for node in level])
            for node, state in zip(level, states):
                self.lm_states[node] = state
        return [self.lm_states[node] for node in nodes]

    def collect(self, beams: List[Dict[int, float]]) -> None:
        """Between frames, once the states in use have doubled: keep only those of the nodes that later
        frames can ask for again, the beams' nodes, their ancestors down to the shallowest node of their beam
        (prefix merging scores them) and the children of those (likely popped again); drop the others."""
        if len(self.stored) < self.collect_above:
            return
        live = set()
        for beam_scores in beams:
            min_depth = min(self.depth[node] for node in beam_scores)
            for node in beam_scores:
                while node >= 0 and self.depth[node] >= min_depth:
                    live.add(node)
                    node = self.parent[node]
        keep = [node for node in self.stored if node in live or self.parent[node] in live]
        index = torch.tensor([self.rows[node] for node in keep], device=self.projected.device)
        self.projected, self.h, self.c = self.projected[index], self.h[:, index], self.c[:, index]
        for node in self.stored:
            self.rows[node] = -1
        for row, node in enumerate(keep):
            self.rows[node] = row
        self.stored = keep
        self.collect_above = max(4096, 2 * len(keep))

    def _compute_states(self, nodes: List[int]) -> None:
        """Step the prediction network for those of ``nodes`` without a state, in one batch."""
        self.rows.extend([-1] * (len(self.parent) - len(self.rows)))
        missing = [node for node in dict.fromkeys(nodes) if self.rows[node] < 0]
        if not missing:
            return
        parent_rows = [self.rows[self.parent[node]] for node in missing]
        assert min(parent_rows) >= 0, "a node was asked for before its parent had a state"
        device = self.projected.device
        parents = torch.tensor(parent_rows, device=device)
        tokens = torch.tensor([self.token[node] for node in missing], device=device)
        out, (h, c) = self.model.decoder.step(tokens, (self.h[:, parents], self.c[:, parents]))
        first, end = len(self.stored), len(self.stored) + len(missing)
        if end > self.projected.size(0):  # grow by doubling: each state is copied O(1) times on average
            capacity = max(end, 2 * self.projected.size(0))
            self.projected = _grown(self.projected, 0, capacity)
            self.h, self.c = _grown(self.h, 1, capacity), _grown(self.c, 1, capacity)
        self.projected[first:end] = self.model.joiner.project_decoder(out)
        self.h[:, first:end], self.c[:, first:end] = h, c
        for row, node in enumerate(missing, start=first):
            self.rows[node] = row
        self.stored.extend(missing)


def _grown(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """``x`` with dimension ``dim`` enlarged to ``size`` (new entries uninitialised)."""
    shape = list(x.shape)
    shape[dim] = size
    return torch.cat([x, x.new_empty(shape[:dim] + [size - x.size(dim)] + shape[dim + 1:])], dim=dim)


class _FrameSearch:
    """One frame of Graves's search on one utterance, as a generator that asks for log probabilities.

    :meth:`run` yields lists of trie nodes whose log probabilities it needs at this frame; the caller puts
    them into the ``log_probs`` dict it was given and resumes it. It returns the new beam B.
    """

    def __init__(self, prefixes: _PrefixStates, blank: int, beam: int, num_extensions: int, max_symbols: float):
        self.prefixes = prefixes
        self.blank = blank
        self.beam = beam
        self.num_extensions = num_extensions
        self.max_symbols = max_symbols
        # Extensions scored ahead when one must be, so that a frame of a wide beam takes a few batches
        # rather than one per popped extension.
        self.lookahead = max(4, beam // 2)

    def run(self, beam_scores: Dict[int, float], log_probs: Dict[int, np.ndarray]
            ) -> Generator[List[int], None, Dict[int, float]]:
        """beam_scores: trie node -> log prob of the beam after the frame before (A). Returns B likewise."""
        tree, blank, beam = self.prefixes, self.blank, self.beam
        paths = _merge_paths(tree, beam_scores)
        yield list(dict.fromkeys(list(beam_scores) + [p for path in paths.values() for p in path]))
        scores = _merge_prefixes(tree, beam_scores, paths, log_probs)
        counter = itertools.count()  # tie-breaker, so that heap entries never compare nodes
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
            if rank >= 0:
                parent = node
                labels, label_scores = extensions[parent]
                node = tree.child(parent, labels[rank])
                if rank + 1 < len(labels):
                    heapq.heappush(frontier, (-label_scores[rank + 1], next(counter), parent, rank + 1, emitted))
                if node not in log_probs:
                    yield self._ahead(node, frontier, extensions, log_probs)
            node_scores = log_probs[node]
            score = -negative_score
            finished.append((score + node_scores[blank], node))
            heapq.heappush(below, -finished[-1][0])
            if emitted < self.max_symbols:
                skip = start_children.get(node, ())
                labels = [label for label in _top_labels(node_scores, self.num_extensions, blank) if label not in skip]
                if labels:
                    extensions[node] = (labels, (score + node_scores[labels]).tolist())
                    heapq.heappush(frontier, (-extensions[node][1][0], next(counter), node, 0, emitted + 1))
        return {node: score for score, node in heapq.nlargest(beam, finished)}

    def _ahead(self, node: int, frontier: list, extensions: Dict[int, Tuple[List[int], List[float]]],
               log_probs: Dict[int, np.ndarray]) -> List[int]:
        """``node``, and the extensions that would be popped next if nothing else were pushed, without log
        probs yet: the search's own order of pops on a copy of A, up to ``lookahead`` extensions."""
        queue = frontier.copy()  # a copy of a heap is a heap
        parents: List[int] = []
        tokens: List[int] = []
        while queue and len(parents) < self.lookahead:
            _, tie, parent, rank, emitted = heapq.heappop(queue)
            if rank < 0:  # a hypothesis of A itself, scored already; its extensions are not known yet
                continue
            labels, label_scores = extensions[parent]
            parents.append(parent)
            tokens.append(labels[rank])
            if rank + 1 < len(labels):
                heapq.heappush(queue, (-label_scores[rank + 1], tie, parent, rank + 1, emitted))
        ahead = self.prefixes.children(parents, tokens)
        return list(dict.fromkeys([node] + [n for n in ahead if n not in log_probs]))


def _merge_paths(tree: PrefixTrie, beam_scores: Dict[int, float]) -> Dict[int, List[int]]:
    """For prefix merging (:func:`_merge_prefixes`): each y of the beam that has a proper prefix in the beam ->
    the nodes from its nearest such prefix z down to y's parent."""
    nodes = sorted(beam_scores, key=lambda node: tree.depth[node])
    min_depth = tree.depth[nodes[0]]
    paths: Dict[int, List[int]] = {}
    for node in nodes:
        path = []
        ancestor = tree.parent[node]
        while ancestor >= 0 and tree.depth[ancestor] >= min_depth:
            path.append(ancestor)
            if ancestor in beam_scores:
                paths[node] = path[::-1]
                break
            ancestor = tree.parent[ancestor]
    return paths


def _merge_prefixes(tree: PrefixTrie, beam_scores: Dict[int, float], paths: Dict[int, List[int]],
                    log_probs: Dict[int, np.ndarray]) -> Dict[int, float]:
    """Graves's prefix merging: log P(y) + sum over proper prefixes p of y in the beam of
    log P(p) + log P(rest of y emitted at this frame | p), for each y in the beam.

    Going from the shortest hypotheses to the longest, each y adds only the merged probability of its
    nearest prefix z in the beam (``paths``, from :func:`_merge_paths`) times P(z -> y): prefixes shorter
    than z are already summed in z's. ``log_probs`` holds those of the beam and of the paths' nodes.
    """
    merged: Dict[int, float] = {}
    for node in sorted(beam_scores, key=lambda node: tree.depth[node]):
        score = beam_scores[node]
        if node in paths:
            path = paths[node]
            steps = path[1:] + [node]  # the label each path node emits is the token of the next one
            from_prefix = merged[path[0]] + sum(log_probs[p][tree.token[s]] for p, s in zip(path, steps))
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



def _best(hypotheses: List[Tuple[List[int], float]], length_norm: bool) -> List[int]:
    """The label sequence with the highest log prob, divided by max(1, length) if ``length_norm``."""
    def rank(hypothesis: Tuple[List[int], float]) -> float:
        labels, score = hypothesis
        return score / max(1, len(labels)) if length_norm else score

    return max(hypotheses, key=rank)[0]
