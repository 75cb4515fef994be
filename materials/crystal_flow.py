"""Flow matching over periodic cells: species, fractional coordinates and lattice.

The crystal generator (DiffCSP / FlowMM family). A cell is encoded as
* species: one row per site, a continuous one-hot state over the element vocabulary (noise:
  Gaussian of standard deviation ``categorical_noise``, as the molecule generator's atom types);
* fractional coordinates f in [0, 1)^3 on the flat torus: from uniform noise f_0, the path
  f_t = f_0 + t v (mod 1) with v = w(f_1 - f_0) - mean_i w(f_1 - f_0), w(d) = d - round(d) (the
  shortest way round; the mean is taken out because a crystal has no origin: the path ends at a
  translate of f_1, the same crystal);
* lattice: l = (ln a - ln(n)/3, ln b - ln(n)/3, ln c - ln(n)/3, alpha, beta, gamma), standardised
  with the training statistics, from Gaussian noise along straight lines; the network predicts
  the clean l_1 (velocity (l_1 - l_t) / (1 - t)), which keeps the regression target bounded.

The denoiser (:class:`CrystalDenoiser`) reads only lattice parameters (rotation invariant) and
Fourier features of the fractional differences f_j - f_i (invariant under translation and under
the choice of periodic image), with messages over all pairs of sites summed by
``torch_geometric.utils.scatter`` (invariant under site order); cells are put in a canonical
setting before encoding (:func:`canonical_cell`), so the choice of an equivalent cell does not
change what it sees. It predicts the coordinate and lattice velocities and the clean species.

One network does both tasks: de novo generation (species generated) and crystal structure
prediction (species given: their clean one-hot state and a flag, no species loss), each half of
the training batches. Conditioning on property targets uses classifier-free guidance
(:mod:`pipeline.flow`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch
from pydantic import BaseModel, ConfigDict, Field
from pymatgen.core import Lattice, Structure
from rich.progress import Progress
from torch import nn
from torch.nn import functional as F
from torch_geometric.utils import scatter

from materials.cell_encoding import (
    CellSet,
    canonical_cell,
    encode_cells,
    lattice_from_vector,
)
from materials.cell_geometry import metric_tensors, pair_edges, separate_sites, wrap
from materials.validity import charge_neutral_species, composition_valid
from pipeline.devices import training_device
from pipeline.flow import Conditioning, FlowTraining, guide, time_grid, train_flow

FORMAT = "invdes-crystal-generator-1"
PROPERTIES = ("formation_energy_ev_per_atom", "band_gap_ev", "decomposition_energy_ev_per_atom")
"""Conditioning properties: the pool's DFT formation energy and gap, CHGNet's decomposition
energy (:mod:`oracles.chgnet_labels`)."""


class CrystalFlowTraining(BaseModel):
    """Architecture and training settings of the crystal generator.

    Attributes:
        features: width of the site features.
        n_layers: message-passing layers.
        n_frequencies: Fourier frequencies k = 1..K of the fractional differences.
        epochs: passes over the training cells.
        batch_size: cells per step.
        learning_rate: Adam step size (cosine-annealed to 1 % of it).
        p_uncond: probability of dropping all property targets of a cell.
        p_drop_property: probability of dropping each target on its own.
        p_csp: share of cells trained with their species given (structure prediction).
        categorical_noise: standard deviation of the species states' noise.
        weight_species: weight of the species cross-entropy.
        weight_lattice: weight of the lattice velocity error.
        double_share: share of the 5-atom cells that are also trained on as their 10-atom
            rock-salt supercell (the double perovskite's cell), with the same labels; which
            ones is fixed by the structure's position.
        ema_decay: exponential moving average of the weights (:class:`pipeline.flow.FlowTraining`).
        symprec: symmetry tolerance of :func:`canonical_cell`, Angstrom.
        seed: initialisation, batches and noise.
        device: where training runs: ``cpu``, ``cuda`` or ``auto`` (CUDA when available). Not
            part of a training state's identity: a run started on a GPU can be finished on the
            CPU; the trained generator always samples on the CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    features: int = Field(default=128, ge=8, le=1024)
    n_layers: int = Field(default=4, ge=1, le=16)
    n_frequencies: int = Field(default=8, ge=1, le=64)
    epochs: int = Field(default=200, ge=1, le=100_000)
    batch_size: int = Field(default=128, ge=1, le=8192)
    learning_rate: float = Field(default=1e-3, gt=0, le=1.0)
    p_uncond: float = Field(default=0.1, ge=0.0, le=1.0)
    p_drop_property: float = Field(default=0.3, ge=0.0, le=1.0)
    p_csp: float = Field(default=0.5, ge=0.0, le=1.0)
    categorical_noise: float = Field(default=2.0, gt=0.0, le=100.0)
    weight_species: float = Field(default=1.0, ge=0.0)
    weight_lattice: float = Field(default=1.0, ge=0.0)
    double_share: float = Field(default=0.25, ge=0.0, le=1.0)
    ema_decay: float = Field(default=0.999, ge=0.0, lt=1.0)
    symprec: float = Field(default=0.01, gt=0.0, le=1.0)
    seed: int = 0
    device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:\d+)?|auto)$")


