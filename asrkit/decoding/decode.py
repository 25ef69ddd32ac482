"""Decode a cut set with a trained CTC model or transducer (greedy or beam searches), optionally with a token LM.

Writes ``<output>``: one ``utterance-id token token ...`` line per utterance (token symbols: training phones
or sentencepiece pieces), and ``<output>.json`` beside it with the decoding time and real-time factor, and the
LM and its weights if one was added (``--lm``, ``--lm-file``, and ``--lm-weights``: the file in which
:mod:`asrkit.decoding.lm_weights` stored the weight and bonus it chose on dev).

Run as ``python -m asrkit.decoding.decode --help``; the recipe's Snakemake rule does.
"""

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Dict, List, Optional

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler

from asrkit import config
from asrkit.config import DecodingConfig
from asrkit.checkpoint import is_end_of_epoch, load_checkpoint, load_model, load_weights, training_checkpoints
from asrkit.data.dataset import RecognitionDataset, to_device
from asrkit.search import DEFAULT_BEAM, DEFAULT_METHOD
from asrkit.search.lm import LM_KINDS, NeuralLm, NgramLm, ShallowFusion
from asrkit.search.searches import ALL_SEARCH_METHODS, search, search_methods
from asrkit.device import DEVICE_CHOICES, resolve_device
from asrkit.io import atomic_output
from asrkit.progress import progress_bar
from asrkit.scoring.hypotheses import write_hyps
from asrkit.model.registry import build_decoder, model_options


def load_neural_lm(path: Path, vocab_size: int) -> NeuralLm:
    """The neural phone LM of stage 5 (exp/phone_lm/model.pt); its tokens must be the model's (``vocab_size``)."""
    checkpoint = load_checkpoint(path)
    if checkpoint.get("vocab_size") != vocab_size:
        raise ValueError(f"{path}: a token LM over {checkpoint.get('vocab_size')} tokens cannot score a model "
                         f"of {vocab_size} (trained on other units?)")
    decoder = build_decoder(checkpoint["model_options"], vocab_size)
    load_weights(decoder, checkpoint["model"], path)
    return NeuralLm(decoder)


def load_fusion(kind: str, path: Path, symbols: List[str], weight: float, bonus: float) -> ShallowFusion:
    """The fusion of decoding.lm ``kind`` (ngram: an ARPA file; neural: a phone LM model.pt) with the model whose
    tokens are ``symbols`` (blank first)."""
    if kind == "ngram":
        return ShallowFusion(NgramLm.load(path, symbols), weight, bonus)
    if kind == "neural":
        return ShallowFusion(load_neural_lm(path, len(symbols)), weight, bonus)
    raise ValueError(f"decoding.lm {kind!r}: expected one of {', '.join(k for k in LM_KINDS if k != 'none')}")


def add_search_flags(parser: argparse.ArgumentParser) -> None:
    """``--method`` and ``--beam``: the search of a decoding (here and in ``asrkit transcribe``)."""
    parser.add_argument("--method", choices=ALL_SEARCH_METHODS, default=DEFAULT_METHOD,
                        help=f"CTC: greedy, prefix_beam; transducer: greedy, beam (Graves), modified_beam "
                             f"(default: {DEFAULT_METHOD})")
    parser.add_argument("--beam", type=int, default=DEFAULT_BEAM,
                        help=f"beam width of the beam searches (default: {DEFAULT_BEAM}; paper: 100)")


def add_lm_flags(parser: argparse.ArgumentParser) -> None:
    """``--lm`` and ``--lm-file``: the token LM a beam search adds (here and in asrkit.decoding.lm_weights)."""
    parser.add_argument("--lm", choices=LM_KINDS, default="none",
                        help="none (default), ngram (an ARPA file) or neural (the stage-5 phone LM's model.pt)")
    parser.add_argument("--lm-file", type=Path, help="the LM's file (with --lm ngram or neural)")


def check_lm_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.lm == "none") != (args.lm_file is None):
        parser.error("--lm-file goes with --lm ngram or neural, and only with them")
    if args.lm != "none" and args.method == "greedy":
        parser.error("greedy search uses no LM: --lm needs a beam search (--method)")


def averaged_checkpoints(model_path: Path, avg: int) -> List[Path]:
    """The last ``avg`` end-of-epoch checkpoints beside ``model_path``; none for avg 1 (the best model).

    They must be of one phase of the training schedule: the paper schedule's noise phase restarts from an earlier
    epoch, so the epochs before it are not on the path of the weights after it, and averaging them is no
    smoothing of one trajectory.
    """
    if avg <= 1:
        return []
    checkpoint_dir = model_path.parent / "checkpoints"
    ends = [p for p in training_checkpoints(checkpoint_dir) if is_end_of_epoch(p)]
    if len(ends) < avg:
        raise ValueError(f"decoding.avg {avg}: only {len(ends)} epoch checkpoints in {checkpoint_dir} "
                         f"(raise training.keep_last_checkpoints)")
    phases = [load_checkpoint(p)["history"][-1]["phase"] for p in ends[-avg:]]
    if len(set(phases)) > 1:
        raise ValueError(f"decoding.avg {avg}: the last {avg} epoch checkpoints in {checkpoint_dir} span the "
                         f"phases {phases} of the training schedule, and a phase can restart from an earlier "
                         f"epoch: lower decoding.avg to at most {phases.count(phases[-1])}, the last phase's epochs")
    return ends[-avg:]


