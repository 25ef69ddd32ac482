"""The one place that chooses the RNN-T loss implementation: k2 if it imports, else fast_rnnt.

fast_rnnt is k2's RNN-T code split out by the same authors, with the same function names and arguments, so
the rest of asrkit imports the losses from here and never names either package. k2 cannot be installed on
the CPU machines this project runs on (its registry wheels need torch 1.12/1.13 with CUDA 11.7), so there
``BACKEND == "fast_rnnt"``.

Shapes, with B utterances, T frames, S labels, C classes and boundary rows ``[0, 0, S_b, T_b]`` (int64):
  - ``rnnt_loss(logits (B, T, S+1, C), symbols (B, S), termination_symbol, boundary (B, 4), ...)``
  - ``rnnt_loss_smoothed(lm (B, S+1, C), am (B, T, C), symbols, termination_symbol, lm_only_scale,
    am_only_scale, boundary, ..., return_grad)`` -> loss, or ``(loss, (px_grad (B, S, T+1), py_grad (B, S+1, T)))``
  - ``get_rnnt_prune_ranges(px_grad, py_grad, boundary, s_range)`` -> ranges (B, T, s_range)
  - ``do_rnnt_pruning(am (B, T, J), lm (B, S+1, J), ranges)`` -> am, lm pruned, (B, T, s_range, J) each
  - ``rnnt_loss_pruned(logits (B, T, s_range, C), symbols, ranges, termination_symbol, boundary, ...)``
"""

import torch

try:
    import k2 as _backend

    BACKEND: str = "k2"
except ImportError:  # k2 0.3.0 from the registry also fails here (``No module named '_k2'``)
    import fast_rnnt as _backend

    BACKEND = "fast_rnnt"

rnnt_loss = _backend.rnnt_loss
rnnt_loss_smoothed = _backend.rnnt_loss_smoothed
get_rnnt_prune_ranges = _backend.get_rnnt_prune_ranges
do_rnnt_pruning = _backend.do_rnnt_pruning
rnnt_loss_pruned = _backend.rnnt_loss_pruned



def backend_has_cuda() -> bool:
    """Whether the backend was built with CUDA kernels (both packages can be built without them, and then
    reject CUDA tensors, fast_rnnt with "Failed to find native CUDA module")."""
    with_cuda = _backend.with_cuda  # fast_rnnt: a function; k2: a bool
    return bool(with_cuda() if callable(with_cuda) else with_cuda)


def check_device(device: torch.device) -> None:
    """Stop, before any training, when the RNN-T losses cannot run on ``device`` (a CPU-only build on CUDA)."""
    if device.type == "cuda" and not backend_has_cuda():
        raise RuntimeError(
            f"the transducer would train on {device}, but {BACKEND} {getattr(_backend, '__version__', '')} (at "
            f"{_backend.__file__}) was built without CUDA, so its RNN-T loss rejects GPU tensors. Reinstall it with "
            f"CUDA: rerun local/install.sh where nvcc (same CUDA major version as torch {torch.version.cuda}) is on "
            f"PATH and a GPU is visible, or with ASRKIT_CUDA_ARCHS set to the GPU's compute capability (e.g. 90); "
            f"or set device: cpu")


__all__ = ["BACKEND", "backend_has_cuda", "check_device", "rnnt_loss", "rnnt_loss_smoothed", "get_rnnt_prune_ranges", "do_rnnt_pruning",
           "rnnt_loss_pruned"]
