"""Each model type's searches, by name: what the decode stage, transcription and the dev evaluation run.

The models compute (encoder, output layer, prediction network, joiner) and know nothing of search; here each
model type's named searches read them, as icefall's ``beam_search.py`` reads its model. A new model type gets
its entry in :data:`SEARCH_METHODS` and a branch in each function below (docs/new_model.md).
"""

from typing import Any, Dict, List, Optional, Tuple, Type

import torch

from asrkit.model.ctc import CtcModel
from asrkit.model.interface import AcousticModel, GreedyPath
from asrkit.model.registry import model_class
from asrkit.model.transducer import Transducer
from asrkit.search.alignment import ctc_best_path_frames, transducer_best_path_frames
from asrkit.search.ctc_search import ctc_greedy_emissions, ctc_greedy_search, ctc_prefix_beam_search
from asrkit.search.transducer_search import beam_search, greedy_paths_batch, greedy_search_batch, modified_beam_search

#: the searches of each model type, ``"greedy"`` first (the one the dev evaluation uses)
SEARCH_METHODS: Dict[Type[AcousticModel], Tuple[str, ...]] = {
    CtcModel: ("greedy", "prefix_beam"),
    Transducer: ("greedy", "beam", "modified_beam"),
}
ALL_SEARCH_METHODS: Tuple[str, ...] = tuple(sorted({m for methods in SEARCH_METHODS.values() for m in methods}))
#: the transducer searches that emit at most one label per frame (Graves's beam search emits several)
ONE_LABEL_PER_FRAME = ("greedy", "modified_beam")


def search_methods(model_type: str) -> Tuple[str, ...]:
    """The searches of a model type, by its name in the model registry (``ctc``, ``transducer``)."""
    return SEARCH_METHODS[model_class(model_type)]


def check_acoustic_only(method: str, fusion: Optional[Any]) -> None:
    """Greedy search reads the network alone: an LM given to it is a mistake, not something to ignore."""
    if fusion is not None:
        raise ValueError(f"the {method} search uses no LM (decode with a beam search to add one)")


def search(model: AcousticModel, method: str, beam: int, features: torch.Tensor, feature_lens: torch.Tensor,
           fusion: Optional[Any] = None) -> List[List[int]]:
    """Token ids (no blank) of a padded batch by one of the model type's searches; beam: its width (unused by
    greedy). features: (N, T, C), feature_lens: (N,). Run under ``torch.no_grad()``, with the model in eval mode.

    fusion: the token LM a beam search adds (an :class:`asrkit.search.lm.ShallowFusion`), or None; greedy search
    takes none (a ValueError).
    """
    if method == "greedy":
        check_acoustic_only(method, fusion)
    if isinstance(model, CtcModel):
        log_probs, lens = model(features, feature_lens)
        if method == "greedy":
            return ctc_greedy_search(log_probs, lens)
        if method == "prefix_beam":
            return ctc_prefix_beam_search(log_probs, lens, beam=beam, fusion=fusion)
    elif isinstance(model, Transducer):
        encoder_out, lens = model.encoder(features, feature_lens)
        if method == "greedy":
            return greedy_search_batch(model, encoder_out, lens)
        if method == "beam":
            return beam_search(model, encoder_out, lens, beam=beam, fusion=fusion)
        if method == "modified_beam":
            return modified_beam_search(model, encoder_out, lens, beam=beam, fusion=fusion)
    raise ValueError(f"a {type(model).__name__} decodes with {SEARCH_METHODS.get(type(model))}, not {method!r}")


@torch.no_grad()
def greedy_path(model: AcousticModel, features: torch.Tensor) -> GreedyPath:
    """The greedy search on one utterance, with the frame of each emission. features: (T, C), T >= 1.

    Emits the same tokens as ``search(model, "greedy", ...)`` on a batch of that one utterance; a transducer emits
    at most one label per frame, each label advancing the prediction network.
    """
    if isinstance(model, CtcModel):
        log_probs = model.utterance_log_probs(features).cpu()  # (T', V)
        (tokens, frames), = ctc_greedy_emissions(log_probs.unsqueeze(0), torch.tensor([log_probs.size(0)]))
        return GreedyPath(tokens, frames, log_probs)
    if isinstance(model, Transducer):
        encoder_out = model.utterance_encoding(features).unsqueeze(0)  # (1, T', E)
        return greedy_paths_batch(model, encoder_out, torch.tensor([encoder_out.size(1)]), with_log_probs=True)[0]
    raise TypeError(f"no greedy search for a {type(model).__name__}")


@torch.no_grad()
def best_path_frames(model: AcousticModel, features: torch.Tensor, tokens: List[int], method: str) -> List[int]:
    """The encoder frame of each token on the most probable alignment of ``tokens`` (label ids, no blank) with
    the utterance ``features`` (T, C), among the alignments that the search ``method`` considers (CTC's are the
    same for both of its searches)."""
    if isinstance(model, CtcModel):
        return ctc_best_path_frames(model.utterance_log_probs(features).double().cpu().numpy(), tokens)
    if isinstance(model, Transducer):
        blank_log_probs, label_log_probs = model.alignment_log_probs(features, tokens)
        return transducer_best_path_frames(blank_log_probs.numpy(), label_log_probs.numpy(),
                                           one_label_per_frame=method in ONE_LABEL_PER_FRAME)
    raise TypeError(f"no alignment for a {type(model).__name__}")
