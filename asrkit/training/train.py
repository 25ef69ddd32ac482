"""Train a deep bidirectional LSTM with CTC, or an RNN transducer on it (Graves et al. 2013), resumably.

``train`` sets a run up (:class:`TrainingRun`), resumes its :class:`TrainingState` from the newest checkpoint of
the same options, and goes epoch by epoch: :func:`train_one_epoch` (optimiser steps,
:func:`asrkit.training.step.optimizer_step`, and mid-epoch checkpoints), then :func:`end_epoch` (dev evaluation,
best.pt, the lr schedule, the next phase, the epoch's checkpoint). When training is over, ``model.pt`` (the best
model) and ``history.json`` are written: these two are the stage's outputs. The schedules, weight noise, batches
and the resume files have modules of their own in this package; docs/training.md describes the whole procedure.

Run as ``python -m asrkit.training.train --help``; the recipe's Snakemake rule does.
"""

import argparse
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter

from asrkit import config
from asrkit.config import (AugmentationConfig, FeatureConfig, ModelConfig, TrainingConfig, TransducerConfig,
                           UnitsConfig)
from asrkit.data.dataset import RecognitionDataset, to_device
from asrkit.data.features import input_dim, load_stats
from asrkit.data.lang import TokenTable
from asrkit.data.spec_augment import SpecAugment
from asrkit.data.units import Units, load_units
from asrkit.device import DEVICE_CHOICES, resolve_device
from asrkit.io import atomic_output, file_sha256
from asrkit.model.interface import AcousticModel
from asrkit.model.registry import MODEL_TYPES, build_model, stored_model_options
from asrkit.model.rnnt_backend import check_device
from asrkit.progress import progress_bar
from asrkit.scoring.error_rates import score_utterances
from asrkit.search.searches import search
from asrkit.training.batches import feasible_cuts, make_loader, steps, training_sampler
from asrkit.checkpoint import checkpoint_name, load_checkpoint, load_weights, save_checkpoint
from asrkit.training.distributed import ProcessGroup, end_process_group, start_process_group
from asrkit.training.resume import (latest_checkpoint, load_best, prune_checkpoints, rng_state,
                                    set_aside_foreign_best, set_rng_state)
from asrkit.training.schedule import (DONE, FIXED, LrSchedule, best_record, first_phase, is_noisy, make_optimizer,
                                      next_phase, restarts_from_best, selection_key)
from asrkit.training.step import NON_FINITE, SCALER_SKIP, Precision, StepOutcome, TrainingLoss, optimizer_step
from asrkit.training.weight_noise import WeightNoise, initialise_uniformly


@dataclass(frozen=True)
class TrainingSetup:
    """What a training stage trains: the config sections it reads, the model type and the pretrained parts."""

    seed: int
    units: UnitsConfig
    features: FeatureConfig
    #: the training cuts' augmented copies (made at the feature stage)
    augmentation: AugmentationConfig
    #: ctc or transducer (:data:`asrkit.checkpoint.MODEL_TYPES`)
    model_type: str
    model: ModelConfig
    #: the prediction network, joiner and loss of a transducer (unread by CTC)
    transducer: TransducerConfig
    training: TrainingConfig
    #: parts started from other models: part (encoder, decoder) -> model.pt
    init: Dict[str, Path] = field(default_factory=dict)

    def digest(self) -> str:
        """A short fingerprint of everything that shapes the trained model: what it was trained with, save
        the training's run-only settings (and a CTC model's transducer section), and the pretrained parts'
        files."""
        shaping = {"seed": self.seed, "units": asdict(self.units), "features": asdict(self.features),
                   "model": stored_model_options(self.model_type, self.model, self.transducer),
                   "training": {k: v for k, v in asdict(self.training).items()
                                if k not in TrainingConfig.run_only_keys()},
                   "init": {part: file_sha256(path)[:16] for part, path in self.init.items()}}
        if self.model_type == "transducer":
            shaping["transducer"] = asdict(self.transducer)
        if self.augmentation.enabled:  # off, the fingerprint of a training from before augmentation existed
            shaping["augmentation"] = asdict(self.augmentation)
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def evaluate(model: AcousticModel, loader, tokens: TokenTable, units: Units, transducer: TransducerConfig,
             device: torch.device) -> Dict[str, Any]:
    """Mean dev loss per utterance (the model's :meth:`~AcousticModel.dev_loss_terms`: minus the log-probability
    of the targets; and each of its terms, if it has several) and the greedy error rate in the units' first
    metric: PER on 39 folded phones, or WER on the words the pieces make."""
    model.eval()
    term_totals: Dict[str, float] = {}
    count, refs, hyps = 0, {}, {}
    with torch.no_grad():
        for batch in map(lambda b: to_device(b, device), loader):
            for name, term in model.dev_loss_terms(batch, transducer).items():
                term_totals[name] = term_totals.get(name, 0.0) + term.item()
            count += len(batch["cut_ids"])
            greedy = search(model, "greedy", 1, batch["features"], batch["feature_lens"])
            for cut_id, ids, target, n in zip(batch["cut_ids"], greedy, batch["targets"], batch["target_lens"]):
                refs[cut_id] = units.scored(tokens.decode(target[:n].tolist()))
                hyps[cut_id] = units.scored(tokens.decode(ids))
    model.train()
    # a loss of several terms (a transducer's auxiliary CTC loss) has each of them recorded too
    terms = {f"dev_{name}_loss": total / count for name, total in term_totals.items()} if len(term_totals) > 1 else {}
    return {"dev_loss": sum(term_totals.values()) / count, **terms, "dev_metric": units.metrics[0],
            "dev_error_rate": score_utterances(refs, hyps).totals.rate}


