"""Crystal property model: a deep ensemble of periodic PaiNN networks predicting the formation
energy (eV/atom) and the band gap (eV, with the probability of a non-zero gap) of a structure.

Each member reads the crystal graph (:mod:`materials.crystal_graph`: atoms and their edges to
periodic images inside a cutoff) with the equivariant blocks of :mod:`pipeline.equivariant`, so
its predictions do not change under rotation, translation, a change of unit cell or site order.
An atom's first features are a learnt embedding of its element plus a small network of the
element's tabulated properties (electronegativity, row, group, radius, Mendeleev number, metal
flag), so that an element the training data lacks still gets features from what it is like;
its learnt part starts at zero and stays there.

Per structure a member predicts (from the mean of its atoms' outputs, an intensive quantity):

* the formation energy, a Gaussian (mean, variance) trained by negative log-likelihood;
* whether the gap is non-zero (a logit, trained by cross-entropy), and the gap where it is
  non-zero, a Gaussian trained on the non-metals only (a hurdle model: 96 % of the training
  gaps are exactly zero).

The ensemble's band gap is the mixture: mean p mu, variance p (var + mu^2) - (p mu)^2 with p
the members' mean probability of a gap and mu, var the conditional gap's ensemble mean and
variance. Standard deviations are recalibrated per property on held-out structures
(:func:`pipeline.uncertainty.interval_scales`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymatgen.core.periodic_table import Element
from torch import nn
from torch_geometric.utils import scatter

from materials.crystal_graph import CrystalGraphs
from pipeline.devices import training_device
from pipeline.equivariant import PaiNNInteraction, RadialBasis
from pipeline.parallel import Advance, run_jobs
from pipeline.uncertainty import interval_scales, regression_metrics

FORMAT = "invdes-crystal-ensemble-1"
PROPERTIES = ("formation_energy_ev_per_atom", "band_gap_ev")
"""Targets, in the columns of :attr:`CrystalGraphs.y`."""
MAX_Z = 94


def element_table() -> npt.NDArray[np.float32]:
    """Standardised tabulated properties of elements 1..94 (row 0 unused), (95, 7):
    Pauling electronegativity, row, group, atomic radius (Angstrom), Mendeleev number, metal
    flag, and a flag for a missing electronegativity."""
    rows = [np.zeros(7)]
    for z in range(1, MAX_Z + 1):
        el = Element.from_Z(z)
        with warnings.catch_warnings():  # noble gases: "no Pauling electronegativity"
            warnings.simplefilter("ignore")
            x = float(el.X) if el.X and math.isfinite(float(el.X)) else 0.0
        radius = float(el.atomic_radius) if el.atomic_radius is not None else 1.5
        rows.append(np.array([x, el.row, el.group, radius, float(el.mendeleev_no or 0),
                              float(el.is_metal), float(x == 0.0)]))
    table = np.stack(rows)
    mean, std = table[1:].mean(0), table[1:].std(0) + 1e-9
    table[1:] = (table[1:] - mean) / std
    return table.astype(np.float32)


class CrystalTrainingConfig(BaseModel):
    """Architecture and training of the crystal ensemble.

    Attributes:
        features: PaiNN feature width.
        n_layers: interaction blocks.
        n_rbf: radial basis functions.
        cutoff: edge cutoff, Angstrom.
        members: networks in the ensemble.
        epochs: passes over the training set per member.
        warmup_epochs: epochs of squared error before the likelihood loss.
        batch_size: structures per step.
        learning_rate: Adam step size (cosine-annealed to 1 % of it).
        weight_decay: AdamW weight decay.
        seed: seed of the members' initialisation and batch order.
        rattle: Angstrom; standard deviation of random Gaussian site displacements applied to
            every training batch (the labels kept), so that the members see cells around the
            pool's geometries, ideal cubic ones included, and do not answer wildly for a
            cell a few hundredths of an Angstrom off them; 0: the geometries as they are.
        workers: members trained at once, each in its own single-threaded process.
        device: where the members train: ``cpu``, ``cuda`` or ``auto`` (CUDA when available);
            not part of a member checkpoint's recipe (a member started on a GPU can finish on
            the CPU); the trained ensemble predicts on the CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    features: int = Field(default=64, ge=8, le=512)
    n_layers: int = Field(default=3, ge=1, le=8)
    n_rbf: int = Field(default=20, ge=4, le=64)
    cutoff: float = Field(default=6.0, gt=2.0, le=12.0)
    members: int = Field(default=4, ge=1, le=32)
    epochs: int = Field(default=120, ge=1, le=10_000)
    warmup_epochs: int = Field(default=5, ge=0, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=4096)
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0)
    weight_decay: float = Field(default=1e-5, ge=0, le=1.0)
    seed: int = 0
    rattle: float = Field(default=0.0, ge=0.0, le=0.5)
    workers: int = Field(default=1, ge=1, le=64)
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?|auto)$")