class LoadedModel:
    """A trained model loaded for decoding (its checkpoints averaged as ``decoding.avg`` says), with the batches
    it reads. avg: the config's ``decoding.avg``; device: auto, cpu or cuda (see asrkit.device)."""

    def __init__(self, model_path: Path, avg: int, device: str = "auto"):
        self.model_path = model_path
        checkpoint = load_checkpoint(model_path)
        self.model_type = model_options(checkpoint["model_options"])["type"]
        self.device = resolve_device(device)
        self.model = load_model(model_path, average=averaged_checkpoints(model_path, avg)).to(self.device)
        self.dataset = RecognitionDataset.for_model(checkpoint)

    def decode(self, cuts: CutSet, method: str, beam: int, fusion: Optional[ShallowFusion] = None,
               max_duration: float = 200.0) -> Dict[str, List[str]]:
        """Token symbol sequences by cut id; fusion: the LM a beam search adds, or None."""
        methods = search_methods(self.model_type)
        if method not in methods:
            raise ValueError(f"{self.model_path}: a {self.model_type} model decodes with {methods}, not {method!r}")
        # world_size 1: all cuts, also where torchrun's environment variables would make lhotse shard them
        sampler = SimpleCutSampler(cuts, max_duration=max_duration, world_size=1, rank=0)
        loader = torch.utils.data.DataLoader(self.dataset, sampler=sampler, batch_size=None)
        hyps = {}
        with torch.no_grad():
            for batch in progress_bar(map(lambda b: to_device(b, self.device), loader),
                                      desc=f"decoding ({method})", unit="batch"):
                ids = search(self.model, method, beam, batch["features"], batch["feature_lens"], fusion)
                hyps.update(zip(batch["cut_ids"], (self.dataset.tokens.decode(i) for i in ids)))
        return hyps

    def fusion(self, lm: str, lm_file: Path, weight: float, bonus: float) -> Optional[ShallowFusion]:
        """The shallow fusion of decoding.lm ``lm`` (None for none) with this model's tokens."""
        return None if lm == "none" else load_fusion(lm, lm_file, self.dataset.tokens.symbols, weight, bonus)


def decode(cuts: CutSet, model_path: Path, method: str, beam: int, avg: int, max_duration: float = 200.0,
           device: str = "auto") -> Dict[str, List[str]]:
    """Token symbol sequences by cut id, with the network's scores alone (see :class:`LoadedModel`)."""
    return LoadedModel(model_path, avg, device).decode(cuts, method, beam, max_duration=max_duration)


def read_lm_weights(path: Path) -> Dict[str, float]:
    """The weight and bonus that the dev grid chose, from its lm_weights.json; an error names a bad file."""
    try:
        chosen = json.loads(Path(path).read_text())
        return {"weight": float(chosen["weight"]), "bonus": float(chosen["bonus"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"error: {path}: not the LM weights chosen on dev ({e!r}); rerun the recipe's stage 8")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cuts", type=Path, required=True, help="cut manifest with features")
    parser.add_argument("--model", type=Path, required=True, help="model.pt from the training stage")
    add_search_flags(parser)
    config.add_flags(parser, DecodingConfig, keys=("avg",))
    add_lm_flags(parser)
    parser.add_argument("--lm-weights", type=Path,
                        help="with --lm: the weights chosen on dev (lm_weights.json of asrkit.decoding.lm_weights)")
    parser.add_argument("--output", type=Path, required=True, help="hypothesis file to write")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default): a CUDA GPU if torch finds one, else the CPU")
    args = parser.parse_args(argv)
    check_lm_flags(parser, args)
    if (args.lm == "none") != (args.lm_weights is None):
        parser.error("--lm-weights goes with --lm ngram or neural, and only with them")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [decode] %(message)s")
    cuts = CutSet.from_file(args.cuts)  # lhotse reads an empty manifest as None
    cuts = cuts.to_eager() if cuts is not None else CutSet()
    if len(cuts) == 0:
        raise SystemExit(f"error: {args.cuts}: no utterances to decode")
    torch.set_num_threads(1)  # decoding jobs run side by side, one per core
    started = time.time()
    avg = getattr(args, "decoding.avg")
    loaded = LoadedModel(args.model, avg, args.device)
    lm_fields = {}
    if args.lm != "none":
        chosen = read_lm_weights(args.lm_weights)
        lm_fields = {"lm": args.lm, "lm_file": str(args.lm_file), "lm_weight": chosen["weight"],
                     "lm_bonus": chosen["bonus"]}
    fusion = loaded.fusion(args.lm, args.lm_file, lm_fields.get("lm_weight", 0.0), lm_fields.get("lm_bonus", 0.0))
    hyps = loaded.decode(cuts, args.method, args.beam, fusion)
    seconds = time.time() - started
    audio_seconds = sum(c.duration for c in cuts)
    write_hyps(hyps, args.output)
    timing = {"method": args.method, "beam": args.beam if args.method != "greedy" else 1, "avg": avg,
              **lm_fields, "seconds": seconds, "audio_seconds": audio_seconds, "rtf": seconds / audio_seconds}
    with atomic_output(args.output.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(timing, indent=1))
    logging.info(f"{len(hyps)} utterances decoded in {seconds:.1f} s (RTF {timing['rtf']:.4f}) -> {args.output}")


if __name__ == "__main__":
    main()
