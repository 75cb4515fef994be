"""Flow matching machinery shared by the generators of every domain.

The molecule generator (:mod:`chem.flow_matching`) and the crystal generator
(:mod:`materials.crystal_flow`) differ in what they generate and in their networks; what they
share lives here, once:

* :func:`time_grid`: where the Euler steps of sampling fall;
* :class:`Conditioning`: the standardised property targets, their masks for classifier-free
  guidance in training (:meth:`Conditioning.training_mask`) and in sampling
  (:meth:`Conditioning.tensor`), and :func:`guide`, which mixes the conditional and
  unconditional predictions;
* :func:`train_flow`: the training loop (Adam, cosine schedule, gradient clipping, an
  exponential moving average of the weights, resumable state written atomically after every
  epoch, a progress bar).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from rich.progress import Progress
from torch import nn

LossFn = Callable[[nn.Module, npt.NDArray[np.int64], torch.Generator],
                  tuple[torch.Tensor, dict[str, float]]]
"""The loss of a mini-batch: (model, item indices, noise generator) -> (loss, named parts)."""


def time_grid(steps: int, power: float = 1.0) -> npt.NDArray[np.float64]:
    """Times 0 = t_0 < ... < t_steps = 1 of the Euler steps: t_k = 1 - (1 - k / steps)^power.

    ``power`` 1 spaces them evenly; above 1 puts more of them late, where classes are decided.
    """
    return 1.0 - (1.0 - np.arange(steps + 1) / steps) ** power


def guide(conditional: torch.Tensor, unconditional: torch.Tensor, weight: float) -> torch.Tensor:
    """Classifier-free guidance: (1 + w) conditional - w unconditional."""
    return conditional + weight * (conditional - unconditional)


@dataclass(frozen=True)
class Conditioning:
    """Property targets of a conditioned generator.

    Attributes:
        properties: names, in the order of the network's condition inputs.
        mean: (n_properties,) mean of the training labels, in their units.
        std: (n_properties,) standard deviation of the training labels.
    """

    properties: tuple[str, ...]
    mean: torch.Tensor = field(repr=False)
    std: torch.Tensor = field(repr=False)

    @classmethod
    def from_labels(cls, properties: tuple[str, ...], y: npt.ArrayLike) -> Conditioning:
        """Statistics of labels ``y`` (n_items, n_properties), NaN where unknown."""
        values = torch.as_tensor(np.asarray(y, dtype=np.float64))
        known = torch.isfinite(values)
        zero = torch.where(known, values, torch.zeros_like(values))
        count = known.sum(0).clamp_min(1)
        mean = zero.sum(0) / count
        var = (torch.where(known, values - mean, torch.zeros_like(values)) ** 2).sum(0) / count
        return cls(properties, mean.float(), var.sqrt().float().clamp_min(1e-6))

    def tensor(self, n: int, condition: dict[str, float] | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised targets and mask, each (n, n_properties), for ``n`` samples.

        Raises:
            ValueError: a target for a property the generator does not know.
        """
        values = torch.zeros(n, len(self.properties))
        mask = torch.zeros(n, len(self.properties))
        for name, value in (condition or {}).items():
            if name not in self.properties:
                raise ValueError(f"unknown condition {name!r}; the generator knows "
                                 f"{', '.join(self.properties)}")
            k = self.properties.index(name)
            values[:, k] = (value - self.mean[k]) / self.std[k]
            mask[:, k] = 1.0
        return values, mask

    def training_mask(self, y: torch.Tensor, p_uncond: float, p_drop_property: float,
                      gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised labels and the mask of those the network sees in one training batch.

        Unknown labels (NaN) are always masked; all of a sample's labels are dropped with
        probability ``p_uncond`` (so that the network also learns the unconditional flow that
        guidance needs) and each one on its own with ``p_drop_property`` (so that it learns to
        condition on some targets only).

        Args:
            y: (n, n_properties) labels in their units, NaN where unknown.
            p_uncond: probability of dropping all of a sample's labels.
            p_drop_property: probability of dropping each label.
            gen: random numbers (CPU).

        Returns:
            (n, n_properties) standardised labels (0 where unknown) and the 0/1 mask, on the
            device of ``y``.
        """
        device = y.device
        known = torch.isfinite(y)
        cond = torch.where(known, (y - self.mean.to(device)) / self.std.to(device),
                           torch.zeros_like(y))
        keep = (torch.rand(y.shape[0], 1, generator=gen) >= p_uncond).float().to(device)
        each = (torch.rand(tuple(y.shape), generator=gen) >= p_drop_property).float().to(device)
        return cond, keep.expand(-1, y.shape[1]) * each * known.float()


@dataclass(frozen=True)
class FlowTraining:
    """What :func:`train_flow` needs of a generator's settings.

    Attributes:
        epochs: passes over the training items.
        batch_size: items per optimiser step.
        learning_rate: Adam step size, cosine-annealed to 1 % of it.
        ema_decay: the result gets an exponential moving average of the weights with this
            decay (0: the last weights); the decay is min(ema_decay, (1 + k) / (10 + k)) at
            optimiser step k, so that a short run averages over its own steps.
        seed: batches of epoch e are drawn from (seed, e), so a resumed run trains exactly as
            an uninterrupted one.
    """

    epochs: int
    batch_size: int
    learning_rate: float
    ema_decay: float
    seed: int


@dataclass(frozen=True)
class TrainingRun:
    """What a training run did: ``seconds`` in all (earlier, resumed parts included) and the
    named loss parts of the last batch."""

    seconds: float
    last_loss: dict[str, float]


def train_flow(model: nn.Module, n_items: int, loss_fn: LossFn, settings: FlowTraining,
               *, identity: dict[str, Any], state_path: Path | None = None,
               progress: Progress | None = None, label: str = "training generator",
               ) -> TrainingRun:
    """Trains ``model`` in place and leaves it in eval mode with the averaged weights.

    Args:
        model: the network (on its device).
        n_items: training items; each epoch visits them in a random order.
        loss_fn: the loss of a mini-batch of item indices (:data:`LossFn`).
        settings: epochs, batch size, learning rate, EMA decay and seed.
        identity: what makes a saved state this run's (settings, data size); a state file of
            another identity is an error rather than silently mixed in.
        state_path: with it, the training state (weights, averaged weights, optimiser,
            schedule, epochs done, seconds) is written there after every epoch (atomically),
            and training resumes from it when the file exists.
        progress: gets a task ``label`` advanced once per optimiser step.
        label: the task's name.

    Raises:
        ValueError: a state file of another identity.
    """
    steps_per_epoch = math.ceil(n_items / settings.batch_size)
    total = settings.epochs * steps_per_epoch
    opt = torch.optim.Adam(model.parameters(), lr=settings.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total, 1),
                                                       eta_min=settings.learning_rate / 100)
    ema = copy.deepcopy(model)
    for p in ema.parameters():
        p.requires_grad_(False)
    first_epoch, seconds_before = 0, 0.0
    if state_path is not None and state_path.is_file():
        state = torch.load(state_path, weights_only=True,
                           map_location=next(model.parameters()).device)
        if state.get("identity") != identity:
            raise ValueError(f"{state_path}: training state of other settings or data; remove it "
                             "or choose another state file")
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        first_epoch, seconds_before = int(state["epochs_done"]), float(state["seconds"])
    task = progress.add_task(label, total=total, completed=first_epoch * steps_per_epoch
                             ) if progress is not None else None
    start = time.perf_counter()
    last: dict[str, float] = {}
    model.train()
    for epoch in range(first_epoch, settings.epochs):
        rng = np.random.default_rng([settings.seed, epoch])
        gen = torch.Generator().manual_seed(settings.seed * 1_000_003 + epoch)
        order = rng.permutation(n_items)
        for s in range(steps_per_epoch):
            loss, last = loss_fn(model, order[s * settings.batch_size:
                                              (s + 1) * settings.batch_size], gen)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if settings.ema_decay > 0:
                done = epoch * steps_per_epoch + s + 1
                decay = min(settings.ema_decay, (1.0 + done) / (10.0 + done))
                with torch.no_grad():
                    for avg, now in zip(ema.parameters(), model.parameters(), strict=True):
                        avg.lerp_(now, 1.0 - decay)
            if progress is not None and task is not None:
                progress.advance(task)
        if state_path is not None:
            tmp = state_path.with_suffix(".tmp")
            torch.save({"identity": identity, "model": model.state_dict(),
                        "ema": ema.state_dict(), "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(), "epochs_done": epoch + 1,
                        "seconds": seconds_before + time.perf_counter() - start}, tmp)
            tmp.replace(state_path)  # atomic: a kill leaves the previous epoch's state
    if settings.ema_decay > 0:
        model.load_state_dict(ema.state_dict())
    model.eval()
    return TrainingRun(seconds_before + time.perf_counter() - start, last)