def rattled_vectors(vectors: torch.Tensor, edges: torch.Tensor, n_atoms: int, sigma: float,
                    gen: torch.Generator) -> torch.Tensor:
    """Edge vectors of the same crystals with every site displaced by a Gaussian of standard
    deviation ``sigma`` (Angstrom; each periodic image of a site moves with it).

    Args:
        vectors: (n_edges, 3) Angstrom, receiver -> sender image.
        edges: (2, n_edges) receiver, sender.
        n_atoms: sites in the batch.
        sigma: Angstrom.
        gen: CPU random generator (the same numbers on every device).

    Returns:
        (n_edges, 3) Angstrom.
    """
    shift = (sigma * torch.randn(n_atoms, 3, generator=gen)).to(vectors)
    return vectors + shift[edges[1]] - shift[edges[0]]


class CrystalPaiNN(nn.Module):
    """One member: periodic PaiNN with a formation-energy Gaussian and a hurdle band gap.

    Args:
        features: F, width of scalar and vector features.
        n_layers: interaction blocks.
        n_rbf: radial basis functions.
        cutoff: Angstrom; edges must come from a graph built with the same cutoff.
    """

    elements: torch.Tensor
    y_mean: torch.Tensor
    y_std: torch.Tensor

    def __init__(self, features: int = 64, n_layers: int = 3, n_rbf: int = 20,
                 cutoff: float = 6.0) -> None:
        super().__init__()
        self.features, self.cutoff = features, cutoff
        self.register_buffer("elements", torch.as_tensor(element_table()))
        self.embedding = nn.Embedding(MAX_Z + 1, features)
        nn.init.zeros_(self.embedding.weight)
        self.describe = nn.Sequential(nn.Linear(self.elements.shape[1], features), nn.SiLU(),
                                      nn.Linear(features, features))
        self.rbf = RadialBasis(n_rbf, cutoff)
        self.layers = nn.ModuleList(PaiNNInteraction(features, n_rbf) for _ in range(n_layers))
        self.readout = nn.Sequential(nn.Linear(features, features), nn.SiLU(),
                                     nn.Linear(features, 5))
        # formation energy, conditional gap: scaling of the Gaussian heads
        self.register_buffer("y_mean", torch.zeros(2))
        self.register_buffer("y_std", torch.ones(2))

    def forward(self, z: torch.Tensor, edges: torch.Tensor, vectors: torch.Tensor,
                batch: torch.Tensor, n_structures: int) -> dict[str, torch.Tensor]:
        """Predicts each structure's properties.

        Args:
            z: (n_atoms,) atomic numbers, 1..94.
            edges: (2, n_edges) receiver, sender (indices into the batch's atoms).
            vectors: (n_edges, 3) Angstrom, receiver -> sender image.
            batch: (n_atoms,) structure index, sorted.
            n_structures: structures in the batch.

        Returns:
            ``formation_mean``, ``formation_var`` (eV/atom, eV^2), ``gap_logit`` (logit of a
            non-zero gap), ``gap_mean``, ``gap_var`` (the gap where it is non-zero, eV, eV^2),
            each (n_structures,).
        """
        if bool(((z < 1) | (z > MAX_Z)).any()):
            raise ValueError(f"atomic numbers must be 1..{MAX_Z}, got {sorted(set(z.tolist()))}")
        dist = vectors.norm(dim=-1)
        rbf, unit = self.rbf(dist), vectors / dist[:, None]
        s = self.embedding(z) + self.describe(self.elements[z])
        v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype, device=s.device)
        for layer in self.layers:
            s, v = layer(s, v, edges, rbf, unit)
        out = scatter(self.readout(s), batch, dim=0, dim_size=n_structures, reduce="mean")
        var = nn.functional.softplus(out[:, [1, 4]]) + 1e-6
        return {
            "formation_mean": out[:, 0] * self.y_std[0] + self.y_mean[0],
            "formation_var": var[:, 0] * self.y_std[0] ** 2,
            "gap_logit": out[:, 2],
            "gap_mean": out[:, 3] * self.y_std[1] + self.y_mean[1],
            "gap_var": var[:, 1] * self.y_std[1] ** 2,
        }


