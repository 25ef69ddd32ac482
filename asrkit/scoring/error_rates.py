"""Error-rate scoring in the spirit of sclite: totals, per-utterance alignments, per-label errors, confusions.

Scoring is unit-agnostic: labels are any strings (phones, words, characters). Mapping to the scoring label
set (e.g. folding TIMIT's 61 labels to 39, deleting q) is the caller's job, done before :func:`score_utterances`.
"""

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import kaldialign
import numpy as np

from asrkit.io import atomic_output

#: Alignment filler for "no label here".
EPS = "<eps>"
#: Hypothesis side of a deletion and reference side of an insertion in confusion pairs.
DELETION = "<del>"
INSERTION = "<ins>"
#: Labels that may not occur in references or hypotheses.
RESERVED_LABELS = frozenset({EPS, DELETION, INSERTION})
#: How the filler is printed in alignment blocks, as in sclite.
EPS_DISPLAY = "***"
NUM_TOP_CONFUSIONS = 20
#: At most this many utterance ids are named in an error message.
MAX_IDS_NAMED = 10


@dataclass(frozen=True)
class ErrorCounts:
    """Edit-operation counts against ``ref_count`` reference labels."""

    ref_count: int
    insertions: int
    deletions: int
    substitutions: int

    @property
    def errors(self) -> int:
        return self.insertions + self.deletions + self.substitutions

    @property
    def correct(self) -> int:
        return self.ref_count - self.deletions - self.substitutions

    @property
    def rate(self) -> float:
        """Error rate in percent, e.g. 18.63."""
        return 100.0 * self.errors / self.ref_count if self.ref_count else 0.0

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.ref_count + other.ref_count,
            self.insertions + other.insertions,
            self.deletions + other.deletions,
            self.substitutions + other.substitutions,
        )


@dataclass(frozen=True)
class LabelErrors:
    """Errors of one label: how often it occurs in the references, is substituted or deleted there, and how
    often the hypotheses insert it."""

    ref_count: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


@dataclass(frozen=True)
class UtteranceAlignment:
    """One utterance's alignment as (ref, hyp) pairs, with :data:`EPS` on the missing side."""

    utterance_id: str
    pairs: List[Tuple[str, str]]
    counts: ErrorCounts


@dataclass(frozen=True)
class ScoreReport:
    """Scores of a test set: totals, alignments by utterance id (sorted) and counts of aligned label pairs.

    ``pair_counts`` counts every aligned (ref, hyp) pair including correct ones; deletions are (ref,
    :data:`DELETION`) and insertions (:data:`INSERTION`, hyp).
    """

    totals: ErrorCounts
    utterances: Dict[str, UtteranceAlignment]
    pair_counts: Counter

    @property
    def confusions(self) -> Counter:
        """Counts of the erroneous (ref, hyp) pairs: substitutions, deletions and insertions."""
        return Counter({pair: n for pair, n in self.pair_counts.items() if pair[0] != pair[1]})

    @property
    def per_label(self) -> Dict[str, LabelErrors]:
        """Errors of each label that occurs in a reference or is inserted, sorted by label."""
        ref_count: Counter = Counter()
        subs: Counter = Counter()
        dels: Counter = Counter()
        ins: Counter = Counter()
        for (ref, hyp), n in self.pair_counts.items():
            if ref == INSERTION:
                ins[hyp] += n
                continue
            ref_count[ref] += n
            if hyp == DELETION:
                dels[ref] += n
            elif hyp != ref:
                subs[ref] += n
        labels = sorted(set(ref_count) | set(ins))
        return {label: LabelErrors(ref_count[label], subs[label], dels[label], ins[label]) for label in labels}


def score_utterances(
    refs: Dict[str, List[str]], hyps: Dict[str, List[str]], sclite_costs: bool = True
) -> ScoreReport:
    """Align each hypothesis to its reference and count errors.

    refs, hyps: label sequences by utterance id; both must hold the same ids and every reference must be
    non-empty. sclite_costs: align with sclite's costs (insertion 3, deletion 3, substitution 4) rather than
    plain Levenshtein; on ties it prefers an insertion plus a deletion to two substitutions.
    """
    missing = sorted(set(refs) - set(hyps))
    extra = sorted(set(hyps) - set(refs))
    if missing or extra:
        raise ValueError(
            f"references and hypotheses differ in utterance ids: {len(missing)} without a hypothesis "
            f"{_name_ids(missing)}, {len(extra)} without a reference {_name_ids(extra)}"
        )
    utterances = {}
    pair_counts: Counter = Counter()
    totals = ErrorCounts(0, 0, 0, 0)
    for utterance_id in sorted(refs):
        ref, hyp = list(refs[utterance_id]), list(hyps[utterance_id])
        if not ref:
            raise ValueError(f"empty reference for utterance {utterance_id}")
        reserved = RESERVED_LABELS.intersection(ref + hyp)
        if reserved:
            raise ValueError(f"utterance {utterance_id} contains reserved labels {sorted(reserved)}")
        pairs = kaldialign.align(ref, hyp, EPS, sclite_mode=sclite_costs)
        counts = _count_errors(pairs)
        utterances[utterance_id] = UtteranceAlignment(utterance_id, pairs, counts)
        totals = totals + counts
        pair_counts.update(
            (INSERTION if r == EPS else r, DELETION if h == EPS else h) for r, h in pairs
        )
    return ScoreReport(totals, utterances, pair_counts)


