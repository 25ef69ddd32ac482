"""Stage 3: the token table (blank + phones) and the phone folding tables, as data files in ``data/lang``.

``tokens.txt`` has one ``symbol id`` per line, Kaldi/icefall style; id 0 is the blank. The folding tables
``phones.60-48.map`` and ``phones.60-39.map`` (``from to`` per line) are written beside it so that every
number a recipe reports can be traced to a file.
"""

import argparse
import logging
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from lhotse import SupervisionSegment

from asrkit.io import atomic_output
from asrkit.phones import fold, folding_map, phone_set

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

    @property
    def blank_id(self) -> int:
        return 0

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


def supervision_phones(supervision: SupervisionSegment, num_phones: int) -> List[str]:
    """The phone sequence of an utterance in the training phone set (60 labels, or folded to 48)."""
    if not supervision.alignment or "phone" not in supervision.alignment:
        raise ValueError(f"utterance {supervision.id} has no phone alignment: training and scoring read the 60 "
                         f"TIMIT phones of a supervision's alignment (manifests imported from a Kaldi data "
                         f"directory have text only)")
    phones = [item.symbol for item in supervision.alignment["phone"]]
    return fold(phones, 60, num_phones) if num_phones != 60 else phones


def prepare_lang(lang_dir: Path, num_phones: int) -> None:
    """Write ``tokens.txt`` for the training phone set and the folding tables into ``lang_dir``."""
    TokenTable([BLANK] + phone_set(num_phones)).save(lang_dir / "tokens.txt")
    for target in (48, 39):
        mapping: Dict[str, str] = folding_map(60, target)
        with atomic_output(lang_dir / f"phones.60-{target}.map") as tmp:
            tmp.write_text("".join(f"{src} {dst}\n" for src, dst in sorted(mapping.items())))
    logging.info(f"{num_phones} phones + blank -> {lang_dir}/tokens.txt; folding tables -> {lang_dir}")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lang-dir", type=Path, required=True)
    parser.add_argument("--phone-set", type=int, choices=[60, 48], default=60, help="training phones (default 60)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [lang] %(message)s")
    prepare_lang(args.lang_dir, args.phone_set)


if __name__ == "__main__":
    main()