def crystal_batches(data: CrystalGraphs, batch_size: int, rng: np.random.Generator | None = None
                    ) -> Iterator[tuple[torch.Tensor, ...]]:
    """Mini-batches (z, edges, vectors, batch, y) with edges indexing the batch's atoms;
    shuffled when ``rng`` is given."""
    order = rng.permutation(len(data)) if rng is not None else np.arange(len(data))
    for start in range(0, len(data), batch_size):
        part = data.subset(order[start : start + batch_size])
        counts = np.diff(part.atom_offsets)
        shift = np.repeat(part.atom_offsets[:-1], np.diff(part.edge_offsets))
        yield (torch.as_tensor(part.z), torch.as_tensor(part.edges + shift[None, :]),
               torch.as_tensor(part.vectors),
               torch.repeat_interleave(torch.arange(len(part)), torch.as_tensor(counts)),
               torch.as_tensor(part.y))


def _gaussian_nll(y: torch.Tensor, mean: torch.Tensor, var: torch.Tensor,
                  scale: torch.Tensor) -> torch.Tensor:
    scaled, scaled_var = (y - mean) / scale, var / scale**2
    return 0.5 * (torch.log(scaled_var) + scaled**2 / scaled_var)


def member_loss(net: CrystalPaiNN, out: dict[str, torch.Tensor], y: torch.Tensor,
                warm: bool) -> torch.Tensor:
    """Training loss of one batch: formation-energy likelihood (squared error while ``warm``),
    cross-entropy of a non-zero gap, and the gap's likelihood on the non-metals; NaN targets
    are left out."""
    energy, gap = y[:, 0], y[:, 1]
    known_e, known_g = torch.isfinite(energy), torch.isfinite(gap)
    loss = torch.zeros((), dtype=out["formation_mean"].dtype, device=y.device)
    if bool(known_e.any()):
        e, m, v = energy[known_e], out["formation_mean"][known_e], out["formation_var"][known_e]
        loss = loss + (((e - m) / net.y_std[0]) ** 2 if warm
                       else _gaussian_nll(e, m, v, net.y_std[0])).mean()
    if bool(known_g.any()):
        g = gap[known_g]
        has_gap = (g > 0).to(g.dtype)
        loss = loss + nn.functional.binary_cross_entropy_with_logits(
            out["gap_logit"][known_g], has_gap)
        open_ = g > 0
        if bool(open_.any()):
            m, v = out["gap_mean"][known_g][open_], out["gap_var"][known_g][open_]
            term = (((g[open_] - m) / net.y_std[1]) ** 2 if warm
                    else _gaussian_nll(g[open_], m, v, net.y_std[1]))
            loss = loss + term.sum() / len(g)  # weighted by the share of non-metals
    return loss


