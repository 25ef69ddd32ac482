"""Input sensitivity of a trained model, drawn as in Graves, Mohamed & Hinton 2013, Fig. 4.

For a token p (a phone, or a sentencepiece piece) that the model emits in an utterance (greedy search; its first occurrence), the figure shows
d log P(p at the emitting frame) / d input, computed by autograd, with respect to the static features (log
mel filterbank and energy, or MFCC, before deltas and normalisation: each static value reaches the network
also through the deltas of the frames around it, and the gradient sums all of these paths). For CTC the
output is the network's log-softmax at that frame; for a transducer it is the joiner's log-softmax at that
frame given the prediction network's state on the greedy path there (which depends on the emitted labels
only, not on the input).

Panels, on one time axis: the static features; the sensitivity (diverging colours centred at 0); the
reference phone segmentation when the cut has a phone alignment; the model's per-frame output
probabilities along the greedy path for blank and the emitted phones. Dashed lines bound the emitting frame.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch
from lhotse import CutSet
from lhotse.cut import Cut
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from asrkit.io import atomic_output
from asrkit.data.lang import BLANK
from asrkit.inference.transcribe import FRAME_SHIFT, AudioInput, Transcriber
from asrkit.model.interface import GreedyPath
from asrkit.search.searches import greedy_path

PathLike = Union[str, Path]
DPI = 120
#: (phone, start, end) in seconds from the start of the utterance
Segment = Tuple[str, float, float]


@dataclass
class Sensitivity:
    """d log P(phone at frame) / d static features of one utterance.

    frame: the encoder frame at which the model first emits the phone; time: its start in seconds.
    gradient: (T, D) over the static feature frames. path: the greedy path the phone was found on, and
    emitted: the phones on it.
    """

    source: str
    phone: str
    frame: int
    time: float
    gradient: torch.Tensor
    path: GreedyPath
    emitted: List[str]


def input_sensitivity(transcriber: Transcriber, static: torch.Tensor, phone: Optional[str], source: str
                      ) -> Sensitivity:
    """The sensitivity of the model's output ``phone`` where it first emits it. static: (T, D) features.

    Without a phone, the first token emitted that is not silence or a closure (all fold to 39-phone "sil").
    """
    model = transcriber.model
    path = greedy_path(model, transcriber.network_input(static))
    if phone is None:
        emitted = transcriber.tokens.decode(path.tokens)
        speech = [p for p in emitted if not transcriber.units.is_silence(p)]
        if not speech:
            raise ValueError(f"{source}: the model emits no token other than silence ({' '.join(emitted) or 'nothing'})")
        phone = speech[0]
    token = transcriber.tokens.ids.get(phone)
    if token is None or phone == BLANK:
        raise ValueError(f"unknown token {phone!r}: the model's tokens are "
                         f"{' '.join(transcriber.tokens.symbols[1:])}")
    if token not in path.tokens:
        emitted = " ".join(transcriber.tokens.decode(path.tokens)) or "nothing"
        raise ValueError(f"{source}: the model never emits {phone!r} on its greedy path (greedy output: {emitted})")
    frame = path.frames[path.tokens.index(token)]

    static = static.detach().clone().requires_grad_(True)
    # cuDNN's RNN has no backward in eval mode ("cudnn RNN backward can only be called in training mode"), and
    # training mode would switch dropout on: the gradient goes through torch's own RNN kernels instead.
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        log_prob = model.path_log_probs(transcriber.network_input(static), path)[frame, token]
        gradient, = torch.autograd.grad(log_prob, static)
    return Sensitivity(source, phone, frame, round(frame * transcriber.frame_shift, 3), gradient, path,
                       transcriber.tokens.decode(path.tokens))


def first_cut_with_speech(transcriber: Transcriber, cuts: PathLike) -> str:
    """The id of the first cut on which the model emits a phone other than silence (a weak model may emit
    only silence on some utterances; the figure needs a phone)."""
    for cut in CutSet.from_file(cuts):
        path = greedy_path(transcriber.model, transcriber.network_input(torch.from_numpy(cut.load_features())))
        if any(not transcriber.units.is_silence(p) for p in transcriber.tokens.decode(path.tokens)):
            return cut.id
    raise ValueError(f"{cuts}: the model emits nothing but silence on every utterance")


def load_cut(cuts: PathLike, utt: str, static_dim: int) -> Tuple[torch.Tensor, List[Segment]]:
    """The stored static features (T, D) of cut ``utt`` and its reference phone segments (none without a
    phone alignment)."""
    cut_set = CutSet.from_file(cuts)
    cut: Optional[Cut] = next((c for c in cut_set if c.id == utt), None)
    if cut is None:
        raise ValueError(f"{cuts}: no cut {utt!r}")
    if not cut.has_features:
        raise ValueError(f"{cuts}: cut {utt} has no features (use the manifest of the feature stage)")
    try:
        static = torch.from_numpy(cut.load_features())
    except (OSError, ValueError) as e:
        raise ValueError(f"{cuts}: cannot load the features of {utt} ({e}); relative feature paths are read "
                         f"from the current directory, the recipe's") from None
    if static.size(1) != static_dim:
        raise ValueError(f"{cuts}: cut {utt} has {static.size(1)}-dimensional features; the model was trained "
                         f"on {static_dim}")
    segments = [(item.symbol, item.start, item.end) for s in cut.supervisions
                if s.alignment and "phone" in s.alignment for item in s.alignment["phone"]]
    return static, segments


def plot_sensitivity(model: PathLike, phone: Optional[str], output: PathLike, *, audio: Optional[AudioInput] = None,
                     cuts: Optional[PathLike] = None, utt: Optional[str] = None, device: str = "auto") -> Sensitivity:
    """Draw the input sensitivity of ``phone`` in an utterance to the PNG ``output`` (written atomically).

    The utterance is either ``audio`` (a file or a (samples, rate) pair; no reference segmentation) or cut
    ``utt`` of the manifest ``cuts`` (its stored features, and its phone alignment if it has one). device: auto,
    cpu or cuda (see asrkit.device).
    """
    if (audio is None) == (cuts is None) or (utt is not None and cuts is None):
        raise ValueError("give either audio, or cuts (and optionally utt)")
    transcriber = Transcriber(model, device=device)
    if audio is not None:
        samples, source = transcriber.load_audio(audio)
        static, segments = transcriber.static_features(samples, source), []
    else:
        utt = utt if utt is not None else first_cut_with_speech(transcriber, cuts)
        static, segments = load_cut(cuts, utt, transcriber.static_dim)
        source = utt
    result = input_sensitivity(transcriber, static, phone, source)
    draw_sensitivity(result, transcriber, static, segments, output)
    return result


def draw_sensitivity(result: Sensitivity, transcriber: Transcriber, static: torch.Tensor, segments: List[Segment],
                     output: PathLike) -> None:
    """The figure of :func:`plot_sensitivity`. static: (T, D) the features the gradient is taken on."""
    rows = ["features", "sensitivity"] + (["reference"] if segments else []) + ["outputs"]
    heights = {"features": 3.0, "sensitivity": 3.0, "reference": 0.6, "outputs": 2.0}
    figure = Figure(figsize=(12, 1.2 + 1.1 * sum(heights[r] for r in rows)), layout="constrained")
    FigureCanvasAgg(figure)
    # a narrow second column holds the colour bars, so that every panel gets the same width and time axis
    grid = figure.add_gridspec(len(rows), 2, width_ratios=[60, 1], height_ratios=[heights[r] for r in rows])
    first = figure.add_subplot(grid[0, 0])
    axes = {row: first if i == 0 else figure.add_subplot(grid[i, 0], sharex=first) for i, row in enumerate(rows)}
    num_frames, dim = static.shape
    extent = (0.0, num_frames * FRAME_SHIFT, -0.5, dim - 0.5)
    features = transcriber.features
    feature_label = f"{features.type} dim" + (" (0: log energy)" if features.use_energy else "")

    image = axes["features"].imshow(static.detach().numpy().T, origin="lower", aspect="auto", extent=extent,
                                    cmap="viridis", interpolation="nearest")
    figure.colorbar(image, cax=figure.add_subplot(grid[rows.index("features"), 1]), label="log value")
    axes["features"].set(ylabel=feature_label, title=f"{result.source}: static input features")

    gradient = result.gradient.numpy()
    limit = float(np.abs(gradient).max()) or 1.0  # symmetric limits centre the colour map at 0
    image = axes["sensitivity"].imshow(gradient.T, origin="lower", aspect="auto", extent=extent, cmap="RdBu_r",
                                       vmin=-limit, vmax=limit, interpolation="nearest")
    figure.colorbar(image, cax=figure.add_subplot(grid[rows.index("sensitivity"), 1]), label="gradient")
    axes["sensitivity"].set(ylabel=feature_label,
                            title=f"d log P({result.phone} at {result.time:.2f} s) / d input features "
                                  f"({transcriber.model_type}, greedy path)")

    if segments:
        reference = axes["reference"]
        for k, (symbol, start, end) in enumerate(segments):
            reference.axvspan(start, end, color="0.85" if k % 2 else "0.7")
            reference.text((start + end) / 2, 0.5, symbol, ha="center", va="center", fontsize=7,
                           color="tab:red" if symbol == result.phone else "black")
        reference.set(yticks=[], ylim=(0, 1), title="reference phone segmentation")

    _draw_outputs(axes["outputs"], figure.add_subplot(grid[rows.index("outputs"), 1]), result, transcriber)
    # the last encoder frame may reach past the audio when stacking pads it
    first.set(xlim=(0.0, num_frames * FRAME_SHIFT))
    axes[rows[-1]].set_xlabel("time (s)")
    for row in rows[:-1]:
        axes[row].tick_params(labelbottom=False)
    start = result.time
    for ax in axes.values():  # the input frames stacked into the emitting encoder frame
        for edge in (start, start + transcriber.frame_shift):
            ax.axvline(edge, color="black", linestyle="--", linewidth=0.8)
    with atomic_output(output) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)  # explicit: the temporary's name does not end in .png


def _draw_outputs(ax, colour_axes, result: Sensitivity, transcriber: Transcriber) -> None:
    """Per-frame output probabilities of blank and the emitted phones (first emission order), emissions
    marked on their rows."""
    path = result.path
    rows = [0] + list(dict.fromkeys(path.tokens))  # token ids: blank, then each emitted phone once
    probs = path.log_probs.exp()[:, rows].numpy().T  # (R, T')
    shift = transcriber.frame_shift
    image = ax.imshow(probs, aspect="auto", cmap="Greys", vmin=0.0, vmax=1.0, interpolation="nearest",
                      extent=(0.0, probs.shape[1] * shift, len(rows) - 0.5, -0.5))
    ax.figure.colorbar(image, cax=colour_axes, label="probability")
    ax.scatter([(f + 0.5) * shift for f in path.frames], [rows.index(t) for t in path.tokens], marker="|",
               color="tab:orange", s=30, label="greedy emission")
    labels = transcriber.tokens.decode(rows)
    ax.set_yticks(range(len(rows)), labels, fontsize=6 if len(rows) > 20 else 8)
    for tick, label in zip(ax.get_yticklabels(), labels):
        if label == result.phone:
            tick.set_color("tab:red")
    ax.set(title="model outputs along the greedy path")
    ax.legend(loc="upper right", fontsize=7)
