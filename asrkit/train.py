"""Stage 4: train a deep bidirectional LSTM with CTC (Graves et al. 2013), resumably.

Every epoch writes a checkpoint (model, optimiser, RNG state, history) atomically to
``<exp-dir>/checkpoints/epoch-N.pt`` and keeps the last K; the model with the best dev PER is kept as
``best.pt``. A rerun resumes from the latest checkpoint written with the same options (checkpoints from
other options are set aside). When all epochs are done, ``model.pt`` (the best model) and ``history.json``
are written: these two are the stage's outputs.

Run as ``python -m asrkit.train --help``; the recipe's Snakemake rule does.
"""

import argparse
import hashlib
import json
import logging
import math
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from lhotse import CutSet
from lhotse.dataset import DynamicBucketingSampler, SimpleCutSampler
from torch.utils.tensorboard import SummaryWriter

from asrkit.checkpoint import build_model, load_checkpoint, save_checkpoint
from asrkit.ctc_decoding import ctc_greedy_search
from asrkit.dataset import PhoneRecognitionDataset
from asrkit.features import input_dim, load_stats
from asrkit.io import atomic_output
from asrkit.progress import progress_bar
from asrkit.lang import TokenTable
from asrkit.phones import fold
from asrkit.scoring import score_utterances

#: the defaults of the config's ``training`` section (see asrkit/schemas/config.schema.yaml)
DEFAULT_TRAINING_OPTIONS = {
    "optimizer": "adam", "lr": 0.001, "momentum": 0.9, "grad_clip": 5.0, "weight_noise_std": 0.0,
    "weight_noise_start_epoch": 1, "keep_last_checkpoints": 3, "num_workers": 1,
}


def options_digest(options: Dict[str, Any]) -> str:
    """A short fingerprint of everything that shapes the trained model."""
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:16]


def make_optimizer(model: torch.nn.Module, training: Dict[str, Any]) -> torch.optim.Optimizer:
    if training["optimizer"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=training["lr"], momentum=training["momentum"])
    return torch.optim.Adam(model.parameters(), lr=training["lr"])


