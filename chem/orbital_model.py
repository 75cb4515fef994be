"""Where the frontier orbitals sit: per-heavy-atom HOMO and LUMO shares from an equivariant network.

Each member of a deep ensemble is a PaiNN trunk (:class:`chem.painn.PaiNN`) with a per-atom
head giving two invariant logits per atom; a softmax over the heavy atoms of each molecule turns
them into the shares p_H(i) and p_L(i), so that they sum to 1 by construction. Members are
trained by cross-entropy against the oracle's shares (:mod:`oracles.orbital_labels`), which is
the Kullback-Leibler divergence between the two distributions up to a constant.

The descriptors (:data:`pipeline.orbital_shares.DESCRIPTORS`: element shares, participation
ratios, frontier overlap) are computed from each member's shares with the oracle's own
arithmetic; their mean over the members is the prediction and their spread the uncertainty,
multiplied by a per-output factor fitted on held-out molecules so that 90 % intervals cover
90 % (recalibration, as for :mod:`chem.property_model`). Element shares of an element a
molecule does not have are exactly 0 with no uncertainty, and are left out of the metrics.

Checkpoints are plain dictionaries of tensors and numbers, loaded with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field
from rich.progress import Progress
from torch import nn
from torch_geometric.utils import scatter

from chem.datasets import GeometryMethod, _embed, subset_atoms
from chem.molecules import EMBED_SEED
from chem.painn import PaiNN
from pipeline.devices import training_device
from pipeline.orbital_shares import DESCRIPTORS, SHARE_ELEMENTS, orbital_descriptors
from pipeline.uncertainty import Z90, interval_scales

FORMAT = "invdes-orbital-shares-1"
SHARES = ("p_homo", "p_lumo")
"""The per-heavy-atom outputs, in the order of the network's two logits."""

_SYMBOL = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}

Array = npt.NDArray[np.float64]


