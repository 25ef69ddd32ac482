"""The files a training resumes from: its newest checkpoint of the same options, the RNG states in it, best.pt
(which the paper's restart loads), and the pruning of old checkpoints."""

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Optional

import torch

from asrkit.checkpoint import is_end_of_epoch, load_checkpoint, training_checkpoints


def latest_checkpoint(checkpoint_dir: Path, digest: str) -> Optional[Path]:
    """The newest readable checkpoint made with these options, or None to train afresh.

    A checkpoint that cannot be read (cut short by a full disk or a bad copy) is set aside as
    ``<name>.damaged``, with a warning naming it, and the next older one is tried: a resume from an earlier
    checkpoint only repeats some training, a stop would need the file deleted by hand. When the newest readable
    checkpoint was made with other options, all of them are deleted (nothing resumes from them, and a copy kept
    aside would take the space a long training may run short of). Half-written checkpoints of a killed run
    (hidden ``.partial`` files) are never read, only deleted.
    """
    for leftover in checkpoint_dir.glob(".*.partial*"):
        leftover.unlink()
    for path in reversed(training_checkpoints(checkpoint_dir)):
        try:
            options_digest = load_checkpoint(path).get("options_digest")
        except ValueError as e:
            damaged = path.with_name(f"{path.name}.damaged")
            path.replace(damaged)
            logging.warning(f"{e}\n{path} is damaged: set aside as {damaged}; resuming from an older checkpoint "
                            f"if there is one")
            continue
        if options_digest != digest:
            logging.warning(f"checkpoints in {checkpoint_dir} were made with other options: deleted")
            shutil.rmtree(checkpoint_dir)
            return None
        return path
    return None


def prune_checkpoints(checkpoint_dir: Path, keep: int) -> None:
    """Keep the last ``keep`` end-of-epoch checkpoints (for averaging) and the newest mid-epoch one."""
    epochs = training_checkpoints(checkpoint_dir)
    ends = [p for p in epochs if is_end_of_epoch(p)]
    inside = [p for p in epochs if not is_end_of_epoch(p)]
    newest = epochs[-1]
    for old in ends[:-keep] + [p for p in inside if p != newest]:
        old.unlink()


def set_aside_foreign_best(best_path: Path, digest: str, resuming: bool) -> None:
    """Move aside a best.pt that this run did not write: any, on a fresh start, or one of other options.

    best.pt is no Snakemake output and outlives the checkpoints set aside by :func:`latest_checkpoint`; a
    noise phase restarting from another run's model would train the wrong model, or fail on its shapes.
    """
    if not best_path.exists():
        return
    if resuming and load_checkpoint(best_path).get("options_digest") == digest:
        return
    stale = best_path.with_name(f"best.stale-{int(time.time())}.pt")
    logging.warning(f"{best_path} is not this run's ({'other options' if resuming else 'no checkpoint of this run'}): "
                    f"moved to {stale}")
    shutil.move(str(best_path), str(stale))


def load_best(best_path: Path, digest: str) -> Dict[str, Any]:
    """This run's best.pt (its weights under ``model``, its ``epoch``); refuses one of other options."""
    if not best_path.exists():
        raise ValueError(f"{best_path} is missing (removed, or set aside as not this run's): the noise phase "
                         f"restarts from it; remove {best_path.parent / 'checkpoints'} to train afresh")
    best = load_checkpoint(best_path)
    if best.get("options_digest") != digest:
        raise ValueError(f"{best_path} was written with other options (digest {best.get('options_digest')}, "
                         f"this run's {digest}): refusing to restart from it")
    return best


def rng_state(device: torch.device) -> Dict[str, torch.Tensor]:
    """The state of the global RNGs that dropout draws from (the CPU's, and the GPU's on CUDA)."""
    return {"cpu": torch.get_rng_state(), **({"cuda": torch.cuda.get_rng_state(device)} if device.type == "cuda" else {})}


def set_rng_state(state: Dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore :func:`rng_state`'s states. A checkpoint written on the CPU resumed on a GPU has no CUDA state:
    the GPU's RNG is seeded from the CPU's restored one, so the resumed run is still reproducible."""
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda":
        if "cuda" in state:
            torch.cuda.set_rng_state(state["cuda"], device)
        else:
            torch.cuda.manual_seed(int(torch.randint(2 ** 62, (1,)).item()))
            logging.info("the checkpoint was written without a GPU: the GPU's RNG (dropout) is seeded afresh")
