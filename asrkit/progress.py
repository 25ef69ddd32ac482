"""Progress bars that stay readable in log files."""

import sys
from typing import Iterable, TypeVar

from tqdm import tqdm

T = TypeVar("T")

#: seconds between progress updates when stderr is a file (a Snakemake log) rather than a terminal
LOG_FILE_INTERVAL = 30.0


def progress_bar(iterable: Iterable[T], desc: str, unit: str, **kwargs) -> tqdm:
    """tqdm on a terminal; in a log file the same bar, refreshed every ``LOG_FILE_INTERVAL`` seconds."""
    interval = 0.1 if sys.stderr.isatty() else LOG_FILE_INTERVAL
    return tqdm(iterable, desc=desc, unit=unit, mininterval=interval, **kwargs)