@dataclass(frozen=True)
class _Member:
    index: int
    train: CrystalGraphs
    config: CrystalTrainingConfig
    y_mean: tuple[float, float]
    y_std: tuple[float, float]
    checkpoint: str | None = None


def _network(config: CrystalTrainingConfig) -> CrystalPaiNN:
    return CrystalPaiNN(config.features, config.n_layers, config.n_rbf, config.cutoff)


def _train_member(job: _Member, advance: Advance) -> dict[str, torch.Tensor]:
    """Trains one member; with ``job.checkpoint`` its state is saved every 5 epochs and at the
    end, and a restarted job continues from it (each epoch's batch order depends on the seed,
    the member and the epoch only, so a resumed member trains as an uninterrupted one)."""
    config = job.config
    recipe = config.model_dump(exclude={"device"})
    device = training_device(config.device)
    torch.manual_seed(config.seed * 1000 + job.index)
    net = _network(config)
    net.y_mean.copy_(torch.tensor(job.y_mean))
    net.y_std.copy_(torch.tensor(job.y_std))
    net = net.to(device)
    steps = config.epochs * math.ceil(len(job.train) / config.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=config.learning_rate,
                            weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps,
                                                       eta_min=config.learning_rate / 100)
    first = 0
    if job.checkpoint is not None and Path(job.checkpoint).exists():
        state = torch.load(job.checkpoint, weights_only=True, map_location=device)
        try:  # settings added since the checkpoint was written: their defaults
            saved = CrystalTrainingConfig.model_validate(
                {k: v for k, v in state["config"].items() if k != "device"}).model_dump(
                exclude={"device"})
        except ValidationError:
            saved = dict(state["config"])
        if saved != recipe:
            raise ValueError(f"{job.checkpoint}: a member checkpoint of another recipe; remove it "
                             "or train into another folder")
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        first = int(state["epoch"])
        advance(first)

    def save(epoch: int) -> None:
        if job.checkpoint is not None:
            tmp = Path(f"{job.checkpoint}.tmp")
            torch.save({"config": recipe, "net": net.state_dict(),
                        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch}, tmp)
            tmp.replace(job.checkpoint)

    for epoch in range(first, config.epochs):
        net.train()
        rng = np.random.default_rng([config.seed, job.index, epoch])
        gen = torch.Generator().manual_seed(  # displacements: a stream apart from the order
            int(np.random.SeedSequence([config.seed, job.index, epoch, 1]).generate_state(1)[0]))
        for tensors in crystal_batches(job.train, config.batch_size, rng):
            z, edges, vectors, batch, y = (x.to(device, non_blocking=True) for x in tensors)
            if config.rattle > 0:
                vectors = rattled_vectors(vectors, edges, len(z), config.rattle, gen)
            out = net(z, edges, vectors, batch, len(y))
            loss = member_loss(net, out, y, warm=epoch < config.warmup_epochs)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            sched.step()
        advance(1)
        if (epoch + 1) % 5 == 0 or epoch + 1 == config.epochs:
            save(epoch + 1)
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


