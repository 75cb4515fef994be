"""``invdes train`` and ``invdes predict``: the pretrained models."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.progress import Progress

from flows.cli.common import (
    CRYSTAL_GENERATOR,
    CRYSTAL_MODEL,
    GENERATOR,
    ORBITAL_MODEL,
    PROPERTY_MODEL,
    STABILITY_MODEL,
    err,
    fail,
    fitted_table,
    out,
    training_progress,
)

train_app = typer.Typer(help="Train the models that campaigns use.", no_args_is_help=True)

@train_app.command("surrogate")
def train_surrogate(
    data: Annotated[Path, typer.Option(help="CSV with smiles, homo_ev, lumo_ev, gap_ev "
                                            "(e.g. the QM9 pool's train_pool.csv.gz).")],
    out: Annotated[Path, typer.Option(help="Checkpoint to write.",
                                      show_default="the shipped chem/data/property_model.pt")
                   ] = PROPERTY_MODEL,
    limit: Annotated[int | None, typer.Option(min=10, help="Use only the first N rows.")] = None,
    holdout: Annotated[int, typer.Option(min=0, help="Leave the last N rows out of training "
                                                      "(for bench/surrogate.py).")] = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    members: Annotated[int, typer.Option(min=1, help="Networks in the ensemble.")] = 3,
    features: Annotated[int, typer.Option(min=8)] = 64,
    layers: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    learning_rate: Annotated[float, typer.Option()] = 5e-4,
    seed: Annotated[int, typer.Option()] = 0,
    processes: Annotated[int, typer.Option(min=1, help="Processes for 3D embedding.")] = 2,
    workers: Annotated[int, typer.Option(
        min=1, help="Members trained at once, one single-threaded process each (CPU).")] = 1,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    geometry: Annotated[str, typer.Option(
        help="3D input made from each SMILES: mmff (RDKit ETKDG + MMFF94) or xtb (that "
             "geometry relaxed with GFN2-xTB, about 0.2 s per molecule).")] = "mmff",
    geometries: Annotated[Path | None, typer.Option(
        help="Cache of the embedded 3D geometries (.npz): read when it exists and matches the "
             "rows used and --geometry, else written after embedding.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        help="Continue from this checkpoint (same architecture, molecules and seed): --epochs "
             "more epochs on a new learning-rate cycle (also onto other --geometry inputs).")] = None,
) -> None:
    """Train the pretrained property model: a PaiNN deep ensemble predicting HOMO, LUMO and gap
    (eV, with calibrated uncertainty) from 3D geometries made from the SMILES."""
    import torch

    from chem.datasets import load_labelled_smiles
    from chem.property_model import PropertyEnsemble, TrainingConfig, train_ensemble

    try:
        frame = load_labelled_smiles(data)
        if len(frame) - holdout < 4:
            raise ValueError(f"{data}: {len(frame)} rows minus --holdout {holdout} leaves too few "
                             "to train on")
        config = TrainingConfig(epochs=epochs, members=members, features=features,
                                n_layers=layers, batch_size=batch_size,
                                learning_rate=learning_rate, seed=seed,
                                warmup_epochs=min(5, epochs // 4), device=device,
                                geometry=geometry, workers=workers)  # type: ignore[arg-type]
    except (ValueError, ValidationError) as exc:
        fail(str(exc))
    if holdout:
        frame = frame.iloc[: len(frame) - holdout]
    if limit:
        frame = frame.iloc[:limit]
    torch.set_num_threads(max(1, torch.get_num_threads()))
    with training_progress() as progress:
        dataset = _embedded(frame, config.geometry, geometries, processes, progress)
        try:
            start_from = PropertyEnsemble.load(init_from) if init_from is not None else None
            ensemble = train_ensemble(dataset, config, progress=progress, init_from=start_from)
        except ValueError as exc:
            fail(f"{data}: {exc}")
    ensemble.metrics.update({"data": data.name, "rows_used": len(frame), "holdout": holdout})
    out.parent.mkdir(parents=True, exist_ok=True)
    ensemble.save(out)
    out_metrics = ensemble.metrics["validation"]
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); validation: "
              + ", ".join(f"{k} {v:.3f}" for k, v in out_metrics.items()))


@train_app.command("crystal-model")
def train_crystal_model(
    data: Annotated[Path, typer.Option(help="perov-5 style CSV with cif, heat_all (eV per cell) "
                                            "and ind_gap (eV), e.g. the perov5 pool.")],
    out: Annotated[Path, typer.Option(help="Checkpoint to write.",
                                      show_default="the shipped materials/data/crystal_model.pt")
                   ] = CRYSTAL_MODEL,
    work_dir: Annotated[Path | None, typer.Option(
        help="Folder for the members' training state: an interrupted training run again with "
             "the same options continues where it stopped.")] = None,
    limit: Annotated[int | None, typer.Option(min=10, help="Use only the first N rows.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 120,
    members: Annotated[int, typer.Option(min=1, help="Networks in the ensemble.")] = 4,
    features: Annotated[int, typer.Option(min=8)] = 64,
    layers: Annotated[int, typer.Option(min=1)] = 3,
    cutoff: Annotated[float, typer.Option(help="Edge cutoff, Angstrom.")] = 5.0,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    learning_rate: Annotated[float, typer.Option()] = 1e-3,
    seed: Annotated[int, typer.Option()] = 0,
    rattle: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="Angstrom: random site displacements of this standard deviation "
                               "in every training batch (labels kept).")] = 0.0,
    workers: Annotated[int, typer.Option(
        min=1, help="Members trained at once, one single-threaded process each.")] = 1,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
) -> None:
    """Train the crystal property model: a periodic PaiNN deep ensemble predicting formation
    energy (eV/atom) and band gap (eV, with the probability of a gap) with calibrated
    uncertainty. Compositions are split by a hash of the reduced formula: 15 % are held out
    for bench/perovskite.py, 10 % recalibrate the uncertainty, the rest train."""
    import numpy as np

    from materials.crystal_graph import build_graphs
    from materials.crystal_model import CrystalTrainingConfig, train_crystal_ensemble
    from materials.datasets import composition_split, read_perovskite_table

    try:
        config = CrystalTrainingConfig(
            epochs=epochs, members=members, features=features, n_layers=layers, cutoff=cutoff,
            batch_size=batch_size, learning_rate=learning_rate, seed=seed, rattle=rattle,
            warmup_epochs=min(5, epochs // 4), workers=workers, device=device)
        table = read_perovskite_table(data, limit)
        graphs = build_graphs(table.structures, config.cutoff, table.targets)
    except (ValueError, ValidationError, OSError) as exc:
        fail(str(exc))
    split = composition_split(table.reduced_formulas)
    train = graphs.subset(np.flatnonzero(split == "train"))
    val = graphs.subset(np.flatnonzero(split == "validation"))
    err.print(f"{len(table.structures)} structures: {len(train)} train, {len(val)} validation, "
              f"{int((split == 'test').sum())} held out (test)")
    with training_progress() as progress:
        task = progress.add_task("training members", total=config.members * config.epochs)
        try:
            ensemble = train_crystal_ensemble(train, val, config,
                                              lambda n: progress.advance(task, n), work_dir)
        except ValueError as exc:
            fail(f"{data}: {exc}")
    ensemble.metrics.update({"data": data.name, "rows_used": len(table.structures),
                             "split": "sha256 of reduced formula: 15 % test, 10 % validation"})
    out.parent.mkdir(parents=True, exist_ok=True)
    ensemble.save(out)
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); validation: "
              + ", ".join(f"{k} {v:.4f}" for k, v in ensemble.metrics["validation"].items()))


@train_app.command("stability-model")
def train_stability_model_command(
    data: Annotated[Path, typer.Option(help="perov-5 style CSV with cif and material_id (the "
                                            "perov5 pool).")],
    labels: Annotated[Path, typer.Option(help="Relaxed CHGNet stability labels of its cells "
                                              "(invdes perovskite label-stability --relax).")],
    out_file: Annotated[Path, typer.Option(
        "--out", help="Checkpoint to write.",
        show_default="the shipped materials/data/stability_model.npz")] = STABILITY_MODEL,
) -> None:
    """Train the stability model: a Tanimoto GP on what sits on the A, B and X sites,
    predicting the CHGNet oracle's decomposition energy after relaxation (eV/atom) with its
    uncertainty; the crystal generator keeps the cells it finds most likely stable. Cells of the
    held-out compositions (15 %, by a hash of the reduced formula) score it and are not
    trained on."""
    from materials.datasets import read_perovskite_table
    from materials.stability_model import train_stability_model

    try:
        with training_progress() as progress:
            task = progress.add_task("reading the pool", total=None)
            table = read_perovskite_table(data)
            progress.update(task, description="fitting the GP")
            model = train_stability_model(table, labels)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    model.metrics["data"] = data.name
    out_file.parent.mkdir(parents=True, exist_ok=True)
    model.save(out_file)
    err.print(f"wrote {out_file} ({out_file.stat().st_size / 1e6:.2f} MB), "
              f"{model.metrics['train_cells']} labelled training cells")
    print(json.dumps(model.metrics, indent=2))


@train_app.command("orbital-model")
def train_orbital_model(
    labels: Annotated[Path, typer.Option(help="Orbital labels CSV (`invdes label orbitals`).")],
    out_path: Annotated[Path, typer.Option("--out", help="Checkpoint to write.",
                                           show_default="the shipped chem/data/orbital_model.pt")
                        ] = ORBITAL_MODEL,
    test_fraction: Annotated[float, typer.Option(
        min=0.0, max=0.5, help="Share of the labelled molecules (chosen by a hash of their id) "
                               "never trained on, for bench/surrogate.py.")] = 0.1,
    epochs: Annotated[int, typer.Option(min=1)] = 60,
    members: Annotated[int, typer.Option(min=2, help="Networks in the ensemble.")] = 4,
    features: Annotated[int, typer.Option(min=8)] = 96,
    layers: Annotated[int, typer.Option(min=1)] = 3,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    init_trunk: Annotated[Path | None, typer.Option(
        help="Energy property-model checkpoint whose PaiNN trunks the members start from (same "
             "--features and --layers); 'none': random.",
        show_default="the shipped chem/data/property_model.pt")] = PROPERTY_MODEL,
    learning_rate: Annotated[float, typer.Option()] = 5e-4,
    conformers: Annotated[int, typer.Option(
        min=1, max=32, help="Embedded conformers per molecule, one per epoch in turn.")] = 4,
    overlap_weight: Annotated[float, typer.Option(
        min=0.0, help="Weight of the frontier_overlap error added to the cross-entropy.")] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
) -> None:
    """Train the orbital-location model: a PaiNN ensemble predicting each heavy atom's share of
    the HOMO and of the LUMO (a softmax over the heavy atoms) and, from them, the descriptors
    (frontier_overlap, homo_pr, lumo_share_N, ...) with calibrated uncertainty."""
    from chem.orbital_model import (
        OrbitalTrainingConfig,
        is_test_id,
        share_dataset,
        train_orbital_ensemble,
        trunk_states,
    )
    from oracles.orbital_labels import read_labels

    try:
        rows = read_labels(labels)
        config = OrbitalTrainingConfig(epochs=epochs, members=members, features=features,
                                       n_layers=layers, batch_size=batch_size,
                                       learning_rate=learning_rate, seed=seed, device=device,
                                       conformers=conformers, overlap_weight=overlap_weight)
        trunks = (trunk_states(init_trunk, config)
                  if init_trunk is not None and str(init_trunk) != "none" else None)
    except (ValueError, OSError, ValidationError) as exc:
        fail(str(exc))
    train_rows = [r for r in rows if not is_test_id(str(r["id"]), test_fraction)]
    with training_progress() as progress:
        data = share_dataset([str(r["smiles"]) for r in train_rows],
                             [r["p_homo"] for r in train_rows],  # type: ignore[misc]
                             [r["p_lumo"] for r in train_rows],  # type: ignore[misc]
                             progress=progress, conformers=config.conformers)
        try:
            ensemble = train_orbital_ensemble(data, config, progress, trunks)
        except ValueError as exc:
            fail(f"{labels}: {exc}")
    ensemble.metrics.update({"labels": labels.name, "labelled_rows": len(rows),
                             "test_fraction": test_fraction, "not_embedded": len(data.failures)})
    out_path.parent.mkdir(parents=True, exist_ok=True)
    ensemble.save(out_path)
    v = ensemble.metrics["validation"]
    err.print(f"wrote {out_path} ({out_path.stat().st_size / 1e6:.1f} MB) from {len(data)} "
              f"molecules; validation: share MAE {v['share_mae']:.3f}, frontier_overlap MAE "
              f"{v.get('frontier_overlap_mae', float('nan')):.3f}, share coverage "
              f"{v['share_coverage90']:.2f}")


@train_app.command("generator")
def train_generator_command(
    data: Annotated[Path, typer.Option(help="Molecules: multi-frame XYZ (.xyz or .xyz.gz) whose "
                                            "comment lines carry smiles=, homo_ev=, lumo_ev=, "
                                            "gap_ev= (e.g. the QM9 pool's "
                                            "train_pool_geometries.xyz.gz). Perovskites: a "
                                            "perov-5 style CSV (the perov5 pool).")],
    domain: Annotated[str, typer.Option(help="molecules or perovskites.")] = "molecules",
    out: Annotated[Path | None, typer.Option(
        help="Checkpoint to write.", show_default="the shipped chem/data/generator.pt or "
                                                  "materials/data/crystal_generator.pt")] = None,
    limit: Annotated[int | None, typer.Option(min=2, help="Read only the first N frames "
                                                         "(rows).")] = None,
    holdout: Annotated[int, typer.Option(min=0, help="Leave the last N molecules out.")] = 0,
    epochs: Annotated[int, typer.Option(min=1)] = 100,
    features: Annotated[int, typer.Option(min=8)] = 128,
    layers: Annotated[int | None, typer.Option(min=1, show_default="6 (molecules), 4")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
    learning_rate: Annotated[float | None, typer.Option(
        show_default="5e-4 (molecules), 1e-3")] = None,
    weight_types: Annotated[float, typer.Option(help="Weight of the atom-class loss.")] = 1.0,
    weight_bonds: Annotated[float, typer.Option(help="Weight of the bond-class loss.")] = 2.0,
    categorical_noise: Annotated[float | None, typer.Option(
        help="Noise scale of the atom-class (and bond) states.",
        show_default="3 (molecules), 2")] = None,
    stability: Annotated[Path | None, typer.Option(
        help="Perovskites: CHGNet stability labels (invdes perovskite label-stability) to "
             "condition on, joined by material_id.")] = None,
    double_share: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Perovskites: share of cells also trained on as their 10-atom "
                               "double-perovskite supercell.")] = 0.25,
    seed: Annotated[int, typer.Option()] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
    molecules: Annotated[Path | None, typer.Option(
        help="Cache of the read molecules with their bonds (.npz): read when it exists, else "
             "written.")] = None,
    state: Annotated[Path | None, typer.Option(
        help="Training state written after every epoch; an interrupted run given the same "
             "file resumes where it stopped.")] = None,
    init_from: Annotated[Path | None, typer.Option(
        help="Start from this generator checkpoint (same architecture, or the same without "
             "self-conditioning): a further stage.")] = None,
    self_condition: Annotated[bool, typer.Option(
        help="The denoiser also reads its previous prediction of the clean molecule.")] = False,
    p_drop_property: Annotated[float, typer.Option(
        help="Probability of dropping each conditioning target on its own.")] = 0.3,
    ema_decay: Annotated[float, typer.Option(
        help="Decay of the moving average of the weights that the checkpoint gets (0: off).")
    ] = 0.999,
    orbital_labels: Annotated[Path | None, typer.Option(
        help="Molecules: orbital labels (`invdes label orbitals`) to also condition on the "
             "orbital-location descriptors, joined by canonical SMILES; molecules without "
             "labels are trained with those targets masked. With --init-from a generator "
             "conditioned on energies only, the network is widened (new inputs start at "
             "zero).")] = None,
) -> None:
    """Train a generator: for molecules, 3D flow matching over atoms, positions and bonds,
    conditioned on HOMO, LUMO and gap (and, with --orbital-labels, on where the frontier
    orbitals sit); for perovskites, flow matching over species, fractional
    coordinates and lattice, conditioned on formation energy, band gap and CHGNet stability
    (trained on the pool's compositions outside the benchmark's held-out 15 %)."""
    if domain == "perovskites":
        _train_crystal_generator(
            data, out, limit, epochs, features, layers or 4, batch_size, learning_rate or 1e-3,
            categorical_noise or 2.0, seed, state, init_from, p_drop_property, ema_decay,
            stability, double_share, device)
        return
    if domain != "molecules":
        fail(f"--domain must be molecules or perovskites, got {domain!r}")
    from chem.flow_data import PROPERTIES, MoleculeSet, read_labelled_xyz
    from chem.flow_matching import FlowGenerator, GeneratorTraining, train_generator

    out = out or GENERATOR
    try:
        config = GeneratorTraining(epochs=epochs, features=features, n_layers=layers or 6,
                                   batch_size=batch_size, learning_rate=learning_rate or 5e-4,
                                   weight_types=weight_types, weight_bonds=weight_bonds,
                                   categorical_noise=categorical_noise or 3.0,
                                   p_drop_property=p_drop_property, ema_decay=ema_decay,
                                   self_condition=self_condition, seed=seed, device=device)
    except ValidationError as exc:
        fail(str(exc))
    with training_progress() as progress:
        try:
            if molecules is not None and molecules.is_file():
                mols = MoleculeSet.load(molecules)
            else:
                mols, skipped = read_labelled_xyz(data, limit=limit, progress=progress)
                err.print(f"read {len(mols)} molecules from {data}; left out: {skipped}")
                if molecules is not None:
                    mols.save(molecules)
            if holdout:
                mols = mols.subset(range(len(mols) - holdout))
            properties: tuple[str, ...] = PROPERTIES
            if orbital_labels is not None:
                mols, properties = _with_orbital_labels(mols, orbital_labels)
            start_from = FlowGenerator.load(init_from) if init_from is not None else None
            generator = train_generator(mols, config, progress=progress, state_path=state,
                                        init_from=start_from, properties=properties)
        except ValueError as exc:
            fail(str(exc))
    generator.metrics.update({"data": data.name, "holdout": holdout})
    out.parent.mkdir(parents=True, exist_ok=True)
    generator.save(out)
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); trained on {len(mols)} "
              f"molecules for {epochs} epochs in {generator.metrics['train_seconds']:.0f} s; "
              f"last losses: {generator.metrics['final_loss']}")


def _with_orbital_labels(mols: Any, labels: Path) -> tuple[Any, tuple[str, ...]]:
    """The molecules with the descriptor columns of an orbital labels file, and the property
    names of the widened labels."""
    from chem.flow_data import PROPERTIES, with_labels
    from chem.molecules import canonical_smiles
    from oracles.orbital_labels import read_labels
    from pipeline.orbital_shares import DESCRIPTORS

    by_smiles: dict[str, list[float]] = {}
    for row in read_labels(labels):
        key = canonical_smiles(str(row["smiles"]))
        if key is not None:
            by_smiles[key] = [float(row[d]) for d in DESCRIPTORS]  # type: ignore[arg-type]
    widened, matched = with_labels(mols, by_smiles, len(DESCRIPTORS))
    if matched == 0:
        raise ValueError(f"{labels}: none of its {len(by_smiles)} molecules is among the "
                         f"{len(mols)} training molecules")
    err.print(f"orbital labels for {matched} of {len(mols)} molecules from {labels}")
    return widened, (*PROPERTIES, *DESCRIPTORS)


def _train_crystal_generator(data: Path, out: Path | None, limit: int | None, epochs: int,
                             features: int, layers: int, batch_size: int, learning_rate: float,
                             categorical_noise: float, seed: int, state: Path | None,
                             init_from: Path | None, p_drop_property: float, ema_decay: float,
                             stability: Path | None, double_share: float, device: str
                             ) -> None:
    import numpy as np

    from materials.crystal_flow import (
        PROPERTIES,
        CrystalFlowTraining,
        CrystalGenerator,
        train_crystal_generator,
    )
    from materials.datasets import composition_split, read_perovskite_table, read_stability_labels

    out = out or CRYSTAL_GENERATOR
    try:
        config = CrystalFlowTraining(
            epochs=epochs, features=features, n_layers=layers, batch_size=batch_size,
            learning_rate=learning_rate, categorical_noise=categorical_noise, seed=seed,
            p_drop_property=p_drop_property, ema_decay=ema_decay, double_share=double_share,
            device=device)
        table = read_perovskite_table(data, limit)
        decomposition = (read_stability_labels(stability, table.ids) if stability is not None
                         else np.full(len(table.ids), np.nan))
        start_from = CrystalGenerator.load(init_from) if init_from is not None else None
    except (ValueError, ValidationError, OSError) as exc:
        fail(str(exc))
    train = np.flatnonzero(composition_split(table.reduced_formulas) != "test")
    labels = np.column_stack([table.targets, decomposition])[train]
    err.print(f"{len(table.structures)} structures, {len(train)} outside the held-out "
              f"compositions; {int(np.isfinite(labels[:, 2]).sum())} with CHGNet stability")
    with training_progress() as progress:
        try:
            generator = train_crystal_generator(
                [table.structures[i] for i in train], labels, config, PROPERTIES, progress,
                state, start_from)
        except ValueError as exc:
            fail(f"{data}: {exc}")
    generator.metrics.update({"data": data.name, "rows_used": len(table.structures),
                              "split": "sha256 of reduced formula: 15 % test held out"})
    out.parent.mkdir(parents=True, exist_ok=True)
    generator.save(out)
    err.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in "
              f"{generator.metrics['train_seconds']:.0f} s; last losses: "
              f"{generator.metrics['final_loss']}")


def _embedded(frame: Any, method: Any, cache: Path | None, processes: int,
              progress: Progress) -> Any:
    """The frame's molecules with 3D geometries made by ``method`` (``mmff`` or ``xtb``), from
    ``cache`` when it holds these rows made that way."""
    from chem.datasets import GeometryDataset, embed_dataset

    if cache is not None and cache.is_file():
        dataset = GeometryDataset.load(cache)
        if dataset.method != method:
            err.print(f"{cache}: cached geometries are {dataset.method}, not {method}; "
                      "embedding again")
        elif set(dataset.smiles.tolist()) <= set(frame["smiles"]) and len(dataset) >= 0.95 * len(frame):
            return dataset
        else:
            err.print(f"{cache}: cached geometries are for other molecules; embedding again")
    dataset = embed_dataset(frame, method=method, processes=processes, progress=progress)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        dataset.save(cache)
    return dataset



def predict(
    smiles_file: Annotated[Path | None, typer.Option(
        help="Molecules: one SMILES per line ('#' comments).")] = None,
    cif_file: Annotated[Path | None, typer.Option(
        help="Crystals: a CSV with a 'cif' column (one structure a row).")] = None,
    weights: Annotated[Path | None, typer.Option(
        help="Checkpoint.", show_default="the shipped chem/data/property_model.pt, or "
                                         "materials/data/crystal_model.pt with --cif-file")
                       ] = None,
    orbital_weights: Annotated[Path | None, typer.Option(
        help="Orbital-location checkpoint for molecules.",
        show_default="the shipped chem/data/orbital_model.pt, when there is one")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict HOMO, LUMO and gap (eV) and where the HOMO and LUMO sit (per-heavy-atom shares,
    frontier_overlap, participation ratios, element shares) of molecules, or formation energy
    (eV/atom) and band gap (eV) of crystals, with the pretrained property models.

    Molecules: what B3LYP/6-31G(2df,p) would give on the molecule's B3LYP geometry (the level of
    QM9, which the model was trained on), from an RDKit geometry made from each SMILES.
    Crystals: what the perov-5 DFT (RPBE formation energy, GLLB-SC gap) would give, at the
    structure as given. Each value comes with the ensemble's calibrated standard deviation, and
    the model's error on held-out data is printed with them.
    """
    if (smiles_file is None) == (cif_file is None):
        fail("give --smiles-file (molecules) or --cif-file (crystals), one of them")
    if cif_file is not None:
        _predict_crystals(cif_file, weights or CRYSTAL_MODEL, as_json)
        return
    assert smiles_file is not None
    weights = weights or PROPERTY_MODEL
    from chem.property_model import PropertyEnsemble

    if not smiles_file.is_file():
        fail(f"{smiles_file}: file not found")
    if not weights.is_file():
        fail(f"no property-model checkpoint at {weights}; train one with "
              "`invdes train surrogate --data ...`")
    lines = [(i + 1, line.split()[0]) for i, line in enumerate(smiles_file.read_text().splitlines())
             if line.strip() and not line.lstrip().startswith("#")]
    try:
        ensemble = PropertyEnsemble.load(weights)
    except ValueError as exc:
        fail(str(exc))
    predicted, failures = ensemble.predict_smiles_report([s for _, s in lines])
    orbitals, orbital_metrics = _predict_orbitals([s for _, s in lines], orbital_weights)
    rows: list[dict[str, object]] = []
    for lineno, smi in lines:
        row: dict[str, object] = {"line": lineno, "smiles": smi}
        if smi not in predicted:
            row.update(status="failed", reason=failures[smi])
        else:
            row["status"] = "ok"
            mean, std = predicted[smi]
            for j, prop in enumerate(ensemble.properties):
                row[f"{prop}_mean"] = round(float(mean[j]), 4)
                row[f"{prop}_std"] = round(float(std[j]), 4)
            if smi in orbitals:
                row.update(orbitals[smi])
        rows.append(row)
    held_out = {k: round(float(v), 4) for k, v in ensemble.metrics.get("validation", {}).items()
                if k.startswith(("mae_", "coverage90_"))}
    shipped = weights.resolve() == PROPERTY_MODEL.resolve()
    level = ("B3LYP/6-31G(2df,p) on B3LYP geometries, as in QM9" if shipped
             else f"that of its training data ({ensemble.metrics.get('data', 'unknown')})")
    if as_json:
        report = {"model": str(weights), "level": level,
                  "orbital_model_validation": orbital_metrics.get("validation", {}),
                  "geometry": f"RDKit ETKDG + MMFF94 from the SMILES"
                              f"{' + GFN2-xTB' if ensemble.config.geometry == 'xtb' else ''}",
                  "held_out_error": held_out, "predictions": rows}
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
        return
    columns = [("line", 0), ("smiles", 0), *((f"{p} (mean ± std)", 0)
                                             for p in ensemble.properties)]
    cells = [[str(row["line"]), str(row["smiles"]),
              *(f"{row[f'{p}_mean']:.3f} ± {row[f'{p}_std']:.3f}" if row["status"] == "ok"
                else "-" for p in ensemble.properties)] for row in rows]
    if orbitals:
        columns += [("frontier_overlap", 0), ("HOMO on", 0), ("LUMO on", 0)]
        for row, cell in zip(rows, cells, strict=True):
            if "descriptors" in row:
                d = row["descriptors"]
                assert isinstance(d, dict)
                overlap = d["frontier_overlap"]
                cell += [f"{overlap['mean']:.2f} ± {overlap['std']:.2f}",
                         _main_sites(row, "p_homo"), _main_sites(row, "p_lumo")]
            else:
                cell += ["-", "-", "-"]
    out.print(fitted_table(f"predicted with {weights.name}: {level}", columns, cells))
    for row in rows:
        if row["status"] != "ok":
            out.print(f"line {row['line']} ({row['smiles']}): no prediction: {row['reason']}",
                      highlight=False, markup=False)
    maes = ", ".join(f"{p} {held_out[f'mae_{p}']:.3f} eV" for p in ensemble.properties
                     if f"mae_{p}" in held_out)
    if maes:
        out.print(f"Error on {ensemble.metrics.get('n_validation', 'the')} molecules held out of "
                  f"training (mean absolute): {maes}; std is the ensemble's calibrated standard "
                  "deviation (90 % of held-out errors within 1.645 std). Molecules unlike QM9's "
                  "(over 9 heavy atoms, other elements) are extrapolation.", highlight=False)
    v = orbital_metrics.get("validation", {})
    if v:
        out.print(f"Orbital location (B3LYP/def2-SVP Löwdin shares, hydrogens folded into their "
                  f"heavy atom), error on {orbital_metrics.get('n_validation')} held-out "
                  f"molecules: per-atom share {v['share_mae']:.3f}, frontier_overlap "
                  f"{v.get('frontier_overlap_mae', float('nan')):.3f}; atoms numbered as in "
                  "the SMILES.", highlight=False)