class CrystalDenoiser(nn.Module):
    """Invariant message passing over all site pairs of a cell (CSPNet-like).

    Args:
        n_types: element vocabulary size.
        n_conditions: conditioning properties.
        features: site feature width.
        n_layers: message-passing layers.
        n_frequencies: Fourier frequencies of the fractional differences.
    """

    def __init__(self, n_types: int, n_conditions: int, features: int = 128, n_layers: int = 4,
                 n_frequencies: int = 8) -> None:
        super().__init__()
        self.n_types, self.n_frequencies = n_types, n_frequencies
        self.species_in = nn.Linear(n_types, features)
        self.time_in = nn.Sequential(nn.Linear(16, features), nn.SiLU(),
                                     nn.Linear(features, features))
        self.cell_in = nn.Linear(6 + 2 * n_conditions + 2, features)
        edge_dim = 6 * n_frequencies
        self.messages = nn.ModuleList(
            nn.Sequential(nn.Linear(3 * features + edge_dim, features), nn.SiLU(),
                          nn.Linear(features, features), nn.SiLU()) for _ in range(n_layers))
        self.updates = nn.ModuleList(
            nn.Sequential(nn.Linear(2 * features, features), nn.SiLU(),
                          nn.Linear(features, features)) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(features) for _ in range(n_layers))
        self.coord_out = nn.Linear(features, 3)
        self.species_out = nn.Linear(features, n_types)
        self.lattice_out = nn.Sequential(nn.Linear(2 * features, features), nn.SiLU(),
                                         nn.Linear(features, 6))

    def forward(self, species: torch.Tensor, frac: torch.Tensor, lattice: torch.Tensor,
                t: torch.Tensor, condition: torch.Tensor, mask: torch.Tensor,
                given: torch.Tensor, batch: torch.Tensor, edges: torch.Tensor,
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Velocities and species logits.

        Args:
            species: (n_sites, n_types) species states.
            frac: (n_sites, 3) fractional coordinates.
            lattice: (n_cells, 6) standardised lattice states.
            t: (n_cells,) times in [0, 1].
            condition: (n_cells, n_conditions) standardised targets.
            mask: (n_cells, n_conditions) 1 where a target is given.
            given: (n_cells,) 1 where the species are given (structure prediction).
            batch: (n_sites,) cell of each site.
            edges: (2, n_pairs) :func:`pair_edges`.

        Returns:
            Coordinate velocities (n_sites, 3) with zero mean per cell, the predicted clean
            standardised lattice (n_cells, 6) and species logits (n_sites, n_types).
        """
        n_cells = lattice.shape[0]
        freqs = torch.arange(1, 9, dtype=t.dtype, device=t.device)
        temb = torch.cat([torch.sin(math.pi * t[:, None] * freqs),
                          torch.cos(math.pi * t[:, None] * freqs)], dim=-1)
        n_sites = torch.bincount(batch, minlength=n_cells).to(t.dtype)
        cell = torch.cat([lattice, condition * mask, mask, given[:, None],
                          torch.log(n_sites)[:, None]], dim=-1)
        cell_h = self.time_in(temb) + self.cell_in(cell)
        h = self.species_in(species) + cell_h[batch]
        src, dst = edges
        d = frac[dst] - frac[src]
        k = torch.arange(1, self.n_frequencies + 1, dtype=d.dtype, device=d.device)
        angle = 2 * math.pi * d[:, :, None] * k
        edge_feat = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(1)
        f = h.shape[1]
        for message, update, norm in zip(self.messages, self.updates, self.norms, strict=True):
            # message[0] applied to [h_src, h_dst, cell_src, edge] as four products: the site
            # and cell parts per site and per cell, then gathered onto the edges (the same
            # function as the concatenation, a third of the arithmetic per edge)
            layers = cast(nn.Sequential, message)
            first = cast(nn.Linear, layers[0])
            w = first.weight
            site_src, site_dst = h @ w[:, :f].T, h @ w[:, f:2 * f].T
            cell_part = cell_h @ w[:, 2 * f:3 * f].T
            pre = (site_src[src] + site_dst[dst] + cell_part[batch[src]]
                   + F.linear(edge_feat, w[:, 3 * f:], first.bias))
            m = layers[1:](pre)
            agg = scatter(m, src, dim=0, dim_size=h.shape[0], reduce="mean")
            h = norm(h + update(torch.cat([h, agg], dim=-1)))
        v = self.coord_out(h)
        v = v - scatter(v, batch, dim=0, dim_size=n_cells, reduce="mean")[batch]
        pooled = scatter(h, batch, dim=0, dim_size=n_cells, reduce="mean")
        return v, self.lattice_out(torch.cat([pooled, cell_h], dim=-1)), self.species_out(h)


@dataclass
class CellBatch:
    """A mini-batch of encoded cells (tensors; see :class:`CellSet`)."""

    species: torch.Tensor
    frac: torch.Tensor
    lattice: torch.Tensor
    y: torch.Tensor
    batch: torch.Tensor
    counts: torch.Tensor
    edges: torch.Tensor


def make_cell_batch(data: CellSet, index: npt.NDArray[np.int64],
                    lattice_mean: torch.Tensor, lattice_std: torch.Tensor,
                    device: torch.device | None = None) -> CellBatch:
    """Packs cells ``index`` of ``data``, the lattice standardised (with statistics on the
    CPU), then moves the batch to ``device`` (the CPU by default); ``counts`` stays on the
    CPU."""
    counts = torch.as_tensor([len(data.species[i]) for i in index])
    lat = torch.as_tensor(data.lattice[index], dtype=torch.float32)
    b = CellBatch(
        species=torch.as_tensor(np.concatenate([data.species[i] for i in index])),
        frac=torch.as_tensor(np.concatenate([data.frac[i] for i in index]), dtype=torch.float32),
        lattice=(lat - lattice_mean) / lattice_std,
        y=torch.as_tensor(data.y[index], dtype=torch.float32),
        batch=torch.repeat_interleave(torch.arange(len(index)), counts),
        counts=counts, edges=pair_edges(counts))
    if device is None or device.type == "cpu":
        return b
    return CellBatch(species=b.species.to(device), frac=b.frac.to(device),
                     lattice=b.lattice.to(device), y=b.y.to(device), batch=b.batch.to(device),
                     counts=counts, edges=b.edges.to(device))


def flow_loss(model: CrystalDenoiser, b: CellBatch, conditioning: Conditioning,
              config: CrystalFlowTraining, gen: torch.Generator | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training loss of one batch and its parts (coordinate, lattice, species)."""
    g, dev = len(b.counts), b.frac.device
    # noise is drawn on the CPU from ``gen`` (the same numbers on every device), then moved
    t = torch.rand(g, generator=gen).to(dev)
    given = (torch.rand(g, generator=gen) < config.p_csp).float().to(dev)
    f0 = torch.rand(b.frac.shape, generator=gen).to(dev)
    v = wrap(b.frac - f0)
    v = v - scatter(v, b.batch, dim=0, dim_size=g, reduce="mean")[b.batch]
    tb = t[b.batch][:, None]
    f_t = torch.remainder(f0 + tb * v, 1.0)
    l0 = torch.randn(b.lattice.shape, generator=gen).to(dev)
    l_t = (1 - t[:, None]) * l0 + t[:, None] * b.lattice
    s1 = F.one_hot(b.species, model.n_types).float()
    s0 = config.categorical_noise * torch.randn(s1.shape, generator=gen).to(dev)
    s_t = (1 - tb) * s0 + tb * s1
    s_t = torch.where(given[b.batch][:, None] > 0, s1, s_t)
    cond, mask = conditioning.training_mask(b.y, config.p_uncond, config.p_drop_property, gen)
    v_hat, l_hat, logits = model(s_t, f_t, l_t, t, cond, mask, given, b.batch, b.edges)
    coord = ((v_hat - v) ** 2).sum(-1).mean()
    lattice = ((l_hat - b.lattice) ** 2).sum(-1).mean()
    generated = given[b.batch] == 0
    species = (F.cross_entropy(logits[generated], b.species[generated])
               if bool(generated.any()) else torch.zeros((), device=dev))
    loss = coord + config.weight_lattice * lattice + config.weight_species * species
    return loss, {"coord_mse": float(coord.detach()), "lattice_mse": float(lattice.detach()),
                  "species_ce": float(species.detach())}


@dataclass(frozen=True)
class GeneratedCell:
    """One sampled cell.

    Attributes:
        structure: the cell (None where it could not be built, e.g. a degenerate lattice).
        species_probs: (n, n_types) final species probabilities (de novo; empty when given).
        reason: why there is no structure.
        redecoded: the most probable species were not charge neutral and the species are
            the most probable assignment that is (:func:`materials.validity.charge_neutral_species`).
    """

    structure: Structure | None
    species_probs: npt.NDArray[np.float32]
    reason: str = ""
    redecoded: bool = False


class CrystalGenerator:
    """A trained crystal generator with what sampling and reporting need.

    Args:
        config: architecture and training settings.
        model: the trained denoiser.
        vocabulary: element symbols of the species classes.
        conditioning: conditioning properties and their statistics.
        lattice_mean: (6,) mean of the training lattice vectors.
        lattice_std: (6,) their standard deviation.
        size_counts: training cells with n sites, index n.
        reference: per training cell, (reduced formula, species symbols, frac (n, 3), lattice
            vector (6,)): the cells novelty is judged against.
        label_values: per property, the sorted known training labels (for the targets of
            inequality conditions).
        metrics: training facts for people.
    """

    def __init__(self, config: CrystalFlowTraining, model: CrystalDenoiser,
                 vocabulary: tuple[str, ...], conditioning: Conditioning,
                 lattice_mean: torch.Tensor, lattice_std: torch.Tensor,
                 size_counts: torch.Tensor, reference: dict[str, Any],
                 label_values: dict[str, npt.NDArray[np.float64]],
                 metrics: dict[str, Any] | None = None) -> None:
        self.config, self.model, self.vocabulary = config, model, vocabulary
        self.conditioning = conditioning
        self.lattice_mean, self.lattice_std = lattice_mean.float(), lattice_std.float()
        self.size_counts = size_counts.long()
        self.reference = reference
        self.label_values = label_values
        self.metrics = metrics or {}

    def __repr__(self) -> str:
        return (f"CrystalGenerator({len(self.vocabulary)} elements, "
                f"properties={self.conditioning.properties})")

    def reference_keys(self) -> frozenset[str]:
        """Design keys (:func:`materials.structures.design_key`) of the training cells, from
        the checkpoint or, for one without them, computed once."""
        if "keys" not in self.reference:
            from materials.structures import design_key

            self.reference["keys"] = [design_key(s)
                                      for s in reference_structures(self.reference)]
        return frozenset(self.reference["keys"])

    @property
    def properties(self) -> tuple[str, ...]:
        """Conditioning property names."""
        return self.conditioning.properties

    def save(self, path: str | Path) -> None:
        """Writes the checkpoint (tensors and plain values only)."""
        torch.save({
            "format": FORMAT, "config": self.config.model_dump(),
            "vocabulary": list(self.vocabulary), "properties": list(self.properties),
            "y_mean": self.conditioning.mean, "y_std": self.conditioning.std,
            "lattice_mean": self.lattice_mean, "lattice_std": self.lattice_std,
            "size_counts": self.size_counts, "reference": self.reference,
            "label_values": {k: torch.as_tensor(v) for k, v in self.label_values.items()},
            "metrics": self.metrics,
            "weights": {k: v.detach().cpu().half() if v.is_floating_point() else v.cpu()
                        for k, v in self.model.state_dict().items()},
        }, path)

    @classmethod
    def load(cls, path: str | Path) -> CrystalGenerator:
        """Reads a checkpoint with ``torch.load(weights_only=True)``.

        Raises:
            ValueError: not a crystal generator checkpoint.
        """
        state = torch.load(path, weights_only=True, map_location="cpu")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path}: not an invdes crystal generator checkpoint ({FORMAT})")
        config = CrystalFlowTraining.model_validate(state["config"])
        vocabulary, properties = tuple(state["vocabulary"]), tuple(state["properties"])
        model = _network(config, len(vocabulary), len(properties))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v
                               for k, v in state["weights"].items()})
        model.eval()
        return cls(config, model, vocabulary,
                   Conditioning(properties, state["y_mean"], state["y_std"]),
                   state["lattice_mean"], state["lattice_std"], state["size_counts"],
                   state["reference"],
                   {k: v.numpy() for k, v in state["label_values"].items()}, state["metrics"])

    def labelled(self, name: str) -> bool:
        """Whether the generator was trained with labels of ``name`` (guidance on a property
        it never saw labelled would steer nowhere in particular)."""
        return int(self.metrics.get("labelled", {}).get(name, 0)) > 0

    def guidance_targets(self, conditions: Sequence[Any]) -> dict[str, float] | None:
        """Targets for :meth:`sample` from conditions (objects with ``name``, ``op``,
        ``value``), leaving out properties the generator has no labels of; None if none is
        left."""
        targets = {c.name: self.target_for(c.name, c.op, c.value) for c in conditions
                   if self.labelled(c.name)}
        return targets or None

    def target_for(self, name: str, op: str, value: float) -> float:
        """The guidance target of a condition: ``value`` itself for ``=``; for ``<=`` and
        ``>=``, the median of the training labels on the allowed side, so that guidance aims
        inside the region rather than at its edge.

        Raises:
            ValueError: unknown property or operator, or a target the training labels do not
                reach (``=`` more than a quarter of their span outside it; a bound with no label
                on its allowed side): guidance there gave nonsense (cells of one element).
        """
        if name not in self.properties:
            raise ValueError(f"unknown condition {name!r}; the generator knows "
                             f"{', '.join(self.properties)}")
        if op not in ("=", "<=", ">="):
            raise ValueError(f"operator must be =, <= or >=, got {op!r}")
        labels = self.label_values.get(name, np.zeros(0))
        if not len(labels):
            return value
        low, high = float(labels[0]), float(labels[-1])
        margin = 0.25 * (high - low)
        side = labels[labels <= value] if op == "<=" else labels[labels >= value]
        outside = (not low - margin <= value <= high + margin) if op == "=" else not len(side)
        if outside:
            raise ValueError(f"{name}{op}{value:g} lies outside what the generator was trained "
                             f"on: its {len(labels)} labels span {low:.3g} to {high:.3g}")
        return value if op == "=" else float(np.median(side))

    @torch.no_grad()
    def sample(self, n_atoms: Sequence[int], species: Sequence[Sequence[str]] | None = None,
               condition: dict[str, float] | None = None, steps: int = 100,
               guidance: float = 1.0, seed: int = 0, batch_size: int = 512,
               progress: Progress | None = None, anneal: float = 0.0,
               charge_neutral: bool = True, min_distance: float = 0.0,
               separate_from: float = 0.5) -> list[GeneratedCell]:
        """Samples cells.

        Args:
            n_atoms: sites of each cell to sample.
            species: per cell, its element symbols (structure prediction; len = n_atoms of the
                cell); None: de novo.
            condition: standardisable targets, e.g. ``{"band_gap_ev": 1.5}``; None:
                unconditional.
            steps: Euler steps.
            guidance: classifier-free guidance weight w (0: conditional prediction only).
            seed: the same seed gives the same cells.
            batch_size: cells integrated together.
            progress: gets a task advanced once per step of each batch.
            anneal: the coordinate velocity is scaled by 1 + anneal t (FlowMM's inference
                anti-annealing): a network that regresses to the mean velocity moves atoms too
                little late on, and this sharpens where they settle.
            charge_neutral: de novo, where the most probable species of a cell are not
                SMACT-valid, take the most probable assignment among each site's three most
                probable elements that is (charge-aware decoding, as the molecule generator's
                valence-constrained decoding); False: the most probable species as they are.
            min_distance: Angstrom; from time ``separate_from`` on, after each step, sites
                closer than this are pushed apart
                (:func:`~materials.cell_geometry.separate_sites`), so that two sites the flow
                drives to one point part and the later steps place them; 0: never.
            separate_from: flow time (0 noise, 1 data) from which ``min_distance`` acts.

        Raises:
            ValueError: an element outside the vocabulary, or species that do not match
                ``n_atoms``.
        """
        sizes = [int(n) for n in n_atoms]
        index = {el: k for k, el in enumerate(self.vocabulary)}
        given: list[npt.NDArray[np.int64]] | None = None
        if species is not None:
            if len(species) != len(sizes):
                raise ValueError(f"{len(species)} species lists for {len(sizes)} cells")
            given = []
            for k, (els, n) in enumerate(zip(species, sizes, strict=True)):
                unknown = sorted({e for e in els if e not in index})
                if unknown:
                    raise ValueError(f"cell {k}: element(s) {', '.join(unknown)} not known to "
                                     f"the generator (trained on {len(self.vocabulary)} "
                                     "elements of the perov-5 pool)")
                if len(els) != n:
                    raise ValueError(f"cell {k}: {len(els)} species for {n} sites")
                given.append(np.array([index[e] for e in els]))
        gen = torch.Generator().manual_seed(seed)
        n_batches = math.ceil(len(sizes) / batch_size)
        task = (progress.add_task("sampling cells", total=steps * n_batches)
                if progress is not None else None)

        def advance() -> None:
            if progress is not None and task is not None:
                progress.advance(task)

        out: list[GeneratedCell] = []
        for start in range(0, len(sizes), batch_size):
            part = sizes[start : start + batch_size]
            part_given = given[start : start + batch_size] if given is not None else None
            out += self._sample_batch(part, part_given, condition, steps, guidance, gen,
                                      advance, anneal, charge_neutral, min_distance,
                                      separate_from)
        return out

    def _sample_batch(self, sizes: list[int], given: list[npt.NDArray[np.int64]] | None,
                      condition: dict[str, float] | None, steps: int, guidance: float,
                      gen: torch.Generator, on_step: Callable[[], None], anneal: float = 0.0,
                      charge_neutral: bool = True, min_distance: float = 0.0,
                      separate_from: float = 0.5) -> list[GeneratedCell]:
        g = len(sizes)
        counts = torch.as_tensor(sizes)
        batch = torch.repeat_interleave(torch.arange(g), counts)
        edges = pair_edges(counts)
        n = len(batch)
        frac = torch.rand(n, 3, generator=gen)
        lattice = torch.randn(g, 6, generator=gen)
        s = self.config.categorical_noise * torch.randn(n, len(self.vocabulary), generator=gen)
        flag = torch.zeros(g)
        if given is not None:
            s = F.one_hot(torch.as_tensor(np.concatenate(given)), len(self.vocabulary)).float()
            flag = torch.ones(g)
        cond, mask = self.conditioning.tensor(g, condition)
        guided = condition is not None and guidance != 0.0
        grid = time_grid(steps)
        probs = torch.zeros(n, len(self.vocabulary))
        for k in range(steps):
            t = torch.full((g,), float(grid[k]))
            v, l1, logits = self.model(s, frac, lattice, t, cond, mask, flag, batch, edges)
            p = logits.softmax(-1)
            if guided:
                uv, ul1, ulogits = self.model(s, frac, lattice, t, cond, torch.zeros_like(mask),
                                              flag, batch, edges)
                v, l1 = guide(v, uv, guidance), guide(l1, ul1, guidance)
                p = guide(p, ulogits.softmax(-1), guidance).clamp_min(0)
            dt = float(grid[k + 1] - grid[k])
            scale = dt / (1.0 - float(grid[k]))
            frac = torch.remainder(frac + dt * (1.0 + anneal * float(grid[k])) * v, 1.0)
            lattice = lattice + scale * (l1 - lattice)
            if min_distance > 0 and float(grid[k + 1]) >= separate_from:
                metric = metric_tensors(lattice * self.lattice_std + self.lattice_mean, counts)
                frac = separate_sites(frac, metric, batch, edges, min_distance)
            if given is None:
                s = s + scale * (p - s)
                probs = p
            on_step()
        lattice_vectors = (lattice * self.lattice_std + self.lattice_mean).numpy()
        species_idx = s.argmax(-1).numpy()
        starts = np.concatenate([[0], np.cumsum(sizes)])
        cells = []
        for i, size in enumerate(sizes):
            a, b = int(starts[i]), int(starts[i + 1])
            p_i = (probs[a:b].numpy().astype(np.float32) if given is None
                   else np.zeros((0, len(self.vocabulary)), dtype=np.float32))
            chosen, redecoded = [int(j) for j in species_idx[a:b]], False
            if (given is None and charge_neutral
                    and not composition_valid([self.vocabulary[j] for j in chosen])):
                neutral = charge_neutral_species(p_i, self.vocabulary)
                if neutral is not None:
                    chosen, redecoded = neutral, True
            try:
                lat = lattice_from_vector(lattice_vectors[i], size)
                if not np.isfinite(lat.volume) or lat.volume <= 0:
                    raise ValueError(f"degenerate lattice (volume {lat.volume:.3g})")
                structure = Structure(lat, [self.vocabulary[j] for j in chosen],
                                      frac[a:b].numpy().astype(np.float64))
                cells.append(GeneratedCell(structure, p_i, redecoded=redecoded))
            except ValueError as exc:
                cells.append(GeneratedCell(None, p_i, f"no cell: {exc}"))
        return cells