def initialise(model: AcousticModel, init: Dict[str, Path]) -> None:
    """Start from pretrained parts (PRETRANS): the encoder of a CTC model (and the other parts the model takes
    from it, :meth:`~AcousticModel.parts_from_ctc_model`), the prediction network of a token LM."""
    if "encoder" in init:
        weights = load_checkpoint(Path(init["encoder"]))["model"]
        for name, part in model.parts_from_ctc_model().items():
            load_weights(part, {k[len(name) + 1:]: v for k, v in weights.items() if k.startswith(f"{name}.")},
                         Path(init["encoder"]))
        logging.info(f"{', '.join(model.parts_from_ctc_model())} initialised from {init['encoder']}")
    if "decoder" in init:
        load_weights(model.decoder, load_checkpoint(Path(init["decoder"]))["model"], Path(init["decoder"]))
        logging.info(f"prediction network initialised from {init['decoder']}")


#


def check_processes(training: TrainingConfig, group: ProcessGroup, device: torch.device) -> None:
    """The processes running are those the options ask for, and the mixed precision asked for runs here."""
    if training.num_processes != group.world_size:
        raise ValueError(f"training.num_processes is {training.num_processes} but {group.world_size} process(es) "
                         f"run: launch with torchrun --standalone --nproc_per_node {training.num_processes} "
                         f"-m asrkit.training.train ... (the recipe does)")
    if training.amp_dtype == "float16" and device.type != "cuda":
        raise ValueError(f"training.amp {training.amp!r}: float16 mixed precision needs a CUDA GPU (the CPU's "
                         f"LSTM kernels have no float16 version), and this run's device is {device.type}: set "
                         f"training.amp: bfloat16, which runs on the CPU, or false")


# ------------------------------------------------------------------------------------------------ the loop