class OrbitalTrainingConfig(BaseModel):
    """How the orbital-share ensemble is built and trained.

    The defaults match the shipped energy model's trunk (:mod:`chem.property_model`), which
    the members start from (:func:`trunk_states`).

    Attributes:
        features: PaiNN feature width.
        n_layers: interaction blocks.
        n_rbf: radial basis functions.
        cutoff: interaction cutoff, Angstrom.
        members: networks in the ensemble.
        epochs: passes over the training set per member.
        batch_size: molecules per step.
        learning_rate: Adam step size (cosine-annealed to 1 % of it).
        validation_fraction: held out for recalibration and reporting.
        seed: seed of the split and of the members' initialisation.
        device: ``cpu``, ``cuda`` or ``auto``; checkpoints always load on the CPU.
        geometry: the 3D input made from a SMILES (``mmff`` or ``xtb``), in training and in
            prediction.
        conformers: embedded conformers per training molecule (other embedding seeds), one
            per epoch in turn: the labels belong to the molecule, not to one embedding, and
            seeing several teaches the network so (on 849 labelled molecules, 4 instead of 1
            lowered the held-out share MAE from 0.047 to 0.041). Prediction embeds once, with
            the default seed.
        overlap_weight: weight of an auxiliary loss, the mean absolute error of each
            molecule's ``frontier_overlap`` computed from the predicted shares, added to the
            cross-entropy (0: cross-entropy alone). The overlap is a sum of square roots of
            products of shares, so it hangs on the small shares that the cross-entropy barely
            weighs; this term weighs them by what they do to the overlap (on 2,242 labelled
            molecules, weight 1 lowered the held-out overlap MAE from 0.084 to 0.081 and its
            mean bias from +0.045 to +0.029).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    features: int = Field(default=96, ge=8, le=512)
    n_layers: int = Field(default=3, ge=1, le=8)
    n_rbf: int = Field(default=20, ge=4, le=64)
    cutoff: float = Field(default=5.0, gt=1.0, le=12.0)
    members: int = Field(default=4, ge=2, le=32)
    epochs: int = Field(default=60, ge=1, le=10_000)
    batch_size: int = Field(default=32, ge=1, le=4096)
    learning_rate: float = Field(default=5e-4, gt=0, le=1.0)
    validation_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    seed: int = 0
    device: str = "cpu"
    geometry: GeometryMethod = "mmff"
    conformers: int = Field(default=4, ge=1, le=32)
    overlap_weight: float = Field(default=0.0, ge=0.0, le=100.0)


@dataclass(frozen=True)
class ShareDataset:
    """Molecules with per-heavy-atom share targets, as flat arrays.

    Attributes:
        z: atomic numbers of all atoms, (n_atoms_total,); each molecule's heavy atoms come
            first, in the order of its SMILES.
        pos: positions, (n_atoms_total, 3) Angstrom.
        offsets: first atom of each molecule, (n_molecules + 1,).
        shares: p_H and p_L per atom, (n_atoms_total, 2); NaN on hydrogens and where unknown.
        smiles: the molecules, (n_molecules,).
        failures: SMILES left out, each with the reason.
        other_pos: further conformers, (n_conformers - 1, n_atoms_total, 3) Angstrom, the
            atoms in the order of ``pos`` (a molecule that did not embed again repeats
            ``pos``); None: one conformer.
    """

    z: npt.NDArray[np.int64]
    pos: npt.NDArray[np.float32]
    offsets: npt.NDArray[np.int64]
    shares: npt.NDArray[np.float32]
    smiles: npt.NDArray[np.str_]
    failures: dict[str, str] = field(default_factory=dict, compare=False)
    other_pos: npt.NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return len(self.smiles)

    @property
    def n_conformers(self) -> int:
        """Conformers per molecule."""
        return 1 if self.other_pos is None else 1 + len(self.other_pos)

    def conformer(self, k: int) -> npt.NDArray[np.float32]:
        """Positions of conformer ``k % n_conformers``, (n_atoms_total, 3) Angstrom."""
        k %= self.n_conformers
        return self.pos if k == 0 or self.other_pos is None else self.other_pos[k - 1]

    def subset(self, index: npt.NDArray[np.int64]) -> ShareDataset:
        """The molecules at ``index``, in that order."""
        atoms, offsets = subset_atoms(self.offsets, index)
        return ShareDataset(self.z[atoms], self.pos[atoms], offsets, self.shares[atoms],
                            self.smiles[index],
                            other_pos=None if self.other_pos is None else self.other_pos[:, atoms])

    def heavy_symbols(self, k: int) -> list[str]:
        """Elements of molecule k's heavy atoms, in order."""
        z = self.z[self.offsets[k]:self.offsets[k + 1]]
        return [_SYMBOL[int(v)] for v in z if v > 1]


def share_dataset(smiles: Sequence[str], p_homo: Sequence[Array] | None = None,
                  p_lumo: Sequence[Array] | None = None, method: GeometryMethod = "mmff",
                  progress: Progress | None = None, conformers: int = 1) -> ShareDataset:
    """Embeds each SMILES (as the energy model does) and attaches its heavy-atom shares.

    Args:
        smiles: the molecules.
        p_homo, p_lumo: per molecule, its shares in the order of the SMILES's heavy atoms;
            None: unknown (for prediction).
        method: ``mmff`` or ``xtb`` geometries.
        progress: gets a task advanced once per molecule.
        conformers: embeddings per molecule, the first with the default seed (the one
            prediction uses), the others with further seeds (``other_pos``).

    Molecules that cannot be embedded, or whose share count is not their heavy-atom count,
    are left out with their reason in ``failures``.
    """
    if conformers < 1:
        raise ValueError(f"conformers must be >= 1, got {conformers}")
    z_all, pos_all, shares_all, kept, counts = [], [], [], [], []
    other_all: list[list[npt.NDArray[np.float32]]] = []
    failures: dict[str, str] = {}
    task = progress.add_task("embedding 3D geometries", total=len(smiles)) if progress else None
    for k, text in enumerate(smiles):
        embedded = _embed(text, method)
        if progress is not None and task is not None:
            progress.advance(task)
        if isinstance(embedded, str):
            failures[text] = embedded
            continue
        z, positions = embedded
        n_heavy = sum(1 for v in z if v > 1)
        target = np.full((len(z), 2), np.nan, dtype=np.float32)
        if p_homo is not None and p_lumo is not None:
            if not len(p_homo[k]) == len(p_lumo[k]) == n_heavy:
                failures[text] = (f"{len(p_homo[k])} HOMO and {len(p_lumo[k])} LUMO shares for "
                                  f"{n_heavy} heavy atoms")
                continue
            target[:n_heavy, 0] = p_homo[k]
            target[:n_heavy, 1] = p_lumo[k]
        z_all.append(np.asarray(z, dtype=np.int64))
        pos_all.append(np.asarray(positions, dtype=np.float32))
        other_all.append([_other_conformer(text, method, z, pos_all[-1], c)
                          for c in range(1, conformers)])
        shares_all.append(target)
        kept.append(text)
        counts.append(len(z))
    return ShareDataset(
        np.concatenate([np.zeros(0, dtype=np.int64), *z_all]),
        np.concatenate([np.zeros((0, 3), dtype=np.float32), *pos_all]),
        np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64),
        np.concatenate([np.zeros((0, 2), dtype=np.float32), *shares_all]),
        np.asarray(kept, dtype=np.str_), failures,
        np.stack([np.concatenate([np.zeros((0, 3), dtype=np.float32),
                                  *(views[c] for views in other_all)])
                  for c in range(conformers - 1)]) if conformers > 1 else None)