def reference_cells(cells: Sequence[Structure]) -> dict[str, Any]:
    """Compact copies of cells for novelty checks (checkpoint-friendly: lists and tensors):
    species symbols, design keys, fractional coordinates padded to the largest cell, lattice
    lengths (Angstrom) and angles (degrees)."""
    width = max(len(c) for c in cells)
    frac = np.zeros((len(cells), width, 3), dtype=np.float32)
    for i, c in enumerate(cells):
        frac[i, : len(c)] = np.mod(c.frac_coords, 1.0)
    from materials.structures import design_key

    return {"species": [[site.specie.symbol for site in c] for c in cells],
            "keys": [design_key(c) for c in cells],
            "frac": torch.as_tensor(frac),
            "lattice": torch.as_tensor(np.array([c.lattice.abc + c.lattice.angles for c in cells]),
                                       dtype=torch.float32)}


def reference_structures(reference: dict[str, Any]) -> list[Structure]:
    """The cells of :func:`reference_cells`."""
    out = []
    for species, frac, lat in zip(reference["species"], reference["frac"], reference["lattice"],
                                  strict=True):
        out.append(Structure(Lattice.from_parameters(*lat.tolist()), species,
                             frac[: len(species)].numpy().astype(np.float64)))
    return out


def _network(config: CrystalFlowTraining, n_types: int, n_conditions: int) -> CrystalDenoiser:
    return CrystalDenoiser(n_types, n_conditions, config.features, config.n_layers,
                           config.n_frequencies)


