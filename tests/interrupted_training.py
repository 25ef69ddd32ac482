"""Stop a training in the middle, as a crash would, and compare the resumed run with one that was not stopped."""

from contextlib import contextmanager
from typing import Dict, Iterator, List

import pytest

import asrkit.training.train as train_module


class Interrupted(Exception):
    pass


@contextmanager
def stopped_after(checkpoint_name: str) -> Iterator[None]:
    """The training run inside stops (raises, caught here) as soon as it has written ``checkpoint_name``."""
    prune = train_module.prune_checkpoints

    def prune_then_stop(checkpoint_dir, keep):
        prune(checkpoint_dir, keep)
        if (checkpoint_dir / checkpoint_name).exists():
            raise Interrupted(checkpoint_name)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_module, "prune_checkpoints", prune_then_stop)
        with pytest.raises(Interrupted):
            yield


def timeless(history: List[Dict]) -> List[Dict]:
    """A training history without its timings: what an exact resume must reproduce."""
    return [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in history]