def _other_conformer(smiles: str, method: GeometryMethod, z: list[int],
                     first: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.float32]:
    """Conformer ``k`` (k >= 1) of a molecule whose first embedding gave ``z`` and ``first``;
    ``first`` again where it does not embed."""
    embedded = _embed(smiles, method, seed=EMBED_SEED + 7919 * k)
    if isinstance(embedded, str) or list(embedded[0]) != list(z):
        return first
    return np.asarray(embedded[1], dtype=np.float32)


def _batches(data: ShareDataset, batch_size: int, rng: np.random.Generator | None = None,
             conformer: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                   torch.Tensor, npt.NDArray[np.int64]]]:
    """Mini-batches (z, pos, batch, shares, molecule indices), positions of ``conformer``."""
    order = rng.permutation(len(data)) if rng is not None else np.arange(len(data))
    pos = data.conformer(conformer)
    for start in range(0, len(data), batch_size):
        index = order[start:start + batch_size]
        counts = np.diff(data.offsets)[index]
        atoms = np.concatenate([np.arange(data.offsets[i], data.offsets[i + 1]) for i in index])
        yield (torch.as_tensor(data.z[atoms]), torch.as_tensor(pos[atoms]),
               torch.repeat_interleave(torch.arange(len(index)), torch.as_tensor(counts)),
               torch.as_tensor(data.shares[atoms]), index)


