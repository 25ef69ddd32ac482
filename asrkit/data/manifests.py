"""Where a recipe's stage 1 leaves its manifests: ``<prefix>_{recordings,supervisions}_<split>.jsonl.gz``.

The prefix is the recipe's name (or ``asrkit kaldi-import``'s ``--prefix``); stage 2 reads the files by this name.
Kept free of heavy imports: the Snakefile reads it too.
"""

from pathlib import Path
from typing import Tuple, Union

#: the two manifests of a split
MANIFEST_KINDS: Tuple[str, ...] = ("recordings", "supervisions")


def manifest_path(manifest_dir: Union[str, Path], prefix: str, kind: str, split: str) -> Path:
    """The ``kind`` (recordings or supervisions) manifest of a split, e.g.
    ``data/manifests/timit_recordings_dev.jsonl.gz``."""
    if kind not in MANIFEST_KINDS:
        raise ValueError(f"manifest kind {kind!r}: expected one of {MANIFEST_KINDS}")
    return Path(manifest_dir) / f"{prefix}_{kind}_{split}.jsonl.gz"
