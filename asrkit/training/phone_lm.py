"""Pretrain the transducer's prediction network as a token language model (Graves et al. 2013, PRETRANS).

The network (embedding + LSTM, with its ``lm_output`` head) reads blank + the tokens (phones or sentencepiece
pieces) of each training utterance and predicts the next token, then blank as the end. The module keeps the
paper's name, phone LM, which it is for TIMIT. Each epoch reports the dev perplexity; the
weights with the lowest are kept as ``<exp-dir>/model.pt``, which the PRETRANS stage loads.

``phone_lm.optimizer: sgd`` and ``init: uniform`` are the paper's SGD with momentum and initial weights uniform
in [-0.1, 0.1]. ``phone_lm.schedule: paper`` trains it as Graves et al. 2013 do: without weight noise until the
dev perplexity (the log-probability) has not improved for ``patience`` epochs, then from the best of those epochs with a fresh
optimiser and Gaussian weight noise, drawn once per transcript (as :mod:`asrkit.training.train` draws it once
per utterance), until it stalls again; ``model.pt`` is the noise phase's best. The phases and their ends are
:mod:`asrkit.training.schedule`'s (:func:`~asrkit.training.schedule.next_phase`). The stage is minutes long and does
not checkpoint: a killed run starts again.

Run as ``python -m asrkit.training.phone_lm --help``; the recipe's Snakemake rule does.
"""

import argparse
import json
import logging
import math
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from lhotse import CutSet
from torch.nn.utils.rnn import pad_sequence

from asrkit import config
from asrkit.config import PhoneLmConfig, TransducerConfig, UnitsConfig
from asrkit.data.dataset import token_ids
from asrkit.model.registry import build_decoder
from asrkit.checkpoint import save_checkpoint
from asrkit.training.schedule import DONE, FIXED, NOISELESS, NOISY, best_record, make_optimizer, next_phase
from asrkit.training.weight_noise import add_weight_noise, initialise_uniformly, noise_generator, remove_weight_noise
from asrkit.io import atomic_output
from asrkit.data.lang import TokenTable
from asrkit.model.decoder import Decoder
from asrkit.progress import progress_bar
from asrkit.data.units import Units, load_units


def token_sequences(cuts_path: Path, tokens: TokenTable, units: Units) -> List[torch.Tensor]:
    """Token ids of every utterance, in manifest order."""
    return [torch.tensor(token_ids(cut, tokens, units)) for cut in CutSet.from_file(cuts_path)]


def batches(sequences: List[torch.Tensor], batch_size: int, shuffle_seed: Optional[int]
            ) -> Iterator[Tuple[torch.Tensor, torch.Tensor, List[int]]]:
    """Padded batches of the sequences, with their lengths and their indices in ``sequences``."""
    order = list(range(len(sequences)))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)
    for start in range(0, len(order), batch_size):
        chosen = [sequences[i] for i in order[start:start + batch_size]]
        yield pad_sequence(chosen, batch_first=True), torch.tensor([len(s) for s in chosen]), order[start:start + batch_size]


def perplexity(decoder: Decoder, sequences: List[torch.Tensor], batch_size: int) -> float:
    decoder.eval()
    nll, count = 0.0, 0
    with torch.no_grad():
        for y, y_lens, _ in batches(sequences, batch_size, shuffle_seed=None):
            batch_nll, batch_count = decoder.lm_loss(y, y_lens)
            nll, count = nll + batch_nll.item(), count + batch_count
    decoder.train()
    return math.exp(nll / count)