def make_loader(cuts: CutSet, dataset: PhoneRecognitionDataset, max_duration: float, shuffle: bool, seed: int,
                num_workers: int, epoch: int) -> torch.utils.data.DataLoader:
    """Training batches come from duration buckets (little padding); evaluation keeps a fixed order."""
    if shuffle:
        with warnings.catch_warnings():  # its advice on lazy manifests is for corpora far larger than TIMIT
            warnings.filterwarnings("ignore", message="You are using DynamicBucketingSampler with an eagerly")
            sampler = DynamicBucketingSampler(cuts, max_duration=max_duration, shuffle=True, seed=seed,
                                              num_buckets=min(10, max(2, len(cuts) // 20)))
    else:
        sampler = SimpleCutSampler(cuts, max_duration=max_duration, shuffle=False)
    sampler.set_epoch(epoch)
    return torch.utils.data.DataLoader(dataset, sampler=sampler, batch_size=None, num_workers=num_workers,
                                       persistent_workers=False)


def evaluate(model, loader, tokens: TokenTable, num_phones: int) -> Dict[str, float]:
    """Mean CTC loss per utterance and greedy PER after folding to 39 phones."""
    model.eval()
    total_loss, count, refs, hyps = 0.0, 0, {}, {}
    with torch.no_grad():
        for batch in loader:
            log_probs, lens = model(batch["features"], batch["feature_lens"])
            total_loss += torch.nn.functional.ctc_loss(
                log_probs.transpose(0, 1), batch["targets"], lens, batch["target_lens"], reduction="sum",
                zero_infinity=True).item()
            count += len(batch["cut_ids"])
            for cut_id, ids, target, n in zip(batch["cut_ids"], ctc_greedy_search(log_probs, lens),
                                              batch["targets"], batch["target_lens"]):
                refs[cut_id] = fold(tokens.decode(target[:n].tolist()), num_phones, 39)
                hyps[cut_id] = fold(tokens.decode(ids), num_phones, 39)
    model.train()
    return {"dev_loss": total_loss / count, "dev_per": score_utterances(refs, hyps).totals.rate}


def add_weight_noise(model: torch.nn.Module, std: float) -> List[torch.Tensor]:
    """Add Gaussian noise to every weight; return it so that it can be taken away after the update's gradient."""
    noise = []
    with torch.no_grad():
        for p in model.parameters():
            n = torch.randn_like(p) * std
            p.add_(n)
            noise.append(n)
    return noise


def remove_weight_noise(model: torch.nn.Module, noise: List[torch.Tensor]) -> None:
    with torch.no_grad():
        for p, n in zip(model.parameters(), noise):
            p.sub_(n)


def latest_checkpoint(checkpoint_dir: Path, digest: str) -> Optional[Path]:
    """The newest epoch checkpoint made with these options; stale ones are moved aside, not deleted."""
    checkpoints = sorted(checkpoint_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    if not checkpoints:
        return None
    if load_checkpoint(checkpoints[-1]).get("options_digest") != digest:
        stale = checkpoint_dir.with_name(f"checkpoints.stale-{int(time.time())}")
        logging.warning(f"checkpoints in {checkpoint_dir} were made with other options: moved to {stale}")
        shutil.move(str(checkpoint_dir), str(stale))
        return None
    return checkpoints[-1]


def train(train_cuts: Path, dev_cuts: Path, stats_path: Path, tokens_path: Path, exp_dir: Path,
          options: Dict[str, Any]) -> None:
    """Train to ``options['training']['num_epochs']``, resuming where an earlier run stopped."""
    training = {**DEFAULT_TRAINING_OPTIONS, **options["training"]}
    seed, num_phones = options["seed"], options["data"]["phone_set"]
    digest = options_digest(options)
    tokens = TokenTable.load(tokens_path)
    stats = load_stats(stats_path)
    dataset = PhoneRecognitionDataset(tokens, num_phones, options["features"], stats)
    train_set, dev_set = CutSet.from_file(train_cuts).to_eager(), CutSet.from_file(dev_cuts).to_eager()

    torch.manual_seed(seed)
    dim = input_dim(options["features"])
    model = build_model(options["model"], dim, len(tokens))
    optimizer = make_optimizer(model, training)
    checkpoint_dir = exp_dir / "checkpoints"
    history: List[Dict[str, float]] = []
    start_epoch = 1
    resume_from = latest_checkpoint(checkpoint_dir, digest)
    if resume_from is not None:
        state = load_checkpoint(resume_from)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_state"])
        history, start_epoch = state["history"], state["epoch"] + 1
        logging.info(f"resuming from {resume_from} (epoch {state['epoch']} done)")
    num_params = sum(p.numel() for p in model.parameters())
    logging.info(f"model: {options['model']}, {num_params / 1e6:.2f}M parameters, input {dim} dims, "
                 f"{len(tokens)} tokens; {len(train_set)} training cuts, {len(dev_set)} dev cuts")

    writer = SummaryWriter(str(exp_dir / "tensorboard"))
    dev_loader = make_loader(dev_set, dataset, training["max_duration"], False, seed, training["num_workers"], 0)
    for epoch in range(start_epoch, training["num_epochs"] + 1):
        noisy = training["weight_noise_std"] > 0 and epoch >= training["weight_noise_start_epoch"]
        if noisy and epoch == training["weight_noise_start_epoch"] and (exp_dir / "best.pt").exists():
            model.load_state_dict(load_checkpoint(exp_dir / "best.pt")["model"])
            logging.info(f"epoch {epoch}: restarting from the best dev model with weight noise "
                         f"{training['weight_noise_std']}")
        started = time.time()
        loader = make_loader(train_set, dataset, training["max_duration"], True, seed, training["num_workers"], epoch)
        total_loss, total_utts = 0.0, 0
        progress = progress_bar(loader, desc=f"epoch {epoch}/{training['num_epochs']}", unit="batch", leave=False)
        for batch in progress:
            noise = add_weight_noise(model, training["weight_noise_std"]) if noisy else None
            loss = model.loss(batch["features"], batch["feature_lens"], batch["targets"], batch["target_lens"])
            num_utts = len(batch["cut_ids"])
            optimizer.zero_grad()
            (loss / num_utts).backward()
            if noise is not None:
                remove_weight_noise(model, noise)
            torch.nn.utils.clip_grad_norm_(model.parameters(), training["grad_clip"])
            optimizer.step()
            total_loss, total_utts = total_loss + loss.item(), total_utts + num_utts
            progress.set_postfix(loss=f"{total_loss / total_utts:.2f}")
        record = {"epoch": epoch, "train_loss": total_loss / total_utts, **evaluate(model, dev_loader, tokens, num_phones),
                  "seconds": time.time() - started}
        history.append(record)
        for key in ("train_loss", "dev_loss", "dev_per"):
            writer.add_scalar(key, record[key], epoch)
        logging.info(f"epoch {epoch}: train loss {record['train_loss']:.3f}, dev loss {record['dev_loss']:.3f}, "
                     f"dev PER {record['dev_per']:.2f}% ({record['seconds']:.0f} s)")
        # Everything needed to use the model without the recipe: decoding and transcription read only this.
        model_state = {"model": model.state_dict(), "model_options": options["model"], "input_dim": dim,
                       "vocab_size": len(tokens), "tokens": tokens.symbols, "num_phones": num_phones,
                       "feature_options": options["features"], "stats": stats,
                       "options_digest": digest, "epoch": epoch}
        if record["dev_per"] <= min(h["dev_per"] for h in history):
            save_checkpoint(exp_dir / "best.pt", model_state)
        save_checkpoint(checkpoint_dir / f"epoch-{epoch}.pt", {
            **model_state, "optimizer": optimizer.state_dict(), "rng_state": torch.get_rng_state(), "history": history})
        for old in sorted(checkpoint_dir.glob("epoch-*.pt"), key=lambda p: int(p.stem.split("-")[1])
                          )[:-training["keep_last_checkpoints"]]:
            old.unlink()
    writer.close()

    best = min(history, key=lambda h: h["dev_per"])
    logging.info(f"best dev PER {best['dev_per']:.2f}% at epoch {best['epoch']}; "
                 f"{sum(h['seconds'] for h in history):.0f} s of training")
    final = {**load_checkpoint(exp_dir / "best.pt"), "num_params": num_params, "num_epochs": len(history)}
    save_checkpoint(exp_dir / "model.pt", final)
    with atomic_output(exp_dir / "history.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    logging.info(f"model -> {exp_dir}/model.pt, history -> {exp_dir}/history.json")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-cuts", type=Path, required=True, help="training cut manifest with features")
    parser.add_argument("--dev-cuts", type=Path, required=True, help="dev cut manifest (model selection)")
    parser.add_argument("--stats", type=Path, required=True, help="global mean/std from the feature stage")
    parser.add_argument("--tokens", type=Path, required=True, help="tokens.txt from the lang stage")
    parser.add_argument("--exp-dir", type=Path, required=True, help="where checkpoints and the model go")
    parser.add_argument("--options", type=json.loads, required=True,
                        help="JSON with the config's seed, data, features, model and training sections")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [train] %(message)s")
    args.exp_dir.mkdir(parents=True, exist_ok=True)
    train(args.train_cuts, args.dev_cuts, args.stats, args.tokens, args.exp_dir, args.options)


if __name__ == "__main__":
    main()