class CrystalEnsemble:
    """Trained crystal ensemble with calibrated uncertainty.

    Args:
        config: architecture and training settings.
        members: trained networks.
        calibration: factor on the standard deviation per property of :data:`PROPERTIES`.
        metrics: validation metrics and training facts, for people.
    """

    properties = PROPERTIES

    def __init__(self, config: CrystalTrainingConfig, members: list[CrystalPaiNN],
                 calibration: Sequence[float] | None = None,
                 metrics: dict[str, Any] | None = None) -> None:
        self.config = config
        self.members = members
        self.calibration = np.asarray(calibration if calibration is not None else [1.0, 1.0])
        self.metrics = metrics or {}

    def __repr__(self) -> str:
        return (f"CrystalEnsemble(members={len(self.members)}, features={self.config.features}, "
                f"n_layers={self.config.n_layers}, cutoff={self.config.cutoff})")

    def known_elements(self) -> frozenset[int]:
        """Atomic numbers the members saw in training: their learnt embedding rows start at zero
        and only training moves them."""
        weight = self.members[0].embedding.weight.detach()
        return frozenset(int(z) for z in torch.nonzero(weight.abs().sum(dim=1) > 0).flatten())

    @torch.no_grad()
    def predict_graphs(self, data: CrystalGraphs, batch_size: int = 256, calibrated: bool = True
                       ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                  npt.NDArray[np.float64]]:
        """Predictions for crystal graphs built with the model's cutoff.

        Returns:
            Mean and standard deviation, each (n, 2) in the columns of :data:`PROPERTIES`
            (eV/atom, eV), and the probability of a non-zero gap (n,).
        """
        means, stds, probs = [], [], []
        for member in self.members:
            member.eval()
        for z, edges, vectors, batch, y in crystal_batches(data, batch_size):
            outs = [m(z, edges, vectors, batch, len(y)) for m in self.members]
            fm = torch.stack([o["formation_mean"] for o in outs])
            fv = torch.stack([o["formation_var"] for o in outs])
            p = torch.stack([torch.sigmoid(o["gap_logit"]) for o in outs]).mean(0)
            gm = torch.stack([o["gap_mean"] for o in outs])
            gv = torch.stack([o["gap_var"] for o in outs])
            f_mean, f_var = fm.mean(0), fv.mean(0) + fm.var(0, unbiased=False)
            g_mu = gm.mean(0).clamp(min=0.0)
            g_var = gv.mean(0) + gm.var(0, unbiased=False)
            gap_mean = p * g_mu
            gap_var = (p * (g_var + g_mu**2) - gap_mean**2).clamp(min=1e-12)
            means.append(torch.stack([f_mean, gap_mean], dim=1))
            stds.append(torch.stack([f_var.sqrt(), gap_var.sqrt()], dim=1))
            probs.append(p)
        if not means:
            return np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0)
        mean = torch.cat(means).double().numpy()
        std = torch.cat(stds).double().numpy()
        if calibrated:
            std = std * self.calibration
        return mean, std, torch.cat(probs).double().numpy()

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint (tensors and plain numbers only)."""
        torch.save({
            "format": FORMAT, "config": self.config.model_dump(),
            "calibration": self.calibration.tolist(), "metrics": self.metrics,
            "members": [{k: v.detach().cpu() for k, v in m.state_dict().items()}
                        for m in self.members],
        }, path)

    @classmethod
    def load(cls, path: str | Path) -> CrystalEnsemble:
        """Reads a checkpoint with ``torch.load(weights_only=True)``.

        Raises:
            ValueError: the file is not an invdes crystal-model checkpoint.
        """
        state = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path}: not an invdes crystal-model checkpoint ({FORMAT})")
        config = CrystalTrainingConfig.model_validate(state["config"])
        members = []
        for weights in state["members"]:
            net = _network(config)
            net.load_state_dict(weights)
            net.eval()
            members.append(net)
        return cls(config, members, state["calibration"], state["metrics"])


def roc_auc(labels: npt.NDArray[np.bool_], scores: npt.NDArray[np.float64]) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN without
    both classes."""
    from scipy.stats import rankdata

    pos, neg = int(labels.sum()), int((~labels).sum())
    if pos == 0 or neg == 0:
        return math.nan
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def crystal_metrics(y: npt.NDArray[np.float64], mean: npt.NDArray[np.float64],
                    std: npt.NDArray[np.float64], p_gap: npt.NDArray[np.float64],
                    atoms_per_cell: int = 5) -> dict[str, float]:
    """Held-out metrics: MAE, NLL and 90 % coverage per property (the gap's MAE of the mixture
    mean), the formation energy MAE per cell, the gap MAE of an all-zero guess and of the
    predictive median, the gap MAE on the non-metals, and the metal / non-metal ROC AUC of the
    probability of a gap."""
    out = regression_metrics(y, mean, std, PROPERTIES)
    out["mae_formation_energy_ev_per_cell"] = out["mae_formation_energy_ev_per_atom"] * atoms_per_cell
    gap = y[:, 1]
    known = np.isfinite(gap)
    out["mae_band_gap_ev_all_zero"] = float(np.mean(np.abs(gap[known])))
    nonmetal = known & (gap > 0)
    out["mae_band_gap_ev_nonmetals"] = float(np.mean(np.abs(gap[nonmetal] - mean[nonmetal, 1])))
    # the point prediction that minimises the absolute error: the predictive median, 0 where a
    # gap is less likely than not, else (about) the conditional gap mean / p
    conditional = np.where(p_gap > 0, mean[:, 1] / np.maximum(p_gap, 1e-12), 0.0)
    median = np.where(p_gap >= 0.5, conditional, 0.0)
    out["mae_band_gap_ev_median"] = float(np.mean(np.abs(gap[known] - median[known])))
    out["roc_auc_nonmetal"] = roc_auc(gap[known] > 0, p_gap[known])
    out["share_nonmetal"] = float(np.mean(gap[known] > 0))
    return out


