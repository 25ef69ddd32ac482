"""Labels: ARPAbet segments -> TIMIT's 61 phones, engine times -> sample boundaries, engine words -> the
transcript's words.
"""

from dataclasses import dataclass
from typing import List, Sequence, Tuple

import numpy as np

from asrkit.data.phones import TIMIT_LABELS
from asrkit.demo.sentences import sentence_words
from asrkit.demo.tts.engine import EngineSegment, EngineWord


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of audio in samples, ``start`` inclusive and ``end`` exclusive (as in TIMIT)."""

    label: str
    start: int
    end: int


_VOWELS = frozenset("iy ih eh ey ae aa aw ay ah ao oy ow uh uw ux er ax ix axr ax-h".split())
_PAUSES = frozenset({"pau", "brth", "h#"})
#: Stops and affricates: closure label and the fraction of the engine's segment the closure takes.
_CLOSURES = {
    "b": ("bcl", 0.55),
    "d": ("dcl", 0.55),
    "g": ("gcl", 0.55),
    "p": ("pcl", 0.50),
    "t": ("tcl", 0.50),
    "k": ("kcl", 0.50),
    "jh": ("dcl", 0.40),
    "ch": ("tcl", 0.40),
}


def _arpabet(segment: EngineSegment) -> str:
    """The segment's phone without a stress digit (lexicons write "ah0"; the engines' segments mostly do not)."""
    return segment.name.rstrip("012")


def _is_flap(segments: Sequence[EngineSegment], index: int) -> bool:
    """t or d between a stressed and an unstressed vowel ("water", "ladder") is a flap in American English."""
    if _arpabet(segments[index]) not in ("t", "d") or index == 0 or index + 1 == len(segments):
        return False
    before, after = segments[index - 1], segments[index + 1]
    return _arpabet(before) in _VOWELS and before.stressed and _arpabet(after) in _VOWELS and not after.stressed


def timit_labels(segments: Sequence[EngineSegment], voice: str) -> List[List[Tuple[str, float]]]:
    """For each engine segment, its TIMIT labels, each with the fraction of the segment where it ends."""
    labels = []
    for index, segment in enumerate(segments):
        name = _arpabet(segment)
        if name in _PAUSES:
            parts = [("h#" if index in (0, len(segments) - 1) else "pau", 1.0)]
        elif _is_flap(segments, index):
            parts = [("dx", 1.0)]
        elif name in _CLOSURES:
            closure, fraction = _CLOSURES[name]
            parts = [(closure, fraction), (name, 1.0)]
        else:
            parts = [(name, 1.0)]
        for label, _ in parts:
            if label not in TIMIT_LABELS:
                raise ValueError(f"voice {voice} produced phone {name!r}, which has no TIMIT label")
        labels.append(parts)
    return labels


def phone_segments(labels: Sequence[Sequence[Tuple[str, float]]], boundaries: np.ndarray) -> List[Segment]:
    """Contiguous phone segments; pieces that round to no samples vanish, adjacent pauses merge."""
    phones: List[Segment] = []
    for (start, end), parts in zip(zip(boundaries[:-1], boundaries[1:]), labels):
        piece_start = int(start)
        for label, fraction in parts:
            piece_end = int(start + round(fraction * (end - start)))
            if piece_end <= piece_start:
                continue
            if phones and label in _PAUSES and phones[-1].label in _PAUSES:
                merged = "h#" if "h#" in (label, phones[-1].label) else label
                phones[-1] = Segment(merged, phones[-1].start, piece_end)
            else:
                phones.append(Segment(label, piece_start, piece_end))
            piece_start = piece_end
    return phones


def _group_clitics(words: Sequence[EngineWord]) -> List[range]:
    """Engine words grouped into written words: a clitic the engine split off ("it" + "'s") joins its host."""
    groups: List[range] = []
    for index, word in enumerate(words):
        if groups and word.name.startswith("'"):
            groups[-1] = range(groups[-1].start, index + 1)
        else:
            groups.append(range(index, index + 1))
    return groups


def word_segments(
    words: Sequence[EngineWord], segments: Sequence[EngineSegment], boundaries: np.ndarray, text: str
) -> List[Segment]:
    """Word segments on the phone boundaries, spelled as in ``text`` when the engine read as many words.

    Engines drop apostrophes ("dont"), split clitics ("it" + "'s") and rename homographs ("read" -> "red"),
    so the transcript's words are used whenever their number matches; otherwise the engine's own.
    """
    ends = np.array([s.end for s in segments])
    starts = np.concatenate([[0.0], ends[:-1]])
    firsts = [int(np.argmin(np.abs(starts - word.start))) for word in words]
    lasts = [int(np.argmin(np.abs(ends - word.end))) for word in words]
    for index in range(len(words)):
        # Post-lexical rules insert segments that belong to no word (a linking "r" in "number of"):
        # they join the word before them unless a pause intervenes.
        next_first = firsts[index + 1] if index + 1 < len(words) else len(segments)
        while lasts[index] + 1 < next_first and segments[lasts[index] + 1].name not in _PAUSES:
            lasts[index] += 1

    groups = _group_clitics(words)
    names = sentence_words(text)
    if len(names) != len(groups):
        names = ["".join(words[i].name for i in group).lower() for group in groups]
    result = []
    for name, group in zip(names, groups):
        start, end = int(boundaries[firsts[group[0]]]), int(boundaries[lasts[group[-1]] + 1])
        if end > start:
            result.append(Segment(name, start, end))
    return result

