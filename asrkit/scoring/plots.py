"""PNG plots of training curves and confusion matrices.

Figures are built with matplotlib's object API and rendered by Agg, never through pyplot, so plotting needs no
display and leaves no global figure state behind in long-running training processes.
"""

from pathlib import Path
from typing import List, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import PowerNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from asrkit.io import atomic_output
from asrkit.scoring.error_rates import DELETION, INSERTION

PathLike = Union[str, Path]
DPI = 120


def plot_training_curves(history: List[dict], path: PathLike) -> None:
    """Two panels against epoch: train and dev loss, and the dev error rate; epochs lacking a value are skipped.

    history: one dict per epoch with keys "epoch" (int) and, each optional or None, "train_loss",
    "dev_loss", "dev_error_rate" (percent) and "dev_metric" (its name, e.g. "PER" or "WER").
    """
    if not history:
        raise ValueError("no epochs to plot")
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)
    loss_axes, per_axes = figure.subplots(1, 2)
    for key, label in (("train_loss", "train"), ("dev_loss", "dev")):
        epochs, values = _series(history, key)
        if epochs:
            loss_axes.plot(epochs, values, marker="o", markersize=3, label=label)
    loss_axes.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    if loss_axes.lines:
        loss_axes.legend()
    epochs, values = _series(history, "dev_error_rate")
    metric = next((entry["dev_metric"] for entry in history if entry.get("dev_metric")), "error rate")
    per_title = f"Dev {metric} per epoch"
    if epochs:
        per_axes.plot(epochs, values, marker="o", markersize=3, color="tab:green")
        best = int(np.argmin(values))
        per_title += f" (best {values[best]:.2f} at epoch {epochs[best]})"
    per_axes.set(xlabel="epoch", ylabel=f"{metric} (%)", title=per_title)
    for axes in (loss_axes, per_axes):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.grid(alpha=0.3)
    _save(figure, path)


def plot_confusion_matrix(matrix: np.ndarray, labels: Sequence[str], path: PathLike, title: str) -> None:
    """Heat map of a confusion matrix, each row normalised to sum to 1.

    matrix: (L + 1, L + 1) counts as returned by :func:`asrkit.scoring.error_rates.confusion_matrix` for the L ``labels``:
    rows are ref labels then insertions, columns hyp labels then deletions.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    size = len(labels) + 1
    if matrix.shape != (size, size):
        raise ValueError(f"matrix must be ({size}, {size}) for {len(labels)} labels, got {matrix.shape}")
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)

    side = max(6.0, 0.22 * size + 2.0)  # about 0.22 inch per label keeps 7-point labels apart
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    # A square-root colour scale keeps the few-percent confusions visible beside a dominant diagonal.
    image = axes.imshow(normalised, cmap="Blues", norm=PowerNorm(0.5, vmin=0.0, vmax=1.0), interpolation="nearest")
    figure.colorbar(image, ax=axes, shrink=0.8, label="fraction of row")
    ticks = np.arange(size)
    axes.set_xticks(ticks, list(labels) + [DELETION], rotation=90, fontsize=7)
    axes.set_yticks(ticks, list(labels) + [INSERTION], fontsize=7)
    axes.set(xlabel="hypothesis", ylabel="reference", title=title)
    # Separate the deletion column and insertion row from the label-to-label block.
    axes.axhline(size - 1.5, color="gray", linewidth=0.8)
    axes.axvline(size - 1.5, color="gray", linewidth=0.8)
    _save(figure, path)


def _series(history: List[dict], key: str) -> Tuple[List[int], List[float]]:
    """The (epochs, values) of ``key`` over the epochs where it is present and not None."""
    points = [(entry["epoch"], entry[key]) for entry in history if entry.get(key) is not None]
    return [epoch for epoch, _ in points], [value for _, value in points]


def _save(figure: Figure, path: PathLike) -> None:
    with atomic_output(path) as tmp:
        # Explicit format: matplotlib would otherwise infer it from the temporary file's name.
        figure.savefig(tmp, format="png", dpi=DPI)
