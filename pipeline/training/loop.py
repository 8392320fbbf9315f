"""The training loop the training stages share (train_localizer, train_cam_partner, train_boundary).

Single process, or one process per device under torchrun (DDP; `batch_size` is the
total). A checkpoint after every epoch and every `checkpoint_every_steps` steps; an
interrupted run resumes from the last one and ends with the same weights as an
uninterrupted one: every random draw is a function of the seed and the position in
training (`pipeline/training/randomness.py`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from pipeline import distributed
from pipeline.artifacts import MODEL_FILE
from pipeline.errors import ConfigError, DataError, UserError
from pipeline.log import Throughput, get_logger, progress
from pipeline.models import build_localizer, localizer_record
from pipeline.precision import autocast
from pipeline.training.settings import TrainSettings
from pipeline.training.checkpoint import load_checkpoint, save_checkpoint
from pipeline.training.data import AugmentedLabelledImages
from pipeline.training.optim import build_sgd, poly_schedule
from pipeline.training.randomness import EpochBatches, repeat_factors, seed_step

LAST_CHECKPOINT = "last.pth"


class TrainingDiverged(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def train(model: nn.Module, images: Dataset, settings: TrainSettings, weights: dict[str, float], out_dir: Path,
          name: str, labels: Sequence[Sequence[int]] | None = None) -> dict:
    """Train `model` in place on `images` (items (index, seed) -> (x, target); the
    model's forward(x, target) returns the loss terms that `weights` names; `.heads()`
    take `head_lr_mult` x lr). `labels`: each image's classes, for repeat-factor
    sampling. Returns the history."""
    world, rank, device = distributed.world_size(), distributed.rank(), distributed.device()
    if settings.batch_size % world:
        raise ConfigError(f"{name}.batch_size={settings.batch_size} is not divisible by {world} processes")
    on_cuda = device.type == "cuda"
    model = _placed(model, settings, device, world)
    batches, loader = _batches(images, settings, world, on_cuda, name, labels)
    steps_per_epoch = len(batches)
    total_steps = settings.epochs * steps_per_epoch
    optimizer, scheduler, scaler = _optimisation(model, settings, total_steps, on_cuda)
    net = DistributedDataParallel(model, device_ids=[device] if on_cuda else None) if world > 1 else model
    # Position in training: `done` steps finished; the running epoch's loss sums so far.
    last = out_dir / LAST_CHECKPOINT
    done, history, sums = _resume(last, model, optimizer, scheduler, scaler)
    _log_start(name, model, len(images), settings, (done, steps_per_epoch, world), device, last)

    def save(epoch_sums: dict) -> None:
        _check_finite(first_bad, epoch_sums, epoch, last, name)  # never checkpoint a diverged model
        _save_last(last, model, optimizer, scheduler, scaler, done, history, epoch_sums)

    model.train()
    steps_this_attempt = 0
    rate = Throughput()  # images/s (all processes) after this attempt's first steps
    for epoch in range(done // steps_per_epoch, settings.epochs):
        skip = done - epoch * steps_per_epoch
        batches.start(epoch, skip)
        sums = {k: v.to(device) for k, v in sums.items()} if skip else {}
        first_bad = torch.full((), -1, dtype=torch.long, device=device)  # the epoch's first non-finite step
        active = weights if epoch >= settings.classifier_warmup_epochs else \
            warmup_weights(weights, model.classification_terms)
        t0 = time.perf_counter()
        for step, (x, labels) in enumerate(progress(loader, f"{name} epoch {epoch + 1}/{settings.epochs}",
                                                    total=steps_per_epoch - skip), start=skip):
            seed_step(settings.seed, rank, done)
            loss, terms = _step(net, x, labels, active, settings, device, (optimizer, scaler, scheduler))
            first_bad.masked_fill_(~torch.isfinite(loss) & (first_bad < 0), step + 1)  # on the device: no sync
            done += 1
            steps_this_attempt += 1
            rate.add(settings.batch_size)
            for term, value in {"loss": loss, **terms}.items():
                sums[term] = sums.get(term, torch.zeros((), device=device)) + value.detach().float()
            every = settings.checkpoint_every_steps
            if every and done % every == 0 and step + 1 < steps_per_epoch:
                save(sums)
        _check_finite(first_bad, sums, epoch, last, name)
        history.append(_epoch_record(sums, steps_per_epoch, epoch, optimizer, time.perf_counter() - t0,
                                     (steps_per_epoch - skip) * settings.batch_size))
        _log_epoch(name, history[-1], settings.epochs)
        save({})

    model.eval()
    return {"history": history, "steps": total_steps, "processes": world, "device": str(device),
            "steps_this_attempt_per_rank": _gather_objects(steps_this_attempt, world), "throughput": rate.summary()}


def _step(net: nn.Module, x: torch.Tensor, labels: torch.Tensor, active: dict[str, float], settings: TrainSettings,
          device: torch.device, optimisation: tuple) -> tuple[torch.Tensor, dict]:
    """One optimisation step on one batch: (the weighted loss, its terms)."""
    x, labels = x.to(device, non_blocking=True), labels.to(device, non_blocking=True)
    if device.type == "cuda" and settings.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with autocast(device, settings.amp):
        terms = net(x, labels)
    # Warm-up weights are 0, not absent: every parameter stays in the graph (DDP needs it).
    loss = sum(w * terms[term].float() for term, w in active.items())
    _update(loss, *optimisation)
    return loss, terms


def _log_start(name: str, model: nn.Module, images: int, settings: TrainSettings, position: tuple[int, int, int],
               device: torch.device, last: Path) -> None:
    done, steps_per_epoch, world = position
    log = get_logger()
    if done:
        log.info("%s: resuming after step %d of %d (epoch %d, step %d) from %s", name, done,
                 settings.epochs * steps_per_epoch, done // steps_per_epoch + 1, done % steps_per_epoch, last)
    log.info("%s: %s, %d images, %d epochs x %d steps, batch %d on %d process(es), %s", name, type(model).__name__,
             images, settings.epochs, steps_per_epoch, settings.batch_size, world, device)


def _save_last(last: Path, model, optimizer, scheduler, scaler, done: int, history: list, epoch_sums: dict) -> None:
    """The resume checkpoint: everything an exact resume needs, the running epoch's loss sums too."""
    if distributed.is_main():
        save_checkpoint(last, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), scaler=scaler.state_dict(), steps_done=done,
                        history=history, epoch_sums={k: v.cpu() for k, v in epoch_sums.items()})
    distributed.barrier()