@dataclass
class TrainingState:
    """Where a training stands between two optimiser steps: with the weights and the states of the optimiser,
    lr schedule, loss scaler and RNGs, what a checkpoint holds. :meth:`checkpoint` and :meth:`from_checkpoint`
    are the one place it is saved and read."""

    phase: str
    epoch: int = 1
    #: optimiser steps of this epoch, each on num_processes x accumulate_batches batches
    batches_done: int = 0
    #: this epoch's summed training loss, its utterances and its seconds so far
    totals: List[float] = field(default_factory=lambda: [0.0, 0, 0.0])
    #: optimiser steps of all epochs: the transducer's warm-up counts them
    global_batches: int = 0
    #: steps of this epoch skipped for a loss or gradient that was not finite
    skipped_steps: int = 0
    #: steps of this epoch that the float16 loss scaler skipped while lowering its scale
    scaler_skipped_steps: int = 0
    history: List[Dict[str, Any]] = field(default_factory=list)

    def add_step(self, step: StepOutcome, seconds: float) -> None:
        self.batches_done += 1
        self.global_batches += 1
        self.skipped_steps += step.outcome == NON_FINITE
        self.scaler_skipped_steps += step.outcome == SCALER_SKIP
        self.totals = [self.totals[0] + step.loss, self.totals[1] + step.utterances, seconds]

    def train_loss(self) -> Optional[float]:
        """The epoch's mean loss per utterance so far; None while every step was skipped."""
        return self.totals[0] / self.totals[1] if self.totals[1] else None

    def next_epoch(self) -> None:
        self.epoch, self.batches_done, self.totals = self.epoch + 1, 0, [0.0, 0, 0.0]
        self.skipped_steps = self.scaler_skipped_steps = 0

    def checkpoint(self, epoch_finished: bool) -> Dict[str, Any]:
        """The state's entries of a checkpoint (``batches_done`` None: after the epoch's last step)."""
        return {"epoch": self.epoch, "batches_done": None if epoch_finished else self.batches_done,
                "totals": self.totals, "global_batches": self.global_batches, "history": self.history,
                "phase": self.phase, "skipped_steps": self.skipped_steps,
                "scaler_skipped_steps": self.scaler_skipped_steps}

    @classmethod
    def from_checkpoint(cls, checkpoint: Dict[str, Any]) -> "TrainingState":
        """The state to go on from: after a finished epoch, the next one's start."""
        state = cls(phase=checkpoint["phase"], epoch=checkpoint["epoch"], batches_done=checkpoint["batches_done"] or 0,
                    totals=checkpoint["totals"], global_batches=checkpoint["global_batches"],
                    skipped_steps=checkpoint["skipped_steps"], history=checkpoint["history"],
                    scaler_skipped_steps=checkpoint.get("scaler_skipped_steps", 0))  # older checkpoints lack it
        if checkpoint["batches_done"] is None:
            state.next_epoch()
        return state


@dataclass
class TrainingRun:
    """What a training works with, set up once: the model and its loss, the optimiser and lr schedule (new ones
    at the paper schedule's restart), the precision, the data, and where it writes."""

    setup: TrainingSetup
    digest: str
    device: torch.device
    group: ProcessGroup
    model: AcousticModel
    #: the model with its loss as ``forward``, in DistributedDataParallel under torchrun
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LrSchedule
    precision: Precision
    dataset: RecognitionDataset
    train_set: CutSet
    dev_loader: torch.utils.data.DataLoader
    tokens: TokenTable
    units: Units
    exp_dir: Path
    #: what decoding and transcription read besides the weights: every checkpoint and model.pt hold it
    model_info: Dict[str, Any]
    writer: Optional[SummaryWriter]

    @property
    def checkpoint_dir(self) -> Path:
        return self.exp_dir / "checkpoints"

    @property
    def best_path(self) -> Path:
        return self.exp_dir / "best.pt"

    def save(self, state: TrainingState, epoch_finished: bool) -> None:
        """A checkpoint of ``state``. Every process calls it (each one's RNG state is saved); rank 0 writes."""
        rng_states = self.group.all_gather(rng_state(self.device))
        if self.group.is_main:
            name = checkpoint_name(state.epoch, None if epoch_finished else state.batches_done)
            save_checkpoint(self.checkpoint_dir / name, {
                "model": self.model.state_dict(), **self.model_info, **state.checkpoint(epoch_finished),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.precision.scaler.state_dict(), "rng_states": rng_states})
            prune_checkpoints(self.checkpoint_dir, self.setup.training.keep_last_checkpoints)

    def resume(self, path: Path) -> TrainingState:
        """Load a checkpoint of this run's options into the model, optimiser, lr schedule, scaler and RNGs."""
        checkpoint = load_checkpoint(path)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        if checkpoint["scaler"]:  # a disabled scaler's (no float16) is empty
            self.precision.scaler.load_state_dict(checkpoint["scaler"])
        set_rng_state(checkpoint["rng_states"][self.group.rank], self.device)
        return TrainingState.from_checkpoint(checkpoint)

    def restart_from_best(self, epoch: int) -> None:
        """The paper's restart: best.pt's weights, a fresh optimiser and lr schedule (the noiseless phase's
        momentum points where noise is absent)."""
        best = load_best(self.best_path, self.digest)
        self.model.load_state_dict(best["model"])
        self.optimizer = make_optimizer(self.model, self.setup.training)
        self.scheduler = LrSchedule(self.optimizer, self.setup.training)
        logging.info(f"epoch {epoch}: restarting from {self.best_path} (epoch {best['epoch']}) with a fresh "
                     f"optimiser and weight noise {self.setup.training.weight_noise_std}")