def _predict_orbitals(smiles: list[str], weights: Path | None
                      ) -> tuple[dict[str, dict[str, object]], dict[str, Any]]:
    """Orbital-location predictions per SMILES (``descriptors`` and ``heavy_atoms``) and the
    model's metrics, or none when no orbital model is given or shipped."""
    from chem.orbital_model import OrbitalShareEnsemble

    if weights is None:
        if not ORBITAL_MODEL.is_file():
            return {}, {}
        weights = ORBITAL_MODEL
    if not weights.is_file():
        fail(f"no orbital-model checkpoint at {weights}; train one with "
             "`invdes train orbital-model --labels ...`")
    try:
        model = OrbitalShareEnsemble.load(weights)
    except ValueError as exc:
        fail(str(exc))
    predicted, _ = model.predict_smiles(smiles)
    return {smi: {
        "descriptors": {k: {"mean": round(m, 4), "std": round(sd, 4)}
                        for k, (m, sd) in p.descriptors.items()},
        "heavy_atoms": [{"index": i, "symbol": sym, "p_homo": round(float(p.p_homo[i]), 4),
                         "p_homo_std": round(float(p.p_homo_std[i]), 4),
                         "p_lumo": round(float(p.p_lumo[i]), 4),
                         "p_lumo_std": round(float(p.p_lumo_std[i]), 4)}
                        for i, sym in enumerate(p.heavy_symbols)],
    } for smi, p in predicted.items()}, model.metrics