class OrbitalShareNet(nn.Module):
    """PaiNN trunk and a per-atom head: HOMO and LUMO shares of each heavy atom.

    Args:
        features, n_layers, n_rbf, cutoff: the trunk's (see :class:`chem.painn.PaiNN`).
    """

    def __init__(self, features: int = 64, n_layers: int = 3, n_rbf: int = 20,
                 cutoff: float = 5.0) -> None:
        super().__init__()
        self.trunk = PaiNN(n_outputs=1, features=features, n_layers=n_layers, n_rbf=n_rbf,
                           cutoff=cutoff)
        self.head = nn.Sequential(nn.Linear(features, features), nn.SiLU(),
                                  nn.Linear(features, 2))

    def forward(self, z: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Shares and log-shares of every atom.

        Args:
            z: (n_atoms,) atomic numbers.
            pos: (n_atoms, 3) Angstrom.
            batch: (n_atoms,) molecule index, sorted.

        Returns:
            shares (n_atoms, 2), p_H and p_L, 0 on hydrogens, summing to 1 over each molecule's
            heavy atoms; and their logarithms (n_atoms, 2), -inf on hydrogens.
        """
        logits = self.head(self.trunk.atom_features(z, pos, batch))
        heavy = (z > 1)[:, None]
        logits = logits.masked_fill(~heavy, float("-inf"))
        n_molecules = int(batch.max()) + 1 if batch.numel() else 0
        top = scatter(logits, batch, dim=0, dim_size=n_molecules, reduce="max")
        shifted = logits - top[batch]
        log_norm = torch.log(scatter(shifted.exp(), batch, dim=0, dim_size=n_molecules,
                                     reduce="sum"))
        log_shares = shifted - log_norm[batch]
        return log_shares.exp(), log_shares


@dataclass(frozen=True)
class OrbitalPrediction:
    """Predicted orbital location of one molecule.

    Attributes:
        heavy_symbols: elements of its heavy atoms, in SMILES order.
        p_homo, p_lumo: ensemble-mean shares per heavy atom, (n_heavy,), each summing to 1.
        p_homo_std, p_lumo_std: their calibrated standard deviations, (n_heavy,).
        descriptors: descriptor -> (mean, calibrated standard deviation).
    """

    heavy_symbols: tuple[str, ...]
    p_homo: Array
    p_lumo: Array
    p_homo_std: Array
    p_lumo_std: Array
    descriptors: dict[str, tuple[float, float]]


def _informative(names: Sequence[str], symbols: Sequence[str]) -> npt.NDArray[np.bool_]:
    """Which descriptors say something for a molecule: an element share only where it has the
    element (otherwise it is 0 by definition)."""
    present = set(symbols)
    return np.array([not (n.startswith(("homo_share_", "lumo_share_"))
                          and n.rsplit("_", 1)[1] not in present) for n in names])


class OrbitalShareEnsemble:
    """Trained ensemble with calibrated uncertainty.

    Args:
        config: the architecture and training settings.
        members: trained networks.
        calibration: factor on the ensemble's standard deviation: one per share (p_H, p_L)
            then one per descriptor, in :data:`DESCRIPTORS` order.
        metrics: validation metrics and training facts, for people.
    """

    def __init__(self, config: OrbitalTrainingConfig, members: list[OrbitalShareNet],
                 calibration: Sequence[float] | None = None,
                 metrics: dict[str, Any] | None = None) -> None:
        self.config = config
        self.members = members
        n = len(SHARES) + len(DESCRIPTORS)
        self.calibration = np.asarray(calibration if calibration is not None else [1.0] * n,
                                      dtype=float)
        self.metrics = metrics or {}

    def __repr__(self) -> str:
        return (f"OrbitalShareEnsemble(members={len(self.members)}, "
                f"features={self.config.features}, n_layers={self.config.n_layers})")

    @property
    def properties(self) -> tuple[str, ...]:
        """The molecule-level outputs: the descriptors."""
        return tuple(DESCRIPTORS)

    @torch.no_grad()
    def member_shares(self, data: ShareDataset, batch_size: int = 256) -> npt.NDArray[np.float64]:
        """Every member's shares, (n_members, n_atoms_total, 2)."""
        out = np.zeros((len(self.members), len(data.z), 2))
        for net in self.members:
            net.eval()
        for z, pos, batch, _, index in _batches(data, batch_size):
            atoms = np.concatenate([np.arange(data.offsets[i], data.offsets[i + 1])
                                    for i in index])
            for m, net in enumerate(self.members):
                out[m, atoms] = net(z, pos, batch)[0].double().numpy()
        return out

    def predict_dataset(self, data: ShareDataset, calibrated: bool = True
                        ) -> tuple[Array, Array, Array, Array]:
        """Shares and descriptors with their standard deviations.

        Returns:
            share mean and std per atom (n_atoms_total, 2), 0 on hydrogens; descriptor mean
            and std per molecule (n_molecules, n_descriptors).
        """
        shares = self.member_shares(data)
        share_mean, share_std = shares.mean(0), shares.std(0)
        names = list(DESCRIPTORS)
        per_member = np.zeros((len(self.members), len(data), len(names)))
        for k in range(len(data)):
            a, b = data.offsets[k], data.offsets[k + 1]
            heavy = data.z[a:b] > 1
            symbols = data.heavy_symbols(k)
            for m in range(len(self.members)):
                d = orbital_descriptors(symbols, shares[m, a:b][heavy, 0],
                                        shares[m, a:b][heavy, 1])
                per_member[m, k] = [d[n] for n in names]
        d_mean, d_std = per_member.mean(0), per_member.std(0)
        if calibrated:
            share_std = share_std * self.calibration[:2]
            d_std = d_std * self.calibration[2:]
        return share_mean, share_std, d_mean, d_std

    def predict(self, data: ShareDataset) -> list[OrbitalPrediction]:
        """One prediction per molecule of ``data``."""
        s_mean, s_std, d_mean, d_std = self.predict_dataset(data)
        out = []
        for k in range(len(data)):
            a, b = data.offsets[k], data.offsets[k + 1]
            heavy = np.flatnonzero(data.z[a:b] > 1) + a
            out.append(OrbitalPrediction(
                tuple(data.heavy_symbols(k)), s_mean[heavy, 0], s_mean[heavy, 1],
                s_std[heavy, 0], s_std[heavy, 1],
                {n: (float(d_mean[k, j]), float(d_std[k, j]))
                 for j, n in enumerate(DESCRIPTORS)}))
        return out

    def predict_smiles(self, smiles: Sequence[str], progress: Progress | None = None
                       ) -> tuple[dict[str, OrbitalPrediction], dict[str, str]]:
        """Predictions for each distinct SMILES (from the geometry the model was trained on),
        and the reason for each SMILES without one."""
        distinct = list(dict.fromkeys(smiles))
        data = share_dataset(distinct, method=self.config.geometry, progress=progress)
        return dict(zip(data.smiles.tolist(), self.predict(data), strict=True)), data.failures

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint (tensors and plain numbers only)."""
        torch.save({
            "format": FORMAT,
            "config": self.config.model_dump(),
            "calibration": self.calibration.tolist(),
            "metrics": self.metrics,
            "members": [{k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
                         for k, v in m.state_dict().items()} for m in self.members],
        }, path)

    @classmethod
    def load(cls, path: str | Path) -> OrbitalShareEnsemble:
        """Reads a checkpoint with ``torch.load(weights_only=True)``.

        Raises:
            ValueError: the file is not an orbital-share checkpoint.
        """
        state = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path}: not an invdes orbital-share checkpoint ({FORMAT})")
        config = OrbitalTrainingConfig.model_validate(state["config"])
        members = []
        for weights in state["members"]:
            net = _network(config)
            net.load_state_dict({k: v.float() if v.is_floating_point() else v
                                 for k, v in weights.items()})
            net.eval()
            members.append(net)
        return cls(config, members, state["calibration"], state["metrics"])


def _network(config: OrbitalTrainingConfig) -> OrbitalShareNet:
    return OrbitalShareNet(config.features, config.n_layers, config.n_rbf, config.cutoff)


def _train_member(index: int, train: ShareDataset, config: OrbitalTrainingConfig,
                  progress: Progress | None, task: Any,
                  trunk: dict[str, torch.Tensor] | None = None) -> OrbitalShareNet:
    """One member trained by cross-entropy against the target shares, its trunk starting from
    ``trunk`` (a PaiNN state dict of the same width and depth) when given; epoch e sees the
    molecules' conformer e (modulo their number)."""
    torch.manual_seed(config.seed * 1000 + index)
    device = training_device(config.device)
    net = _network(config)
    if trunk is not None:
        shared = {k: v for k, v in trunk.items()
                  if not k.startswith("readout.") and k not in ("y_mean", "y_std")}
        missing, unexpected = net.trunk.load_state_dict(shared, strict=False)
        if unexpected or any(not k.startswith("readout.") and k not in ("y_mean", "y_std")
                             for k in missing):
            raise ValueError(f"the trunk checkpoint does not fit: missing {missing}, "
                             f"unexpected {unexpected}")
    net = net.to(device)
    steps = config.epochs * math.ceil(len(train) / config.batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=config.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps,
                                                       eta_min=config.learning_rate / 100)
    rng = np.random.default_rng([config.seed, index])
    for epoch in range(config.epochs):
        net.train()
        for z, pos, batch, target, index_ in _batches(train, config.batch_size, rng, epoch):
            z, pos, batch, target = z.to(device), pos.to(device), batch.to(device), target.to(device)
            shares, log_shares = net(z, pos, batch)
            known = torch.isfinite(target)
            loss = -(target[known] * log_shares[known]).sum() / (2 * len(index_))
            if config.overlap_weight > 0:
                loss = loss + config.overlap_weight * _overlap_error(
                    shares, target, z, batch, len(index_))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            sched.step()
            if progress is not None and task is not None:
                progress.advance(task)
    net.to("cpu").eval()
    return net


def _overlap_error(shares: torch.Tensor, target: torch.Tensor, z: torch.Tensor,
                   batch: torch.Tensor, n_molecules: int) -> torch.Tensor:
    """Mean absolute error of ``frontier_overlap`` over the molecules of a batch.

    Args:
        shares: predicted (n_atoms, 2) p_H and p_L, 0 on hydrogens.
        target: labelled (n_atoms, 2), NaN where unknown (hydrogens).
        z: (n_atoms,) atomic numbers.
        batch: (n_atoms,) molecule index.
        n_molecules: molecules in the batch.
    """
    heavy = (z > 1).to(shares.dtype)
    # the small offset keeps the gradient of the square root finite where a share is 0
    predicted = torch.sqrt(shares[:, 0] * shares[:, 1] + 1e-10) * heavy
    truth = torch.sqrt(torch.nan_to_num(target[:, 0] * target[:, 1]).clamp(min=0.0)) * heavy
    per_molecule = scatter(predicted - truth, batch, dim=0, dim_size=n_molecules, reduce="sum")
    return per_molecule.abs().mean()


def target_descriptors(data: ShareDataset) -> Array:
    """The descriptors of the target shares, (n_molecules, n_descriptors); NaN for element
    shares of elements a molecule does not have."""
    names = list(DESCRIPTORS)
    out = np.full((len(data), len(names)), np.nan)
    for k in range(len(data)):
        a, b = data.offsets[k], data.offsets[k + 1]
        heavy = data.z[a:b] > 1
        symbols = data.heavy_symbols(k)
        d = orbital_descriptors(symbols, data.shares[a:b][heavy, 0].astype(float),
                                data.shares[a:b][heavy, 1].astype(float))
        keep = _informative(names, symbols)
        out[k, keep] = [d[n] for n, k2 in zip(names, keep, strict=True) if k2]
    return out


def evaluate(ensemble: OrbitalShareEnsemble, data: ShareDataset, calibrated: bool = True,
             cross_fit: bool = False) -> tuple[dict[str, float], Array]:
    """Errors and interval coverage on labelled molecules the model did not train on.

    Args:
        ensemble: the model.
        data: molecules with target shares.
        calibrated: apply the ensemble's calibration.
        cross_fit: ignore the stored calibration and score each half of ``data`` with factors
            fitted on the other half (for the validation split the factors came from).

    Returns:
        Metrics (``share_mae``: mean absolute error of p_H and p_L over heavy atoms;
        ``share_coverage90``; per descriptor ``<name>_mae`` and ``<name>_coverage90`` over the
        molecules where it is informative) and the fitted factors (as ``calibration``).
    """
    s_mean, s_std, d_mean, d_std = ensemble.predict_dataset(data, calibrated=calibrated
                                                            and not cross_fit)
    heavy = data.z > 1
    y_share = data.shares[heavy].astype(float)
    y_desc = target_descriptors(data)
    # shares and descriptors have different rows: fit their factors separately
    share_scale, share_std = interval_scales(y_share, s_mean[heavy], s_std[heavy])
    desc_scale, desc_std = interval_scales(y_desc, d_mean, d_std)
    if not cross_fit:
        share_std, desc_std = s_std[heavy], d_std
    metrics: dict[str, float] = {}
    share_err = np.abs(y_share - s_mean[heavy])
    metrics["share_mae"] = float(share_err.mean())
    metrics["share_homo_mae"] = float(share_err[:, 0].mean())
    metrics["share_lumo_mae"] = float(share_err[:, 1].mean())
    metrics["share_coverage90"] = float((share_err <= Z90 * share_std).mean())
    for j, name in enumerate(DESCRIPTORS):
        known = np.isfinite(y_desc[:, j])
        if not known.any():
            continue
        err = np.abs(y_desc[known, j] - d_mean[known, j])
        metrics[f"{name}_mae"] = float(err.mean())
        metrics[f"{name}_coverage90"] = float((err <= Z90 * desc_std[known, j]).mean())
        metrics[f"{name}_n"] = int(known.sum())
    scale = np.concatenate([share_scale, np.nan_to_num(desc_scale, nan=1.0)])
    return metrics, scale


def is_test_id(identifier: str, fraction: float) -> bool:
    """Whether a labelled molecule belongs to the test split that training never sees: a fixed
    function of its id (SHA-1), so that the split does not move as labels accumulate."""
    import hashlib

    digest = int(hashlib.sha1(identifier.encode()).hexdigest()[:8], 16)
    return digest % 10_000 < round(fraction * 10_000)


def trunk_states(path: str | Path, config: OrbitalTrainingConfig) -> list[dict[str, torch.Tensor]]:
    """The PaiNN trunks of an energy property-model checkpoint (:mod:`chem.property_model`),
    to start the orbital members from what the energy model learnt of molecules.

    Raises:
        ValueError: not such a checkpoint, or another width, depth, radial basis or cutoff.
    """
    state = torch.load(path, weights_only=True, map_location="cpu")
    if not isinstance(state, dict) or "members" not in state or "config" not in state:
        raise ValueError(f"{path}: not a property-model checkpoint")
    theirs = state["config"]
    differ = [k for k in ("features", "n_layers", "n_rbf", "cutoff")
              if theirs.get(k) != getattr(config, k)]
    if differ:
        raise ValueError(f"{path}: its {', '.join(f'{k} {theirs.get(k)}' for k in differ)} "
                         f"differ from the orbital model's "
                         f"{', '.join(f'{k} {getattr(config, k)}' for k in differ)}")
    return [dict(m) for m in state["members"]]


def train_orbital_ensemble(data: ShareDataset, config: OrbitalTrainingConfig,
                           progress: Progress | None = None,
                           trunks: Sequence[dict[str, torch.Tensor]] | None = None
                           ) -> OrbitalShareEnsemble:
    """Trains the members, recalibrates on the validation split and records its metrics.

    Args:
        data: labelled molecules, with ``config.conformers`` conformers each
            (``share_dataset(..., conformers=config.conformers)``); the metrics record how many
            it had.
        config: architecture and training.
        progress: gets a task advanced once per step.
        trunks: PaiNN states to start the members' trunks from (member m from
            ``trunks[m % len(trunks)]``, see :func:`trunk_states`); None: random.
    """
    if len(data) < 10:
        raise ValueError(f"training needs at least 10 labelled molecules, got {len(data)}")
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(data))
    n_val = max(2, round(config.validation_fraction * len(data)))
    val, train = data.subset(order[:n_val]), data.subset(order[n_val:])
    steps = config.epochs * math.ceil(len(train) / config.batch_size)
    task = progress.add_task("training orbital shares", total=config.members * steps) \
        if progress is not None else None
    start = time.perf_counter()
    members = [_train_member(m, train, config, progress, task,
                             trunks[m % len(trunks)] if trunks else None)
               for m in range(config.members)]
    ensemble = OrbitalShareEnsemble(config, members)
    metrics, scale = evaluate(ensemble, val, cross_fit=True)
    ensemble.calibration = scale
    ensemble.metrics = {"validation": metrics, "n_train": len(train), "n_validation": len(val),
                        "epochs": config.epochs, "train_seconds": time.perf_counter() - start,
                        "calibration": scale.tolist(), "pretrained_trunk": bool(trunks),
                        "conformers": train.n_conformers}
    return ensemble


__all__ = [
    "SHARES",
    "SHARE_ELEMENTS",
    "OrbitalPrediction",
    "OrbitalShareEnsemble",
    "OrbitalShareNet",
    "OrbitalTrainingConfig",
    "ShareDataset",
    "evaluate",
    "is_test_id",
    "share_dataset",
    "target_descriptors",
    "train_orbital_ensemble",
    "trunk_states",
]