def train_crystal_generator(structures: Sequence[Structure], labels: npt.ArrayLike,
                            config: CrystalFlowTraining, properties: tuple[str, ...] = PROPERTIES,
                            progress: Progress | None = None, state_path: Path | None = None,
                            init_from: CrystalGenerator | None = None) -> CrystalGenerator:
    """Trains the crystal generator.

    Args:
        structures: training cells (the pool's training compositions).
        labels: (n, len(properties)) conditioning labels, NaN where unknown.
        config: settings.
        properties: names of the label columns.
        progress: progress bars (encoding, training).
        state_path: resumable training state (:func:`pipeline.flow.train_flow`).
        init_from: a further stage: start from this generator's weights, vocabulary and
            lattice statistics (same architecture), e.g. with newly labelled properties.

    Raises:
        ValueError: fewer than 2 structures, labels of another shape, or ``init_from`` of
            another architecture or without an element of the structures.
    """
    y = np.asarray(labels, dtype=np.float64)
    if len(structures) < 2:
        raise ValueError(f"training needs at least 2 structures, got {len(structures)}")
    if y.shape != (len(structures), len(properties)):
        raise ValueError(f"labels of shape {y.shape}; expected {(len(structures), len(properties))}")
    vocabulary = tuple(sorted({site.specie.symbol for s in structures for site in s},
                              key=lambda el: (len(el), el)))
    if init_from is not None:
        arch = ("features", "n_layers", "n_frequencies")
        if any(getattr(init_from.config, a) != getattr(config, a) for a in arch):
            raise ValueError("--init-from has another architecture: "
                             + ", ".join(f"{a}={getattr(init_from.config, a)}" for a in arch))
        if init_from.properties != properties:
            raise ValueError(f"--init-from is conditioned on {init_from.properties}, not "
                             f"{properties}")
        unknown = sorted(set(vocabulary) - set(init_from.vocabulary))
        if unknown:
            raise ValueError(f"--init-from does not know {', '.join(unknown)}")
        vocabulary = init_from.vocabulary
    originals = [canonical_cell(s, config.symprec) for s in structures]
    data = encode_cells(originals, y, vocabulary, config.double_share, None, progress)
    lattice = torch.as_tensor(data.lattice, dtype=torch.float32)
    lattice_mean = lattice.mean(0)
    lattice_std = lattice.std(0).clamp_min(0.02)
    conditioning = Conditioning.from_labels(properties, y)
    torch.manual_seed(config.seed)
    model = _network(config, len(vocabulary), len(properties))
    device = training_device(config.device)
    earlier: dict[str, Any] = {}
    if init_from is not None:
        model.load_state_dict(init_from.model.state_dict())
        lattice_mean, lattice_std = init_from.lattice_mean, init_from.lattice_std
        known = [torch.isfinite(init_from.conditioning.mean[k]) and
                 init_from.metrics.get("labelled", {}).get(name, 0) > 0
                 for k, name in enumerate(properties)]
        # properties the earlier stage had labels for keep its statistics (the network's
        # inputs mean the same); newly labelled ones get this data's
        conditioning = Conditioning(
            properties,
            torch.where(torch.tensor(known), init_from.conditioning.mean, conditioning.mean),
            torch.where(torch.tensor(known), init_from.conditioning.std, conditioning.std))
        earlier = {"init_from": {k: v for k, v in init_from.metrics.items()
                                 if k != "init_from"}}

    model = model.to(device)

    def loss_fn(net: nn.Module, index: npt.NDArray[np.int64], gen: torch.Generator
                ) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(net, CrystalDenoiser)
        return flow_loss(net, make_cell_batch(data, index, lattice_mean, lattice_std, device),
                         conditioning, config, gen)

    # the device is left out: a state written on a GPU continues on the CPU and back
    identity = {"config": config.model_dump(exclude={"device"}), "n_cells": len(data),
                "vocabulary": list(vocabulary),
                "init_from": earlier.get("init_from", {}).get("train_seconds")}
    run = train_flow(model, len(data), loss_fn,
                     FlowTraining(config.epochs, config.batch_size, config.learning_rate,
                                  config.ema_decay, config.seed),
                     identity=identity, state_path=state_path, progress=progress,
                     label="training crystal generator")
    reference = reference_cells(originals)
    sizes = torch.bincount(torch.as_tensor([len(s) for s in structures]))
    label_values = {name: np.sort(y[:, k][np.isfinite(y[:, k])])
                    for k, name in enumerate(properties)}
    metrics = {"n_structures": len(structures), "n_cells": len(data),
               "train_seconds": run.seconds, "final_loss": run.last_loss, **earlier,
               "device": str(device),
               "labelled": {name: int(np.isfinite(y[:, k]).sum())
                            for k, name in enumerate(properties)}}
    return CrystalGenerator(config, model.cpu(), vocabulary, conditioning, lattice_mean, lattice_std,
                            sizes, reference, label_values, metrics)
