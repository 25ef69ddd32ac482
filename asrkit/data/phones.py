"""TIMIT phone sets and the standard foldings (Lee & Hon 1989), from Kaldi's ``phones.60-48-39.map``.

TIMIT transcribes with 61 labels, and the manifests keep all of them. A recipe trains on one of three sets:
all 61 (as Graves, Mohamed & Hinton 2013), the 60 without the glottal stop ``q`` (as Kaldi's egs/timit), or
those 60 folded to 48 (Lee & Hon's training set). Scoring folds every set to 39. ``q`` has no 48 or 39 label
in the map (its line holds only ``q``), so every folding to 60 or fewer deletes it, from the reference and the
hypothesis alike, as Kaldi's ``timit_norm_trans.pl`` does.
"""

from functools import lru_cache
from importlib import resources
from typing import Dict, List, Optional, Sequence, Tuple

MAP_FILE = "phones.60-48-39.map"
#: TIMIT's own label set, which the manifests keep
CORPUS_PHONES = 61
#: the phone sets, largest first: TIMIT's labels, without q, Lee & Hon's training set, the scoring set
PHONE_SETS = (CORPUS_PHONES, 60, 48, 39)


@lru_cache(maxsize=None)
def _folding_table() -> Dict[str, Optional[Tuple[str, str]]]:
    """Each TIMIT label -> its (48, 39) labels, or None for a label the foldings delete (q)."""
    text = resources.files("asrkit.data").joinpath(MAP_FILE).read_text()
    table: Dict[str, Optional[Tuple[str, str]]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) not in (1, 3):
            raise ValueError(f"{MAP_FILE}:{number}: expected 'label' or 'label<TAB>label48<TAB>label39', got {line!r}")
        table[fields[0]] = (fields[1], fields[2]) if len(fields) == 3 else None
    return table


#: All labels that may appear in a TIMIT ``.PHN`` file (the 61 of the map file).
TIMIT_LABELS = frozenset(_folding_table())


def _label(label: str, row: Optional[Tuple[str, str]], num_phones: int) -> Optional[str]:
    """A TIMIT label's label in the ``num_phones`` set; None where that set has none (q below 61)."""
    if num_phones == CORPUS_PHONES:
        return label
    if row is None:
        return None
    return {60: label, 48: row[0], 39: row[1]}[num_phones]


def _check_set(num_phones: int) -> None:
    if num_phones not in PHONE_SETS:
        raise ValueError(f"unknown phone set size {num_phones}: expected one of {', '.join(map(str, PHONE_SETS))}")


def phone_set(num_phones: int) -> List[str]:
    """The sorted label set with ``num_phones`` labels: 61 (all of TIMIT's), 60 (without q), 48 or 39."""
    _check_set(num_phones)
    labels = (_label(label, row, num_phones) for label, row in _folding_table().items())
    return sorted({label for label in labels if label is not None})


def folding_map(source: int, target: int) -> Dict[str, Optional[str]]:
    """Map each label of the ``source``-phone set to its label in the ``target``-phone set (61>=60>=48>=39);
    a label the target set deletes (q, from 61 to fewer) maps to None."""
    _check_set(source)
    _check_set(target)
    if target > source:
        raise ValueError(f"cannot fold a {source}-phone set to {target} phones")
    mapping = {}
    for label, row in _folding_table().items():
        source_label = _label(label, row, source)
        if source_label is not None:
            mapping[source_label] = _label(label, row, target)
    return mapping


def fold(phones: Sequence[str], source: int, target: int) -> List[str]:
    """Fold a phone sequence from the ``source`` set to the ``target`` set, e.g. 61 -> 39 for scoring; the
    labels the target set deletes (q) are left out."""
    mapping = folding_map(source, target)
    unknown = [p for p in phones if p not in mapping]
    if unknown:
        raise ValueError(f"phone {unknown[0]!r} is not in the {source}-phone set")
    return [folded for folded in (mapping[p] for p in phones) if folded is not None]
