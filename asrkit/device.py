"""Where the tensors live: ``auto`` (a CUDA GPU when there is one, else the CPU), ``cpu`` or ``cuda``."""

import torch

#: the values of the config's ``device`` key and of every command's ``--device``
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for ``name``; a CUDA device is the process's own GPU (``local_rank`` under torchrun)."""
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device {name!r}: expected one of {DEVICE_CHOICES}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("device 'cuda': torch finds no CUDA GPU here (use device: auto or cpu)")
    if local_rank >= torch.cuda.device_count():
        # two processes on one GPU: nccl stops them later with an error that does not say so
        raise ValueError(f"device 'cuda': this is training process {local_rank} on this machine (LOCAL_RANK), "
                         f"and torch sees {torch.cuda.device_count()} GPU(s): one process per GPU (lower "
                         f"training.num_processes to at most {torch.cuda.device_count()}, or check CUDA_VISIBLE_DEVICES)")
    return torch.device("cuda", local_rank)