def train_crystal_ensemble(train: CrystalGraphs, val: CrystalGraphs,
                           config: CrystalTrainingConfig, advance: Advance | None = None,
                           checkpoint_dir: str | Path | None = None) -> CrystalEnsemble:
    """Trains the members on ``train``, recalibrates on ``val`` (structures of other
    compositions) and records its metrics.

    Args:
        train, val: graphs built with ``config.cutoff``; targets in :data:`PROPERTIES` order.
        config: the recipe.
        advance: receives one step per member-epoch (``config.members * config.epochs`` in all).
        checkpoint_dir: where each member's training state is kept (``member-K.pt``), so that an
            interrupted training continues where it stopped when called again.

    Raises:
        ValueError: fewer than 4 training structures or no validation structure.
    """
    if len(train) < 4 or len(val) < 1:
        raise ValueError(f"training needs at least 4 training and 1 validation structures, got "
                         f"{len(train)} and {len(val)}")
    energy, gap = train.y[:, 0].astype(float), train.y[:, 1].astype(float)
    open_gap = gap[np.isfinite(gap) & (gap > 0)]
    y_mean = (float(np.nanmean(energy)),
              float(open_gap.mean()) if len(open_gap) else 1.0)
    y_std = (float(np.nanstd(energy)) or 1.0,
             float(open_gap.std()) if len(open_gap) > 1 else 1.0)
    start = time.perf_counter()
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    jobs = [_Member(m, train, config, y_mean, y_std,
                    str(folder / f"member-{m}.pt") if folder is not None else None)
            for m in range(config.members)]
    states = run_jobs(_train_member, jobs, config.workers, advance,
                      "fork" if config.device == "cpu" else "spawn")
    members = []
    for state in states:
        net = _network(config)
        net.load_state_dict(state)
        net.eval()
        members.append(net)
    ensemble = CrystalEnsemble(config, members)
    mean, std, p_gap = ensemble.predict_graphs(val, calibrated=False)
    y_val = val.y.astype(np.float64)
    scale, crossed = interval_scales(y_val, mean, std)
    ensemble.calibration = scale
    ensemble.metrics = {
        "validation": crystal_metrics(y_val, mean, crossed, p_gap),
        "n_train": len(train), "n_validation": len(val), "epochs": config.epochs,
        "train_seconds": time.perf_counter() - start, "calibration": scale.tolist(),
    }
    return ensemble