def format_totals(counts: ErrorCounts, unit: str = "PER") -> str:
    """The Kaldi/sclite totals line, e.g. ``%PER 18.63 [ 1341 / 7215, 150 ins, 420 del, 771 sub ]``."""
    return (
        f"%{unit} {counts.rate:.2f} [ {counts.errors} / {counts.ref_count}, "
        f"{counts.insertions} ins, {counts.deletions} del, {counts.substitutions} sub ]"
    )


def write_report(report: ScoreReport, path: Union[str, Path], title: str, unit: str = "PER") -> None:
    """Write a text report: the totals line first (so ``grep %PER`` and ``head -1`` find it), then the title,
    per-utterance alignments, per-label errors and the top confusions."""
    lines = [format_totals(report.totals, unit), f"# {title}", f"# {len(report.utterances)} utterances", ""]
    lines += [f"## Alignments (errors upper-cased, {EPS_DISPLAY} = nothing; op: S sub, D del, I ins)", ""]
    for alignment in report.utterances.values():
        lines += _alignment_block(alignment) + [""]
    lines += _label_table(report.per_label) + [""]
    lines += _confusion_table(report.confusions)
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")


def confusion_matrix(report: ScoreReport, labels: Sequence[str]) -> np.ndarray:
    """Counts of aligned (ref, hyp) pairs, correct ones on the diagonal.

    Returns (L + 1, L + 1) int64 for the L ``labels``: rows are ref labels then :data:`INSERTION`, columns are
    hyp labels then :data:`DELETION`; the last row and column are insertions and deletions, the corner is 0.
    """
    rows = {label: i for i, label in enumerate(labels)}
    if len(rows) != len(labels):
        raise ValueError("labels contain duplicates")
    unknown = {label for pair in report.pair_counts for label in pair} - set(rows) - {INSERTION, DELETION}
    if unknown:
        raise ValueError(f"scored labels missing from the label list: {sorted(unknown)}")
    rows[INSERTION] = rows[DELETION] = len(labels)
    matrix = np.zeros((len(labels) + 1, len(labels) + 1), dtype=np.int64)
    for (ref, hyp), n in report.pair_counts.items():
        matrix[rows[ref], rows[hyp]] += n
    return matrix


def _count_errors(pairs: List[Tuple[str, str]]) -> ErrorCounts:
    insertions = sum(r == EPS for r, _ in pairs)
    deletions = sum(h == EPS for _, h in pairs)
    substitutions = sum(r != h and EPS not in (r, h) for r, h in pairs)
    return ErrorCounts(len(pairs) - insertions, insertions, deletions, substitutions)


def _alignment_block(alignment: UtteranceAlignment) -> List[str]:
    """sclite-style ``ref:``/``hyp:``/``op:`` lines with one column per aligned pair."""
    counts = alignment.counts
    ref_cells, hyp_cells, op_cells = [], [], []
    for ref, hyp in alignment.pairs:
        if ref == hyp:
            op = ""
        else:
            op = "I" if ref == EPS else "D" if hyp == EPS else "S"
            ref, hyp = (EPS_DISPLAY if x == EPS else x.upper() for x in (ref, hyp))
        width = max(len(ref), len(hyp))
        ref_cells.append(ref.ljust(width))
        hyp_cells.append(hyp.ljust(width))
        op_cells.append(op.ljust(width))
    return [
        f"id: {alignment.utterance_id}",
        f"Scores: (#C #S #D #I) {counts.correct} {counts.substitutions} {counts.deletions} {counts.insertions}",
        ("ref: " + " ".join(ref_cells)).rstrip(),
        ("hyp: " + " ".join(hyp_cells)).rstrip(),
        ("op:  " + " ".join(op_cells)).rstrip(),
    ]


def _label_table(per_label: Dict[str, LabelErrors]) -> List[str]:
    """Per-label errors, most errors first; err% is (sub + del) / ref count."""
    width = max([len("label")] + [len(label) for label in per_label])
    lines = [
        "## Per-label errors (sub/del: label in the reference; ins: label inserted by the hypothesis)",
        "",
        f"{'label':<{width}} {'ref':>6} {'sub':>6} {'del':>6} {'ins':>6} {'err%':>7}",
    ]
    for label, e in sorted(per_label.items(), key=lambda item: (-item[1].errors, item[0])):
        percent = f"{100.0 * (e.substitutions + e.deletions) / e.ref_count:.2f}" if e.ref_count else "-"
        lines.append(
            f"{label:<{width}} {e.ref_count:>6} {e.substitutions:>6} {e.deletions:>6} {e.insertions:>6} {percent:>7}"
        )
    return lines


def _confusion_table(confusions: Counter) -> List[str]:
    lines = [f"## Top {NUM_TOP_CONFUSIONS} confusions (ref -> hyp)", ""]
    # Ties broken by label so the report is reproducible.
    top = sorted(confusions.items(), key=lambda item: (-item[1], item[0]))[:NUM_TOP_CONFUSIONS]
    lines += [f"{n:>6}  {ref} -> {hyp}" for (ref, hyp), n in top]
    return lines


def _name_ids(ids: List[str]) -> str:
    named = ", ".join(ids[:MAX_IDS_NAMED])
    more = f" and {len(ids) - MAX_IDS_NAMED} more" if len(ids) > MAX_IDS_NAMED else ""
    return f"[{named}{more}]"