def train_one_epoch(run: TrainingRun, state: TrainingState) -> float:
    """Train the rest of ``state.epoch``, from step ``state.batches_done`` on, checkpointing every
    ``checkpoint_every_batches`` steps; the time.time() at which the epoch would have started unbroken."""
    training, group = run.setup.training, run.group
    accumulate = training.accumulate_batches
    noise = WeightNoise(training.weight_noise_std, run.setup.seed, state.epoch) \
        if is_noisy(training, state.phase, state.epoch) else None
    started = time.time() - state.totals[2]
    shards = range(group.rank * accumulate, (group.rank + 1) * accumulate)  # this process's batches of a step
    sampler = training_sampler(run.train_set, training.max_duration, run.setup.seed, state.epoch, shards,
                               group.world_size * accumulate)
    spec_augment = SpecAugment.for_epoch(training, run.setup.seed, state.epoch) if training.spec_augment else None
    loader = make_loader(run.dataset.augmented(spec_augment), sampler, run.setup.seed, training.num_workers,
                         state.epoch, skip_batches=state.batches_done * accumulate)
    cap = f"/{training.num_epochs}" if state.phase == FIXED else f" ({state.phase})"
    # the epoch's steps, for the bar's total and time left: the sampler drawn once ahead (cuts only, no features;
    # seeded by seed and epoch, it draws the same batches again for the loader)
    total = sum(1 for _ in sampler) // accumulate
    progress = progress_bar(steps(loader, accumulate), desc=f"epoch {state.epoch}{cap}", unit="step", total=total,
                            leave=False, initial=state.batches_done, disable=not group.is_main)
    for step_batches in progress:
        step = optimizer_step(run.net, run.model, run.optimizer, run.precision, step_batches, run.device,
                              state.global_batches, training.grad_clip, noise, group)
        if step.outcome == NON_FINITE:
            logging.warning(f"epoch {state.epoch}, step {state.batches_done + 1}: loss or gradient not finite, "
                            f"step skipped ({state.skipped_steps + 1} this epoch)")
        elif step.outcome == SCALER_SKIP:
            logging.info(f"epoch {state.epoch}, step {state.batches_done + 1}: float16 gradient overflow, step "
                         f"skipped and the loss scale lowered to {run.precision.scaler.get_scale():g}")
        state.add_step(step, time.time() - started)
        if state.train_loss() is not None:  # shown at the bar's next refresh: a redraw now would repeat a stale count
            progress.set_postfix(loss=f"{state.train_loss():.2f}", refresh=False)
        if state.batches_done % training.checkpoint_every_batches == 0:
            run.save(state, epoch_finished=False)
    return started


def end_epoch(run: TrainingRun, state: TrainingState, started: float) -> None:
    """After the epoch's last step: evaluate on dev (rank 0), keep best.pt, step the lr schedule, choose the
    next phase, checkpoint, and move ``state`` to the next epoch."""
    group, history = run.group, state.history
    record = None
    if group.is_main:  # dev evaluation: rank 0 alone, the others wait for its record
        record = {"epoch": state.epoch, "phase": state.phase, "lr": run.scheduler.lr(),
                  "train_loss": state.train_loss(), "skipped_steps": state.skipped_steps,
                  "scaler_skipped_steps": state.scaler_skipped_steps,
                  **evaluate(run.model, run.dev_loader, run.tokens, run.units, run.setup.transducer, run.device),
                  "seconds": time.time() - started}
        for key in ("train_loss", "dev_loss", "dev_error_rate"):
            if record[key] is not None:
                run.writer.add_scalar(key, record[key], state.epoch)
        train_loss = "none (every step skipped)" if record["train_loss"] is None else f"{record['train_loss']:.3f}"
        logging.info(f"epoch {state.epoch} ({state.phase}): train loss {train_loss}, "
                     f"dev loss {record['dev_loss']:.3f}, dev {record['dev_metric']} "
                     f"{record['dev_error_rate']:.2f}% ({record['seconds']:.0f} s)")
    history.append(group.broadcast(record))
    if group.is_main and best_record(history, state.phase, selection_key(state.phase)) is history[-1]:
        save_checkpoint(run.best_path, {"model": run.model.state_dict(), **run.model_info, "epoch": state.epoch})
    run.scheduler.step(history[-1]["dev_loss"])
    state.phase = next_phase(run.setup.training, history, state.phase, selection_key(state.phase))
    run.save(state, epoch_finished=True)
    group.barrier()  # best.pt is written before any process can read it (weight noise restarts from it)
    state.next_epoch()