def _main_sites(row: dict[str, object], key: str, top: int = 2) -> str:
    """The heavy atoms holding most of an orbital, as ``O3 0.72, C1 0.10`` (SMILES atom
    numbers from 1)."""
    atoms = row["heavy_atoms"]
    assert isinstance(atoms, list)
    best = sorted(atoms, key=lambda a: -a[key])[:top]
    return ", ".join(f"{a['symbol']}{a['index'] + 1} {a[key]:.2f}" for a in best)


def _predict_crystals(cif_file: Path, weights: Path, as_json: bool) -> None:
    """``invdes predict --cif-file``: one row per CSV row, its prediction or the reason."""
    import csv
    import warnings

    import numpy as np

    from materials.crystal_model import CrystalEnsemble
    from materials.prior import predict_structures
    from materials.structures import structure_from_text

    if not cif_file.is_file():
        fail(f"{cif_file}: file not found")
    if not weights.is_file():
        fail(f"no crystal-model checkpoint at {weights}; train one with "
             "`invdes train crystal-model --data ...`")
    csv.field_size_limit(10_000_000)
    with cif_file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if "cif" not in (reader.fieldnames or []):
            fail(f"{cif_file}: no 'cif' column; found {reader.fieldnames or 'none'}")
        records = list(reader)
    if not records:
        fail(f"{cif_file}: no rows")
    try:
        model = CrystalEnsemble.load(weights)
    except ValueError as exc:
        fail(str(exc))
    structures: list[Any] = []
    problems: list[str] = []
    for record in records:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                structures.append(structure_from_text(record["cif"] or ""))
            problems.append("")
        except ValueError as exc:
            structures.append(None)
            problems.append(str(exc))
    mean, std, p_gap, reasons = predict_structures(model, structures)
    rows: list[dict[str, object]] = []
    for k, record in enumerate(records):
        formula = structures[k].composition.reduced_formula if structures[k] is not None else None
        row: dict[str, object] = {"row": k + 2, "formula": record.get("formula") or formula}
        if problems[k] or reasons[k] or not np.isfinite(mean[k]).all():
            row.update(status="failed", reason=problems[k] or reasons[k])
        else:
            row["status"] = "ok"
            for j, prop in enumerate(model.properties):
                row[f"{prop}_mean"] = round(float(mean[k, j]), 4)
                row[f"{prop}_std"] = round(float(std[k, j]), 4)
            row["p_nonmetal"] = round(float(p_gap[k]), 4)
        rows.append(row)
    held_out = {k: round(float(v), 4) for k, v in model.metrics.get("validation", {}).items()
                if k.startswith(("mae_", "coverage90_", "roc_auc"))}
    if as_json:
        sys.stdout.write(json.dumps({"model": str(weights), "held_out_error": held_out,
                                     "predictions": rows}, indent=2) + "\n")
        return
    columns = [("row", 0), ("formula", 0), *((f"{p} (mean ± std)", 0) for p in model.properties),
               ("p_nonmetal", 1)]
    cells = [[str(r["row"]), str(r["formula"]),
              *(f"{r[f'{p}_mean']:.3f} ± {r[f'{p}_std']:.3f}" if r["status"] == "ok" else "-"
                for p in model.properties),
              f"{r['p_nonmetal']:.2f}" if r["status"] == "ok" else "-"] for r in rows]
    out.print(fitted_table(f"predicted with {weights.name} (perov-5 DFT)", columns, cells))
    for r in rows:
        if r["status"] != "ok":
            out.print(f"row {r['row']} ({r['formula']}): no prediction: {r['reason']}",
                      highlight=False, markup=False)
    if held_out:
        out.print("Error on held-out compositions: " + ", ".join(
            f"{k} {v}" for k, v in held_out.items()) + ". Elements other than the pool's anions "
            "(O, N, F, S) are extrapolation.", highlight=False)