def _log_epoch(name: str, record: dict, epochs: int) -> None:
    get_logger().info("%s epoch %d/%d: %s", name, record["epoch"], epochs,  # record["epoch"] counts from 1
                      ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                                if k != "epoch"))


def _batches(images: Dataset, settings: TrainSettings, world: int, on_cuda: bool, name: str,
             labels: Sequence[Sequence[int]] | None):
    """(the epoch batch sampler, its DataLoader). Persistent workers: no worker start-up at
    every epoch (each item's augmentation comes from its own seed, not the worker's life)."""
    factors = None
    if settings.repeat_factor_threshold:
        if labels is None:
            raise ConfigError(f"{name}.repeat_factor_threshold: this stage trains without image-level labels "
                              f"to balance; set it to 0")
        factors = repeat_factors(labels, settings.repeat_factor_threshold)
        get_logger().info("%s: repeat-factor sampling (t=%g): %d of %d images repeated, factors up to %.2f", name,
                          settings.repeat_factor_threshold, sum(f > 1 for f in factors), len(factors), max(factors))
    batches = EpochBatches(len(images), settings.batch_size // world, settings.seed, distributed.rank(), world,
                           factors)
    if len(batches) == 0:
        raise DataError(f"{name}: {len(images)} images in split '{settings.split}' make no "
                        f"batch of {settings.batch_size}; lower {name}.batch_size")
    loader = DataLoader(images, batch_sampler=batches, num_workers=settings.num_workers, pin_memory=on_cuda,
                        persistent_workers=settings.num_workers > 0)
    return batches, loader


def _update(loss: torch.Tensor, optimizer, scaler, scheduler) -> None:
    """One optimiser step (through the fp16 loss scaler where it is on) and the lr schedule's."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()


def _optimisation(model: nn.Module, settings: TrainSettings, total_steps: int, on_cuda: bool):
    """(SGD with the heads' lr multiple, the poly schedule, the fp16 loss scaler: off unless fp16 on CUDA)."""
    optimizer = build_sgd(model, model.heads(), settings.lr, settings.head_lr_mult,
                          settings.momentum, settings.weight_decay, settings.train_biases)
    scheduler = poly_schedule(optimizer, total_steps, settings.poly_power)
    return optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=on_cuda and settings.amp == "fp16")


