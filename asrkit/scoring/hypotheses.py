"""Hypothesis files, as the decode stage writes them and scoring reads them (one line per utterance: its cut id,
then its token symbols), and their error rate against a cut set's references in the units' metrics."""

from pathlib import Path
from typing import Dict, List, Tuple

from lhotse import CutSet

from asrkit.data.units import Units
from asrkit.io import atomic_output
from asrkit.scoring.error_rates import score_utterances


def write_hyps(hyps: Dict[str, List[str]], path: Path) -> None:
    """Write hypotheses (token symbols by cut id) to ``path``, atomically, sorted by cut id."""
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{utt} {' '.join(symbols)}\n" for utt, symbols in sorted(hyps.items())))


def read_hyps(path: Path) -> Dict[str, List[str]]:
    """The hypotheses of a file :func:`write_hyps` wrote."""
    hyps = {}
    for line in Path(path).read_text().splitlines():
        utt, *symbols = line.split()
        hyps[utt] = symbols
    return hyps


def references(cuts: CutSet, units: Units) -> Dict[str, List[str]]:
    """The scored reference of every cut (39 folded phones, or words), by cut id."""
    return {cut.id: [label for s in cut.supervisions for label in units.reference(s)] for cut in cuts}


def scoring_views(cuts: CutSet, hyps: Dict[str, List[str]], units: Units
                  ) -> Tuple[Dict[str, Dict[str, List[str]]], Dict[str, Dict[str, List[str]]]]:
    """References and hypotheses (token symbols by cut id) in each of the units' scoring views, by cut id."""
    refs = {utt: units.scoring_views(ref) for utt, ref in references(cuts, units).items()}
    return refs, {utt: units.scoring_views(units.scored(symbols)) for utt, symbols in hyps.items()}


def error_rate(cuts: CutSet, hyps: Dict[str, List[str]], units: Units) -> float:
    """The units' first metric (PER, or WER) of hypotheses (token symbols by cut id), in percent."""
    refs, hyps = scoring_views(cuts, hyps, units)
    metric = units.metrics[0]
    return score_utterances({u: v[metric] for u, v in refs.items()}, {u: v[metric] for u, v in hyps.items()}).totals.rate
