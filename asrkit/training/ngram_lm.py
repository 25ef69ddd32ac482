"""Estimate an n-gram token LM from the training transcripts (stage 5), as Kaldi's TIMIT recipe does for its phones.

The tokens are those the models train on (phones of the configured phone set, or sentencepiece pieces), read
from the training cuts as training reads them. Each transcript is ``<s> tokens </s>``. The smoothing is
interpolated Witten-Bell, the default of IRSTLM's ``build-lm.sh``, which Kaldi's TIMIT recipe builds its
bigram with: after a context h seen c(h) times followed by T(h) distinct tokens,

    P(w | h) = (c(h, w) + T(h) P(w | h')) / (c(h) + T(h)),    h' = h without its first token,

down to the unigrams, which interpolate with the uniform distribution over the vocabulary (all tokens of
the token table, </s> and <unk>): a token never seen in training keeps a probability. In ARPA form the
back-off weight of h is T(h) / (c(h) + T(h)), exactly. The ARPA file goes to ``--output``, and beside it
(``.json``) the train and dev perplexities.

Run as ``python -m asrkit.training.ngram_lm --help``; the recipe's Snakemake rule does.
"""

import argparse
import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from asrkit import config
from asrkit.config import NgramLmConfig, UnitsConfig
from asrkit.data.arpa import BOS, EOS, NEVER, UNK, ArpaLm, NGram, write_arpa
from asrkit.data.lang import BLANK, TokenTable
from asrkit.data.units import load_units
from asrkit.io import atomic_output
from asrkit.training.phone_lm import token_sequences


def witten_bell(sentences: Sequence[Sequence[str]], vocabulary: Sequence[str], order: int) -> ArpaLm:
    """The interpolated Witten-Bell LM of ``order`` over ``vocabulary`` (the words it may predict besides </s>
    and <unk>), estimated from ``sentences``. A sentence word outside the vocabulary is a ValueError."""
    if order < 1:
        raise ValueError(f"n-gram order must be at least 1, got {order}")
    words = list(dict.fromkeys([*vocabulary, EOS, UNK]))
    known = set(words)
    counts: Counter = Counter()  # every n-gram of orders 1..order that ends in a predicted word
    for sentence in sentences:
        unknown = [w for w in sentence if w not in known]
        if unknown:
            raise ValueError(f"transcript word {unknown[0]!r} is not in the LM's vocabulary")
        padded = [BOS, *sentence, EOS]
        for end in range(1, len(padded)):
            for n in range(1, order + 1):
                if end - n + 1 >= 0:
                    counts[tuple(padded[end - n + 1:end + 1])] += 1
    history_counts: Counter = Counter()  # c(h): how often h is followed by a word
    history_types: Counter = Counter()  # T(h): by how many distinct words
    for ngram, count in counts.items():
        history_counts[ngram[:-1]] += count
        history_types[ngram[:-1]] += 1

    memo: Dict[NGram, float] = {}

    def prob(history: NGram, word: str) -> float:
        """P(word | history) of the interpolated model (history shorter than ``order``)."""
        key = history + (word,)
        if key not in memo:
            lower = prob(history[1:], word) if history else 1.0 / len(words)
            seen, types = history_counts[history], history_types[history]
            memo[key] = (counts[key] + types * lower) / (seen + types) if seen else lower
        return memo[key]

    entries: Dict[NGram, Tuple[float, float]] = {(w,): (math.log10(prob((), w)), 0.0) for w in words}
    entries[(BOS,)] = (NEVER, 0.0)
    for ngram in counts:
        if len(ngram) > 1:
            entries[ngram] = (math.log10(prob(ngram[:-1], ngram[-1])), 0.0)
    for history, seen in history_counts.items():
        if history and len(history) < order:
            types = history_types[history]
            entries[history] = (entries[history][0], math.log10(types / (seen + types)))
    return ArpaLm(order, entries)


def transcripts(cuts_path: Path, tokens: TokenTable, units_config: UnitsConfig, lang_dir: Path) -> List[List[str]]:
    """The token symbols of every utterance of a cut manifest, as training reads them."""
    units = load_units(units_config, lang_dir)
    return [tokens.decode(ids.tolist()) for ids in token_sequences(cuts_path, tokens, units)]


def estimate(train_cuts: Path, dev_cuts: Path, tokens_path: Path, units_config: UnitsConfig, lm: NgramLmConfig,
             output: Path) -> Dict[str, float]:
    """Write the n-gram LM of the training transcripts to ``output`` (ARPA) and its perplexities to ``.json``."""
    tokens = TokenTable.load(tokens_path)
    train = transcripts(train_cuts, tokens, units_config, tokens_path.parent)
    dev = transcripts(dev_cuts, tokens, units_config, tokens_path.parent)
    arpa = witten_bell(train, [s for s in tokens.symbols if s != BLANK], lm.order)
    write_arpa(arpa, output)
    report = {"order": lm.order, "smoothing": "interpolated Witten-Bell", "train_transcripts": len(train),
              "train_tokens": sum(map(len, train)),
              "ngrams": {n: sum(len(g) == n for g in arpa.entries) for n in range(1, lm.order + 1)},
              "train_perplexity": arpa.perplexity(train), "dev_perplexity": arpa.perplexity(dev)}
    with atomic_output(output.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(report, indent=1))
    logging.info(f"{lm.order}-gram token LM of {report['train_transcripts']} training transcripts "
                 f"({report['train_tokens']} tokens): train perplexity {report['train_perplexity']:.2f}, "
                 f"dev perplexity {report['dev_perplexity']:.2f} -> {output}")
    return report


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-cuts", type=Path, required=True)
    parser.add_argument("--dev-cuts", type=Path, required=True, help="for the dev perplexity")
    parser.add_argument("--tokens", type=Path, required=True, help="data/lang/tokens.txt (its folder: the units)")
    parser.add_argument("--output", type=Path, required=True, help="the ARPA file to write")
    config.add_flags(parser, UnitsConfig)
    config.add_flags(parser, NgramLmConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [ngram_lm] %(message)s")
    estimate(args.train_cuts, args.dev_cuts, args.tokens, config.from_flags(args, UnitsConfig),
             config.from_flags(args, NgramLmConfig), args.output)


if __name__ == "__main__":
    main()
