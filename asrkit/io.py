"""Atomic file output (a stage's artifact either exists complete or not at all), and files' SHA-256."""

import errno
import hashlib
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]
#: what a write gets from a full disk, a full quota, or the process's file size limit
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class DiskFullError(OSError):
    """A write that ran out of space, naming the file it was writing (``filename``); errno and strerror are the
    system's."""

    def __str__(self) -> str:
        return f"no space left on device while writing {self.filename} ({self.strerror})"


@contextmanager
def atomic_output(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``, on error delete it.

    Works for files and directories. The temporary name is hidden and says ``partial`` (``.cuts.1234.partial
    .jsonl.gz`` for ``cuts.jsonl.gz``), so an interrupted run never leaves anything that a later stage could
    mistake for a finished artifact; it keeps the suffixes, which libraries such as lhotse read the format from.
    A killed writer cannot delete its temporary: the next writer of ``path`` does, once that process is gone
    (process ids are this machine's: two machines must not write the same output at once).
    An existing directory is moved aside before the new one takes its place, never deleted first, so that a
    failure at that point cannot lose it. A write into a full disk raises :class:`DiskFullError` naming ``path``,
    and the temporary is deleted, giving its space back.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stem, dot, suffixes = path.name.partition(".")
    tmp = path.with_name(f".{stem}.{os.getpid()}.partial{dot}{suffixes}")
    remove_leftovers(path)
    _remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():  # rename() cannot replace a non-empty directory
            aside = path.with_name(f".{stem}.{os.getpid()}.replaced.partial{dot}{suffixes}")
            _remove(aside)
            os.replace(path, aside)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(aside, path)
                raise
            _remove(aside)
        else:
            os.replace(tmp, path)
    except OSError as e:
        if e.errno in DISK_FULL and not isinstance(e, DiskFullError):
            raise DiskFullError(e.errno, e.strerror, str(path)) from e
        raise
    finally:
        _remove(tmp)


def remove_leftovers(path: PathLike) -> None:
    """Delete the temporaries of ``path`` that writers which no longer run (killed, crashed) left behind."""
    path = Path(path)
    stem, dot, suffixes = path.name.partition(".")
    pattern = re.compile(rf"\.{re.escape(stem)}\.(\d+)\.(?:replaced\.)?partial{re.escape(dot + suffixes)}")
    if not path.parent.is_dir():
        return
    for leftover in path.parent.iterdir():
        match = pattern.fullmatch(leftover.name)
        if match and not _running(int(match.group(1))):
            _remove(leftover)


def _running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (a killed process nobody has reaped yet)."""
    if pid == os.getpid():
        return False  # our own temporaries are never in use when a new write starts
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (not Linux): it exists


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