def train(train_cuts: Path, dev_cuts: Path, stats_path: Path, tokens_path: Path, exp_dir: Path,
          setup: TrainingSetup, device: str = "auto") -> None:
    """Train on ``setup.training``'s schedule, resuming where an earlier run stopped (mid-epoch too).

    In every process of a torchrun launch (``training.num_processes`` of them), or alone.
    """
    training, seed = setup.training, setup.seed
    # Checkpoints are resumable only under the same settings and the same pretrained parts. The number of
    # processes is among them: with it change the float summation order and the ranks' dropout masks.
    digest = setup.digest()
    torch_device = resolve_device(device, int(os.environ.get("LOCAL_RANK", "0")))
    if setup.model_type == "transducer":
        check_device(torch_device)  # a CPU-only RNN-T loss would fail at the first batch, after all the set-up
    if torch_device.type == "cuda":
        torch.cuda.set_device(torch_device)  # nccl uses the current device
    group = start_process_group(torch_device)
    check_processes(training, group, torch_device)
    tokens = TokenTable.load(tokens_path)
    units = load_units(setup.units, tokens_path.parent)
    stats = load_stats(stats_path)
    dataset = RecognitionDataset(tokens, units, setup.features, stats)
    train_set, dev_set = CutSet.from_file(train_cuts).to_eager(), CutSet.from_file(dev_cuts).to_eager()

    torch.manual_seed(seed)
    dim = input_dim(setup.features)
    model_options = stored_model_options(setup.model_type, setup.model, setup.transducer)
    model = build_model(model_options, dim, len(tokens))
    if training.init == "uniform":
        initialise_uniformly(model)
    initialise(model, setup.init)
    model.mark_pretrained(setup.init)  # the transducer's warm-up spares them (transducer.pretrained_warmup)
    train_set, dev_set = (feasible_cuts(cuts, name, model, setup.transducer, tokens, units,
                                        training.max_infeasible_fraction)
                          for cuts, name in ((train_set, "train"), (dev_set, "dev")))
    model.to(torch_device)
    if group.rank > 0:  # the ranks' batches differ: so do their dropout masks
        torch.manual_seed(seed + group.rank)
    optimizer = make_optimizer(model, training)
    net = TrainingLoss(model, setup.transducer)
    if dist.is_initialized():  # averages the gradients of the processes in backward() (nccl/gloo, even for 1)
        # find_unused_parameters: a transducer's prediction network keeps its phone-LM output layer, unused here
        net = DistributedDataParallel(net, device_ids=[torch_device.index] if torch_device.type == "cuda" else None,
                                      find_unused_parameters=True)
    dev_sampler = SimpleCutSampler(dev_set, max_duration=training.max_duration, shuffle=False, world_size=1, rank=0)
    # Everything needed to use the model without the recipe: decoding and transcription read only this.
    model_info = {"model_options": model_options, "input_dim": dim, "vocab_size": len(tokens),
                  "tokens": tokens.symbols, "units": units.state(), "feature_options": asdict(setup.features),
                  "stats": stats, "options_digest": digest}
    run = TrainingRun(setup, digest, torch_device, group, model, net, optimizer, LrSchedule(optimizer, training),
                      Precision.of(training, torch_device), dataset, train_set,
                      make_loader(dataset, dev_sampler, seed, training.num_workers, 0), tokens, units, exp_dir,
                      model_info, SummaryWriter(str(exp_dir / "tensorboard")) if group.is_main else None)

    state = TrainingState(phase=first_phase(training, pretrained=bool(setup.init)))
    resume_from = group.broadcast(latest_checkpoint(run.checkpoint_dir, digest) if group.is_main else None)
    if group.is_main:
        set_aside_foreign_best(run.best_path, digest, resuming=resume_from is not None)
    group.barrier()  # no process sees a best.pt that is being set aside
    if resume_from is not None:
        state = run.resume(resume_from)
        logging.info(f"resuming from {resume_from}: epoch {state.epoch} ({state.phase}), after "
                     f"{state.batches_done} batches")
    num_params = sum(p.numel() for p in model.parameters())
    logging.info(f"model: {model_options}, {num_params / 1e6:.2f}M parameters, input {dim} dims, "
                 f"{len(tokens)} tokens; {len(train_set)} training cuts, {len(dev_set)} dev cuts; on {torch_device}"
                 f"{f' ({training.amp_dtype} mixed precision)' if training.amp_dtype else ''}, "
                 f"{group.world_size} process(es) x {training.accumulate_batches} batch(es) per step")
    while state.phase != DONE:
        if state.batches_done == 0 and restarts_from_best(training, state.history, state.phase, state.epoch,
                                                          run.best_path):
            run.restart_from_best(state.epoch)
        started = train_one_epoch(run, state)
        end_epoch(run, state, started)
    if not group.is_main:
        return
    run.writer.close()

    history = state.history
    final_phase = history[-1]["phase"]
    best = best_record(history, final_phase, selection_key(final_phase))
    logging.info(f"best dev {best['dev_metric']} {best['dev_error_rate']:.2f}% at epoch {best['epoch']} "
                 f"({final_phase}); {sum(h['seconds'] for h in history):.0f} s of training")
    final = {**load_checkpoint(run.best_path), "num_params": num_params, "num_epochs": len(history)}
    save_checkpoint(exp_dir / "model.pt", final)
    with atomic_output(exp_dir / "history.json") as tmp:
        tmp.write_text(json.dumps(history, indent=1))
    logging.info(f"model -> {exp_dir}/model.pt, history -> {exp_dir}/history.json")


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-cuts", type=Path, required=True, help="training cut manifest with features")
    parser.add_argument("--dev-cuts", type=Path, required=True, help="dev cut manifest (model selection)")
    parser.add_argument("--stats", type=Path, required=True, help="global mean/std from the feature stage")
    parser.add_argument("--tokens", type=Path, required=True, help="tokens.txt from the units stage (data/lang; a sentencepiece model is read beside it)")
    parser.add_argument("--exp-dir", type=Path, required=True, help="where checkpoints and the model go")
    parser.add_argument("--model-type", choices=MODEL_TYPES, required=True, help="the network to train")
    parser.add_argument("--init-encoder", type=Path, help="start the encoder from this CTC model.pt (PRETRANS)")
    parser.add_argument("--init-decoder", type=Path, help="start the prediction network from this token LM model.pt")
    parser.add_argument("--device", choices=DEVICE_CHOICES, default="auto",
                        help="auto (default): a CUDA GPU if torch finds one, else the CPU")
    config.add_top_level_flag(parser, "seed")
    config.add_flags(parser, UnitsConfig)
    config.add_flags(parser, FeatureConfig, leave_out=FeatureConfig.run_only_keys())
    config.add_flags(parser, AugmentationConfig)
    config.add_flags(parser, ModelConfig)
    config.add_flags(parser, TransducerConfig)
    config.add_flags(parser, TrainingConfig)
    args = parser.parse_args(argv)
    world_size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    # rank 0 tells the story; the others speak up only for warnings and errors
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s %(levelname)s [train{f' rank {rank}' if world_size > 1 else ''}] "
                               f"%(message)s")
    args.exp_dir.mkdir(parents=True, exist_ok=True)
    init = {part: path for part, path in (("encoder", args.init_encoder), ("decoder", args.init_decoder)) if path}
    setup = TrainingSetup(args.seed, config.from_flags(args, UnitsConfig), config.from_flags(args, FeatureConfig),
                          config.from_flags(args, AugmentationConfig), args.model_type, config.from_flags(args, ModelConfig),
                          config.from_flags(args, TransducerConfig), config.from_flags(args, TrainingConfig), init)
    # the job's threads are shared by its processes; more than the cores it was given slows it many times over
    torch.set_num_threads(max(1, (setup.training.num_threads or torch.get_num_threads()) // world_size))
    try:
        train(args.train_cuts, args.dev_cuts, args.stats, args.tokens, args.exp_dir, setup, args.device)
    finally:
        end_process_group()


if __name__ == "__main__":
    main()
