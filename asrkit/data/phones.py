"""TIMIT phone sets and the standard foldings (Lee & Hon 1989, as in Kaldi's ``phones.60-48-39.map``).

TIMIT transcribes with 61 labels. The glottal stop ``q`` is dropped everywhere (as Kaldi and Graves et al. do),
leaving 60 labels for training; these fold to 48 (an optional training set) and to 39 for scoring.
"""

from functools import lru_cache
from importlib import resources
from typing import Dict, List, Sequence

#: The label that is removed from transcriptions before anything else.
DROPPED_PHONES = frozenset({"q"})

#: All labels that may appear in a TIMIT ``.PHN`` file.
TIMIT_LABELS = frozenset(
    "iy ih eh ey ae aa aw ay ah ao oy ow uh uw ux er ax ix axr ax-h jh ch b d g p t k dx s sh z zh f th v "
    "dh m n ng em nx en eng l r w y hh hv el bcl dcl gcl pcl tcl kcl q pau epi h#".split()
)

MAP_FILE = "phones.60-48-39.map"


@lru_cache(maxsize=None)
def _folding_table() -> Dict[str, tuple]:
    text = resources.files("asrkit.data").joinpath(MAP_FILE).read_text()
    table = {}
    for line in text.splitlines():
        p60, p48, p39 = line.split("\t")
        table[p60] = (p48, p39)
    return table


def phone_set(num_phones: int) -> List[str]:
    """The sorted training label set with ``num_phones`` labels: 60 (TIMIT without q), 48 or 39."""
    table = _folding_table()
    if num_phones == 60:
        return sorted(table)
    if num_phones == 48:
        return sorted({p48 for p48, _ in table.values()})
    if num_phones == 39:
        return sorted({p39 for _, p39 in table.values()})
    raise ValueError(f"unknown phone set size {num_phones}: expected 60, 48 or 39")


def folding_map(source: int, target: int) -> Dict[str, str]:
    """Map each label of the ``source``-phone set to its label in the ``target``-phone set (60>=48>=39)."""
    table = _folding_table()
    columns = {60: lambda p60, row: p60, 48: lambda p60, row: row[0], 39: lambda p60, row: row[1]}
    if source not in columns or target not in columns or target > source:
        raise ValueError(f"cannot fold a {source}-phone set to {target} phones")
    mapping = {}
    for p60, row in table.items():
        mapping[columns[source](p60, row)] = columns[target](p60, row)
    return mapping


def fold(phones: Sequence[str], source: int, target: int) -> List[str]:
    """Fold a phone sequence from the ``source`` set to the ``target`` set, e.g. 60 -> 39 for scoring."""
    mapping = folding_map(source, target)
    return [mapping[p] for p in phones]
