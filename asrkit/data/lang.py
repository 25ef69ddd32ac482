"""Stage 3, units: the token table and what the units need beside it, as data files in ``data/lang``.

``tokens.txt`` has one ``symbol id`` per line, Kaldi/icefall style; id 0 is the blank. Phones (TIMIT): blank
+ the training phones, and the folding tables of TIMIT's 61 labels, ``phones.61-48.map`` and
``phones.61-39.map`` (``from to`` per line; ``q`` alone on its line: deleted, as in Kaldi's map), so that
every number a recipe reports can be traced to a file. Sentencepiece: ``bpe.model`` trained on
the training transcripts (model type and vocabulary size from the config's ``units``), its pieces as tokens.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from lhotse import SupervisionSet

from asrkit import config
from asrkit.config import UnitsConfig
from asrkit.io import atomic_output
from asrkit.data.phones import CORPUS_PHONES, folding_map, phone_set
from asrkit.data.units import SENTENCEPIECE_MODEL, SentencePieceUnits, train_sentencepiece

BLANK = "<blk>"


class TokenTable:
    """Bidirectional map between symbols and integer ids; id 0 is the blank."""

    def __init__(self, symbols: List[str]):
        if symbols[0] != BLANK:
            raise ValueError(f"the first token must be the blank {BLANK!r}, got {symbols[0]!r}")
        self.symbols = list(symbols)
        self.ids = {s: i for i, s in enumerate(symbols)}

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, symbols: Iterable[str], context: str = "") -> List[int]:
        try:
            return [self.ids[s] for s in symbols]
        except KeyError as e:
            raise ValueError(f"{context}: symbol {e.args[0]!r} is not in the token table") from None

    def decode(self, ids: Iterable[int]) -> List[str]:
        return [self.symbols[i] for i in ids]

    @staticmethod
    def load(path: Path) -> "TokenTable":
        entries = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
        symbols = [s for s, _ in sorted(entries, key=lambda e: int(e[1]))]
        return TokenTable(symbols)

    def save(self, path: Path) -> None:
        with atomic_output(path) as tmp:
            tmp.write_text("".join(f"{s} {i}\n" for i, s in enumerate(self.symbols)))


def prepare_phones(lang_dir: Path, num_phones: int) -> None:
    """Write ``tokens.txt`` for the training phone set and the folding tables into ``lang_dir``."""
    TokenTable([BLANK] + phone_set(num_phones)).save(lang_dir / "tokens.txt")
    for target in (48, 39):
        mapping: Dict[str, Optional[str]] = folding_map(CORPUS_PHONES, target)
        with atomic_output(lang_dir / f"phones.{CORPUS_PHONES}-{target}.map") as tmp:
            tmp.write_text("".join(f"{src} {dst}\n" if dst is not None else f"{src}\n"  # q: deleted
                                   for src, dst in sorted(mapping.items())))
    logging.info(f"{num_phones} phones + blank -> {lang_dir}/tokens.txt; folding tables -> {lang_dir}")


def prepare_sentencepiece(lang_dir: Path, units: UnitsConfig, train_supervisions: Path) -> None:
    """Train sentencepiece on the training transcripts; write ``bpe.model`` and its pieces as ``tokens.txt``."""
    texts = [s.text for s in SupervisionSet.from_file(train_supervisions)]
    model = train_sentencepiece(texts, units.model_type, units.vocab_size, BLANK)
    with atomic_output(lang_dir / SENTENCEPIECE_MODEL) as tmp:
        tmp.write_bytes(model)
    processor = SentencePieceUnits(model).processor
    TokenTable([processor.id_to_piece(i) for i in range(processor.get_piece_size())]).save(lang_dir / "tokens.txt")
    logging.info(f"{processor.get_piece_size()} tokens (blank, unk and {units.model_type} pieces; "
                 f"{units.vocab_size} asked for) from {train_supervisions} -> {lang_dir}/{SENTENCEPIECE_MODEL}, "
                 f"{lang_dir}/tokens.txt")


def prepare_lang(lang_dir: Path, units: UnitsConfig, train_supervisions: Optional[Path] = None) -> None:
    """Stage 3 for the config's ``units`` section; sentencepiece is trained on ``train_supervisions``."""
    if units.type == "phones":
        prepare_phones(lang_dir, units.phone_set)
    elif train_supervisions is None:
        raise ValueError("sentencepiece units are trained on the training supervisions: pass them")
    else:
        prepare_sentencepiece(lang_dir, units, train_supervisions)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang-dir", type=Path, required=True)
    config.add_flags(parser, UnitsConfig)
    parser.add_argument("--train-supervisions", type=Path, help="training transcripts (sentencepiece units)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [lang] %(message)s")
    prepare_lang(args.lang_dir, config.from_flags(args, UnitsConfig), args.train_supervisions)


if __name__ == "__main__":
    main()
