"""ARPA back-off n-gram language models: read, write, and score them as kenlm, SRILM and Kaldi's ``arpa2fst`` do.

An ARPA file lists, per order, n-grams with their log10 probability and (below the highest order) the log10
back-off weight of the n-gram as a context. The probability of word w after context h is that of the longest
listed n-gram ``suffix of h + w``, plus the back-off weights of the longer suffixes of h that were passed over.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Sequence, Tuple

from asrkit.io import atomic_output

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
#: the log10 probability ARPA files give <s>, which is never predicted (SRILM's and kenlm's convention)
NEVER = -99.0

NGram = Tuple[str, ...]


@dataclass(frozen=True)
class ArpaLm:
    """A back-off n-gram LM: ``entries`` maps each listed n-gram to (log10 probability, log10 back-off weight)."""

    order: int
    entries: Dict[NGram, Tuple[float, float]]

    def log10_prob(self, context: Sequence[str], word: str) -> float:
        """log10 P(word | context), backing off to shorter contexts; a word outside the vocabulary is <unk>."""
        if (word,) not in self.entries:
            word = UNK
            if (UNK,) not in self.entries:
                raise KeyError(f"{word!r} is not in the LM's vocabulary, which has no {UNK}")
        context = tuple(context)[-(self.order - 1):] if self.order > 1 else ()
        backoff = 0.0
        for start in range(len(context) + 1):
            history = context[start:]
            entry = self.entries.get(history + (word,))
            if entry is not None:
                return backoff + entry[0]
            history_entry = self.entries.get(history)
            backoff += history_entry[1] if history_entry is not None else 0.0
        raise AssertionError("unreachable: the unigram of the word is listed")

    def sentence_log10_prob(self, words: Sequence[str]) -> float:
        """log10 P(words, </s> | <s>): the sum over the words and the end of the sentence."""
        padded = [BOS, *words, EOS]
        return sum(self.log10_prob(padded[max(0, i - self.order + 1):i], padded[i]) for i in range(1, len(padded)))

    def perplexity(self, sentences: Sequence[Sequence[str]]) -> float:
        """10 ** (-log10 probability per predicted word), the end of each sentence counted as a word."""
        count = sum(len(words) + 1 for words in sentences)
        return 10 ** (-sum(self.sentence_log10_prob(words) for words in sentences) / count)


def write_arpa(lm: ArpaLm, path: Path) -> None:
    """Write ``lm`` as an ARPA file (n-grams in sorted order per order; no back-off column at the highest order)."""
    by_order: Dict[int, list] = {n: [] for n in range(1, lm.order + 1)}
    for ngram in sorted(lm.entries):
        by_order[len(ngram)].append(ngram)
    lines = ["", "\\data\\"] + [f"ngram {n}={len(by_order[n])}" for n in by_order]
    for n, ngrams in by_order.items():
        lines += ["", f"\\{n}-grams:"]
        for ngram in ngrams:
            log_prob, backoff = lm.entries[ngram]
            line = f"{log_prob:.7f}\t{' '.join(ngram)}"
            lines.append(line + f"\t{backoff:.7f}" if n < lm.order else line)
    lines += ["", "\\end\\", ""]
    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))


def read_arpa(path: Path) -> ArpaLm:
    """Read an ARPA file; a ValueError names the file and line that do not parse."""
    counts: Dict[int, int] = {}
    entries: Dict[NGram, Tuple[float, float]] = {}
    section = None  # "data", an order, or None before \data\ and after \end\
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line == "\\data\\":
            section = "data"
        elif line == "\\end\\":
            section = None
        elif line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1:-len("-grams:")])
        elif section == "data" and line.startswith("ngram "):
            order, _, count = line[len("ngram "):].partition("=")
            counts[int(order)] = int(count)
        elif isinstance(section, int):
            fields = line.split()
            if len(fields) not in (section + 1, section + 2):
                raise ValueError(f"{path}:{number}: a {section}-gram line needs a log10 probability, {section} "
                                 f"words and an optional back-off weight, got {line!r}")
            backoff = float(fields[section + 1]) if len(fields) == section + 2 else 0.0
            entries[tuple(fields[1:section + 1])] = (float(fields[0]), backoff)
    if not counts:
        raise ValueError(f"{path}: no \\data\\ section: not an ARPA file")
    for order, count in counts.items():
        found = sum(len(ngram) == order for ngram in entries)
        if found != count:
            raise ValueError(f"{path}: \\data\\ announces {count} {order}-grams, the file lists {found}")
    return ArpaLm(max(counts), entries)

