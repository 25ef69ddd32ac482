"""Atomic file output: a stage's artifact either exists complete or not at all."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]


@contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    Works for files and directories. The temporary name is hidden and says ``partial`` (``.cuts.1234.partial
    .jsonl.gz`` for ``cuts.jsonl.gz``), so an interrupted run never leaves anything that a later stage could
    mistake for a finished artifact; it keeps the suffixes, which libraries such as lhotse read the format from.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, dot, suffixes = path.name.partition(".")
    tmp = path.with_name(f".{stem}.{os.getpid()}.partial{dot}{suffixes}")
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            _remove(path)  # rename() cannot replace a non-empty directory
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
