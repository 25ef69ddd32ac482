"""Several training processes, as torchrun starts them: who am I, and what the processes share.

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each process's environment; without them the process is
alone (rank 0 of 1) and every collective below is a no-op, so that single-process training runs the same code.
Process groups use gloo on the CPU and nccl on CUDA GPUs.
"""

import os
from dataclasses import dataclass
from typing import Any, List

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0  # the rank on this machine: which GPU to use

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, the model, the history, TensorBoard logs and progress."""
        return self.rank == 0

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` (picklable), in every process."""
        if self.world_size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, value: Any) -> List[Any]:
        """Every process's ``value`` (picklable), in rank order, in every process."""
        if self.world_size == 1:
            return [value]
        values: List[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """The element-wise sum over the processes of a CPU tensor (a copy: the argument is left as it was)."""
        if self.world_size == 1:
            return values
        total = values.clone()
        if dist.get_backend() == "nccl":  # nccl reduces GPU tensors only
            total = total.cuda()
        dist.all_reduce(total)
        return total.cpu()


def start_process_group(device: torch.device) -> ProcessGroup:
    """Join the other processes that torchrun started (gloo on the CPU, nccl on GPUs), or be alone."""
    if "WORLD_SIZE" not in os.environ:  # not started by torchrun; under torchrun even 1 process joins a group
        return ProcessGroup()
    world_size = int(os.environ["WORLD_SIZE"])
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return ProcessGroup(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def end_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