def _placed(model: nn.Module, settings: TrainSettings, device, world: int) -> nn.Module:
    """The model on its device: SyncBatchNorm across CUDA processes, channels_last on CUDA."""
    model = model.to(device)
    if world > 1 and device.type == "cuda" and settings.sync_bn:  # gloo (CPU) has no SyncBatchNorm
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda" and settings.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def _resume(last: Path, model, optimizer, scheduler, scaler) -> tuple[int, list, dict]:
    """(steps done, epoch history, the running epoch's loss sums) from the last checkpoint,
    its states loaded into the model and optimiser; (0, [], {}) without one."""
    if not last.is_file():
        return 0, [], {}
    state = load_checkpoint(last)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    return state["steps_done"], state["history"], state["epoch_sums"]


def _check_finite(first_bad: torch.Tensor, sums: dict, epoch: int, last: Path, name: str) -> None:
    """Stop with what to do if a step's loss was not finite. Checked where a checkpoint is
    written (one host sync there, none per step), before it is: the checkpoint on disk is
    the last good one."""
    bad = int(first_bad)
    if bad < 0:
        return
    raise TrainingDiverged(
        f"loss is {float(sums['loss'])} at epoch {epoch + 1}, step {bad} (the first non-finite step; sums since the "
        f"last checkpoint: {', '.join(f'{k}={float(v):.4g}' for k, v in sums.items())}); the last good checkpoint "
        f"{'is ' + str(last) if last.is_file() else 'does not exist (first epoch)'}. "
        f"Lower {name}.lr, or set {name}.amp=None.")


def train_and_save(prepared, out_dir: Path, name: str, settings: TrainSettings, localizer: dict) -> dict:
    """A localizer stage's whole body: the split's images (negatives included), the model
    (seeded init), `train`, `out_dir/model.pth`; `prepared`: the PreparedData artifact.
    Returns the stage's artifacts, metrics and info."""
    log = get_logger()
    dataset = prepared.load()
    usable = dataset.split(settings.split)
    negatives = sum(not dataset.labels[i] for i in usable)
    if negatives:  # every localizer trains on them (pipeline/models/base.py)
        log.info("%s: %d of %d images are negatives (no class: background only)", name, negatives, len(usable))
    if localizer["backbone"].get("weights") is None:
        log.warning("%s: the backbone starts from RANDOM weights (backbone.weights=None); real data needs "
                    "ImageNet weights ('IMAGENET1K_V1' or a local .pth)", name)
    torch.manual_seed(settings.seed)  # the heads' init; every later draw comes from pipeline.training.randomness
    model, weights = build_localizer(localizer, dataset.num_classes)
    images = AugmentedLabelledImages(dataset, usable, settings.resize_long, settings.crop, settings.flip,
                                     square=settings.resize == "square", color_jitter=settings.color_jitter)
    trained = train(model, images, settings, weights, out_dir, name, [dataset.labels[i] for i in usable])
    if distributed.is_main():
        save_checkpoint(out_dir / MODEL_FILE, state_dict=model.state_dict(), localizer=localizer_record(localizer),
                        num_classes=dataset.num_classes)
    history = trained["history"]
    return dict(
        artifacts={"images": len(usable), "negatives": negatives, "epochs": settings.epochs,
                   "steps": trained["steps"], "processes": trained["processes"]},
        metrics={"final_loss": history[-1]["loss"], "history": history,
                 "steps_this_attempt_per_rank": trained["steps_this_attempt_per_rank"]},
        info={"model": MODEL_FILE, "method": localizer["type"], "split": settings.split, "device": trained["device"],
              "throughput": trained["throughput"]},
    )


def warmup_weights(weights: dict[str, float], classification_terms: tuple[str, ...]) -> dict[str, float]:
    """Classification terms (the model's `classification_terms`) keep their weight during
    warm-up; the others get 0."""
    if not set(classification_terms) & set(weights):
        raise ConfigError(f"classifier warm-up: none of the loss terms {sorted(weights)} is one of the model's "
                          f"classification_terms {classification_terms}; warm-up would train nothing")
    return {name: (w if name in classification_terms else 0.0) for name, w in weights.items()}


def _epoch_record(sums, steps, epoch, optimizer, seconds, images) -> dict:
    names = sorted(sums)
    values = torch.stack([sums[n] for n in names])
    if dist.is_initialized():
        dist.all_reduce(values)
        values /= dist.get_world_size()
    record = {"epoch": epoch + 1}
    record.update({n: float(v) / steps for n, v in zip(names, values.cpu())})
    record["lr"] = optimizer.param_groups[0]["lr"]
    record["images_per_s"] = round(images / seconds, 2)
    return record


def _gather_objects(value, world: int) -> list:
    """`value` from every rank, in rank order."""
    if world == 1:
        return [value]
    values: list = [None] * world
    dist.all_gather_object(values, value)
    return values