def train_phone_lm(train_cuts: Path, dev_cuts: Path, tokens_path: Path, exp_dir: Path, seed: int,
                   units_config: UnitsConfig, transducer: TransducerConfig, lm: PhoneLmConfig) -> None:
    """Train the prediction network of ``transducer``'s sizes as a token LM; write model.pt and history.json."""
    tokens = TokenTable.load(tokens_path)
    units = load_units(units_config, tokens_path.parent)
    train_set = token_sequences(train_cuts, tokens, units)
    dev_set = token_sequences(dev_cuts, tokens, units)
    torch.manual_seed(seed)
    decoder = build_decoder(asdict(transducer), len(tokens))
    if lm.init == "uniform":
        initialise_uniformly(decoder)
    optimizer = make_optimizer(decoder, lm)  # the training's optimisers, from the phone_lm section's settings
    logging.info(f"token LM on {len(train_set)} training transcripts ({sum(map(len, train_set))} tokens); "
                 f"dev perplexity before training {perplexity(decoder, dev_set, lm.batch_size):.1f}")
    sizes = {key: value for key, value in asdict(transducer).items() if key in TransducerConfig.DECODER_KEYS}
    history: List[Dict[str, Any]] = []
    phase, epoch, best_weights = (FIXED if lm.schedule == "fixed" else NOISELESS), 1, {}
    while phase != DONE:
        noisy = phase == NOISY
        if noisy and not any(h["phase"] == NOISY for h in history):
            decoder.load_state_dict(best_weights)
            optimizer = make_optimizer(decoder, lm)  # no momentum carried over
            logging.info(f"epoch {epoch}: restarting from the noiseless best with a fresh optimiser and weight "
                         f"noise {lm.weight_noise_std}")
        for y, y_lens, indices in progress_bar(batches(train_set, lm.batch_size, seed + epoch),
                                               desc=f"token LM epoch {epoch}", unit="batch", leave=False):
            optimizer.zero_grad()
            if noisy:  # each transcript's gradient at a perturbation of its own
                count = int((y_lens + 1).sum())  # the tokens lm_loss predicts: each transcript's and its end
                for i, index in enumerate(indices):
                    noise = add_weight_noise(decoder, lm.weight_noise_std, noise_generator(seed, epoch, str(index)))
                    nll, _ = decoder.lm_loss(y[i:i + 1, :int(y_lens[i])], y_lens[i:i + 1])
                    (nll / count).backward()
                    remove_weight_noise(decoder, noise)
            else:
                nll, count = decoder.lm_loss(y, y_lens)
                (nll / count).backward()
            optimizer.step()
        record = {"epoch": epoch, "phase": phase, "dev_perplexity": perplexity(decoder, dev_set, lm.batch_size),
                  "train_perplexity": perplexity(decoder, train_set, lm.batch_size)}
        history.append(record)
        logging.info(f"epoch {epoch} ({phase}): train perplexity {record['train_perplexity']:.2f}, "
                     f"dev perplexity {record['dev_perplexity']:.2f}")
        if best_record(history, phase, "dev_perplexity") is record:
            best_weights = {k: v.clone() for k, v in decoder.state_dict().items()}
            save_checkpoint(exp_dir / "model.pt", {"model": best_weights, "model_options": sizes,
                                                   "vocab_size": len(tokens), **record})
        phase, epoch = next_phase(lm, history, phase, "dev_perplexity"), epoch + 1
    best = best_record(history, history[-1]["phase"], "dev_perplexity")
    with atomic_output(exp_dir / "history.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    logging.info(f"best dev perplexity {best['dev_perplexity']:.2f} (epoch {best['epoch']}; {len(tokens)} "
                 f"tokens with blank) -> {exp_dir}/model.pt")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-cuts", type=Path, required=True)
    parser.add_argument("--dev-cuts", type=Path, required=True)
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--exp-dir", type=Path, required=True)
    config.add_top_level_flag(parser, "seed")
    config.add_flags(parser, UnitsConfig)
    config.add_flags(parser, TransducerConfig, keys=TransducerConfig.DECODER_KEYS)
    config.add_flags(parser, PhoneLmConfig)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [phone_lm] %(message)s")
    args.exp_dir.mkdir(parents=True, exist_ok=True)
    train_phone_lm(args.train_cuts, args.dev_cuts, args.tokens, args.exp_dir, args.seed,
                   config.from_flags(args, UnitsConfig), config.from_flags(args, TransducerConfig),
                   config.from_flags(args, PhoneLmConfig))


if __name__ == "__main__":
    main()
