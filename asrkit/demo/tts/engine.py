"""What an engine reports: the records flite and festival both return, and the feature paths both read."""

from dataclasses import dataclass
from typing import List

import numpy as np


@dataclass(frozen=True)
class EngineSegment:
    name: str  # ARPAbet phone without stress digits, or a pause symbol
    end: float  # seconds
    stressed: bool  # the phone's syllable carries lexical stress


@dataclass(frozen=True)
class EngineWord:
    name: str
    start: float
    end: float


@dataclass
class EngineOutput:
    audio: np.ndarray  # int16
    sample_rate: int
    segments: List[EngineSegment]
    words: List[EngineWord]


# Feature paths shared by flite and festival: a segment's syllable stress, a word's first and last phone.
STRESS_PATH = "R:SylStructure.parent.stress"
WORD_START_PATH = "R:SylStructure.daughter1.daughter1.R:Segment.p.end"
WORD_END_PATH = "R:SylStructure.daughtern.daughtern.end"
