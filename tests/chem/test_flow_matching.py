"""Generator data, training, sampling and 3D-to-molecule checks on tiny literal molecules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from chem.flow_data import MoleculeSet, read_labelled_xyz
from chem.flow_matching import FlowGenerator, GeneratorTraining, make_batch, train_generator
from chem.flow_model import ATOM_CLASSES, ATOM_TYPES
from chem.generated import build_molecule
from chem.valence import consistent

# (smiles, homo_ev, lumo_ev, gap_ev): QM9-like values
MOLECULES = [("C", -10.55, 3.19, 13.74), ("N", -6.99, 2.26, 9.25), ("O", -7.96, 1.82, 9.78),
             ("C#C", -7.74, 1.28, 9.02), ("C=O", -7.00, -0.79, 6.21), ("CO", -7.11, 2.29, 9.40),
             ("CC", -8.50, 2.44, 10.94), ("C#N", -9.82, 0.53, 10.35), ("CC=O", -6.74, -0.43, 6.31),
             ("FC", -9.53, 1.65, 11.18)]


def _frame(smiles: str, homo: float, lumo: float, gap: float, seed: int = 0) -> str:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    AllChem.MMFFOptimizeMolecule(mol)
    pos = mol.GetConformer().GetPositions()
    atoms = "\n".join(f"{a.GetSymbol()} {x:.6f} {y:.6f} {z:.6f}"
                      for a, (x, y, z) in zip(mol.GetAtoms(), pos, strict=True))
    return (f"{mol.GetNumAtoms()}\nsmiles={smiles} homo_ev={homo} lumo_ev={lumo} gap_ev={gap}\n"
            f"{atoms}\n")


@pytest.fixture(scope="module")
def xyz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = "".join(_frame(*m) for m in MOLECULES)
    text += _frame("CC", -8.5, 2.4, 10.9).replace("smiles=CC ", "smiles=CCC ")  # mislabelled
    path = tmp_path_factory.mktemp("xyz") / "tiny.xyz"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def data(xyz_file: Path) -> MoleculeSet:
    molecules, skipped = read_labelled_xyz(xyz_file)
    assert skipped == {"element": 0, "no_bonds_perceived": 0, "smiles_mismatch": 1,
                       "atom_class": 0}
    return molecules


def test_molecules_are_read_with_their_bonds_and_labels(data: MoleculeSet) -> None:
    assert len(data) == len(MOLECULES)
    types, pos, bonds = data.molecule(3)  # acetylene: two CH joined by a triple bond
    assert [ATOM_TYPES[int(t)] for t in types] == ["CH", "CH"]
    assert bonds.tolist() == [[0, 1, 3]]
    np.testing.assert_allclose(pos.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(pos[0] - pos[1]), 1.2, atol=0.05)  # C#C, Angstrom
    np.testing.assert_allclose(data.y[3], [-7.74, 1.28, 9.02], atol=1e-5)
    assert sorted(ATOM_TYPES[int(t)] for t in data.molecule(8)[0]) == ["CH", "CH3", "O"]  # CC=O
    assert [ATOM_TYPES[int(t)] for t in data.molecule(0)[0]] == ["CH4"]
    batch = make_batch(data, np.array([3, 8]))
    assert batch.edges.shape[1] == 2 * 1 + 3 * 2  # C2H2 and CH3CHO: 2 and 3 heavy atoms
    assert int((batch.bond_class == 3).sum()) == 2  # the triple bond, both directions
    assert int((batch.bond_class == 2).sum()) == 2  # the C=O


def test_molecule_set_round_trips_and_subsets(data: MoleculeSet, tmp_path: Path) -> None:
    data.save(tmp_path / "set.npz")
    again = MoleculeSet.load(tmp_path / "set.npz")
    np.testing.assert_array_equal(again.bonds, data.bonds)
    np.testing.assert_array_equal(again.smiles, data.smiles)
    part = data.subset([4, 0])
    assert part.smiles.tolist() == [data.smiles[4], data.smiles[0]]
    np.testing.assert_array_equal(part.molecule(1)[2], data.molecule(0)[2])


def test_bad_xyz_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xyz"
    bad.write_text("3\nsmiles=O homo_ev=1 lumo_ev=2\nO 0 0 0\nH 0 0 1\nH 0 1 0\n")
    with pytest.raises(ValueError, match=r"bad.xyz: line 2: comment lacks \['gap_ev'\]"):
        read_labelled_xyz(bad)
    cut = tmp_path / "cut.xyz"
    cut.write_text("3\nsmiles=O homo_ev=1 lumo_ev=2 gap_ev=1\nO 0 0 0\n")
    with pytest.raises(ValueError, match="line 1: frame of 3 atoms is cut short"):
        read_labelled_xyz(cut)


def test_true_molecules_are_valid_and_stable_and_broken_ones_say_why(data: MoleculeSet) -> None:
    for i in range(len(data)):
        types, pos, bonds = data.molecule(i)
        matrix = np.zeros((len(types), len(types)), dtype=np.int64)
        matrix[bonds[:, 0], bonds[:, 1]] = bonds[:, 2]
        built = build_molecule(types, pos, matrix + matrix.T)
        assert built.valid and built.stable, built.reason
        assert built.smiles == Chem.MolToSmiles(Chem.MolFromSmiles(MOLECULES[i][0]))
    types, pos, bonds = data.molecule(4)  # formaldehyde with the C=O made single
    matrix = np.zeros((2, 2), dtype=np.int64)
    matrix[bonds[:, 0], bonds[:, 1]] = np.minimum(bonds[:, 2], 1)
    broken = build_molecule(types, pos, matrix + matrix.T)
    assert not broken.stable and broken.stable_atoms == 0
    assert not broken.valid and "unpaired electron" in broken.reason
    apart = build_molecule(types, pos, np.zeros((2, 2), dtype=np.int64))
    assert not apart.valid and "unpaired electron" in apart.reason
    ch3 = ATOM_CLASSES.index(("C", 3))
    two_methanes = build_molecule(np.array([ATOM_CLASSES.index(("C", 4))] * 2),
                                  np.array([[0, 0, 0], [3, 0, 0]], dtype=np.float32),
                                  np.zeros((2, 2), dtype=np.int64))
    assert two_methanes.stable and two_methanes.reason == "2 disconnected fragments"
    over = build_molecule(np.array([ch3, ch3]), np.array([[0, 0, 0], [1.5, 0, 0]]),
                          np.array([[0, 2], [2, 0]]))  # H3C=CH3: carbon with five bonds
    assert not over.stable and over.reason.startswith("RDKit sanitisation")


def test_built_molecules_carry_their_hydrogens_in_3d(data: MoleculeSet) -> None:
    types, pos, bonds = data.molecule(8)  # acetaldehyde
    matrix = np.zeros((3, 3), dtype=np.int64)
    matrix[bonds[:, 0], bonds[:, 1]] = bonds[:, 2]
    built = build_molecule(types, pos, matrix + matrix.T)
    assert built.mol is not None and built.mol.GetNumAtoms() == 7
    xyz = built.mol.GetConformer().GetPositions()
    np.testing.assert_allclose(xyz[:3], pos, atol=1e-5)  # heavy atoms where they were generated
    for bond in built.mol.GetBonds():  # hydrogens placed at bonding distance
        if 1 in (bond.GetBeginAtom().GetAtomicNum(), bond.GetEndAtom().GetAtomicNum()):
            d = np.linalg.norm(xyz[bond.GetBeginAtomIdx()] - xyz[bond.GetEndAtomIdx()])
            assert 0.9 < d < 1.2


def test_training_lowers_the_loss_and_checkpoints_sample_identically(
    data: MoleculeSet, tmp_path: Path
) -> None:
    config = GeneratorTraining(features=16, n_layers=2, n_rbf=8, epochs=1, batch_size=5,
                               learning_rate=3e-3)
    short = train_generator(data, config)
    longer = train_generator(data, config.model_copy(update={"epochs": 150}))
    from chem.flow_matching import flow_loss

    def mean_loss(g: FlowGenerator) -> float:
        gen = torch.Generator().manual_seed(5)
        b = make_batch(data, np.arange(len(data)))
        with torch.no_grad():
            return float(np.mean([float(flow_loss(g.model, b, g.y_mean, g.y_std, config, gen)[0])
                                  for _ in range(20)]))

    assert mean_loss(longer) < 0.8 * mean_loss(short)
    path = tmp_path / "gen.pt"
    longer.save(path)
    loaded = FlowGenerator.load(path)
    a = longer.sample(6, {"gap_ev": 9.0}, steps=8, seed=3)
    b = loaded.sample(6, {"gap_ev": 9.0}, steps=8, seed=3)
    for (ta, pa, ba), (tb, pb, bb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_allclose(pa, pb, atol=1e-5)
        np.testing.assert_array_equal(ba, bb)
        assert (ba == ba.T).all()
    sized = loaded.sample(3, None, steps=4, seed=0, n_atoms=[2, 5, 1])
    assert [len(t) for t, _, _ in sized] == [2, 5, 1]
    with pytest.raises(ValueError, match="unknown condition 'dipole'"):
        loaded.sample(1, {"dipole": 1.0})
    with pytest.raises(ValueError, match="decode must be 'argmax' or 'valence', got 'nearest'"):
        loaded.sample(1, decode="nearest")
    # the argmax read-out of the same samples differs only where decoding found a better graph
    graphs = loaded.sample_graphs(6, {"gap_ev": 9.0}, steps=8, seed=3)
    for g, (types, _, bonds) in zip(graphs, a, strict=True):
        if consistent(g.types, g.bonds):
            np.testing.assert_array_equal(types, g.types)
            np.testing.assert_array_equal(bonds, g.bonds)
    with pytest.raises(ValueError, match="not an invdes generator checkpoint"):
        torch.save({"format": "other"}, tmp_path / "x.pt")
        FlowGenerator.load(tmp_path / "x.pt")


class _StopAfter:
    """A progress reporter that stops training after some steps, like a killed process."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def advance(self, task: int) -> None:
        self.steps -= 1
        if self.steps == 0:
            raise KeyboardInterrupt


def test_interrupted_training_resumes_to_the_same_weights(data: MoleculeSet, tmp_path: Path) -> None:
    config = GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=4, batch_size=5)
    straight = train_generator(data, config)
    state = tmp_path / "state.pt"
    with pytest.raises(KeyboardInterrupt):  # killed during the third epoch (2 steps per epoch)
        train_generator(data, config, progress=_StopAfter(5), state_path=state)  # type: ignore[arg-type]
    assert torch.load(state, weights_only=True)["epochs_done"] == 2
    resumed = train_generator(data, config, state_path=state)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)
    with pytest.raises(ValueError, match="training state of other settings or data"):
        train_generator(data, config.model_copy(update={"epochs": 5}), state_path=state)


@pytest.mark.parametrize("self_condition", [False, True])
def test_a_rotated_start_gives_the_rotated_molecule_with_the_same_verdict(
    data: MoleculeSet, self_condition: bool,
) -> None:
    from chem.flow_matching import centred_noise, integrate, symmetric_pair_noise
    from chem.flow_model import BOND_TYPES, pair_index

    config = GeneratorTraining(features=16, n_layers=2, n_rbf=8, epochs=40, batch_size=5,
                               learning_rate=3e-3, self_condition=self_condition)
    model = train_generator(data, config).model.double()
    counts = torch.tensor([3, 2, 5, 4])
    batch = torch.repeat_interleave(torch.arange(4), counts)
    edges = pair_index(counts)
    gen = torch.Generator().manual_seed(0)
    x = centred_noise((len(batch), 3), batch, 4, gen).double()
    h = torch.randn(len(batch), len(ATOM_TYPES), generator=gen).double()
    e = symmetric_pair_noise(edges, len(BOND_TYPES), gen).double()
    cond = torch.zeros(4, 3, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=torch.float64))
    out = integrate(model, x, h, e, edges, batch, cond, None, 10, 0.0)
    turned = integrate(model, x @ q.T, h, e, edges, batch, cond, None, 10, 0.0)
    torch.testing.assert_close(turned[0], out[0] @ q.T, atol=1e-4, rtol=0)
    np.testing.assert_array_equal(turned[1].argmax(-1), out[1].argmax(-1))
    np.testing.assert_array_equal(turned[2].argmax(-1), out[2].argmax(-1))
    starts = [0, *counts.cumsum(0).tolist()]
    pair_starts = [0, *(counts * (counts - 1)).cumsum(0).tolist()]
    for i, n in enumerate(counts.tolist()):
        verdicts = []
        for pos, hh, ee in (out, turned):
            matrix = np.zeros((n, n), dtype=np.int64)
            local = edges[:, pair_starts[i] : pair_starts[i + 1]] - starts[i]
            matrix[local[0], local[1]] = ee[pair_starts[i] : pair_starts[i + 1]].argmax(-1)
            built = build_molecule(hh[starts[i] : starts[i + 1]].argmax(-1).numpy(),
                                   pos[starts[i] : starts[i + 1]].float().numpy(), matrix)
            verdicts.append((built.valid, built.reason, built.smiles))
        assert verdicts[0] == verdicts[1]


def test_a_second_stage_starts_from_the_first_and_keeps_its_history(data: MoleculeSet) -> None:
    first = train_generator(data, GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=2,
                                                    batch_size=5))
    config = GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=1, batch_size=5,
                               learning_rate=1e-9, p_drop_property=0.5)
    second = train_generator(data, config, init_from=first)
    for key, value in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[key], value, atol=1e-6, rtol=0)
    assert second.metrics["init_from"]["epochs"] == 2
    torch.testing.assert_close(second.y_mean, first.y_mean)
    with pytest.raises(ValueError, match="another architecture: features=8"):
        train_generator(data, config.model_copy(update={"features": 16}), init_from=first)


def _noisy_pair() -> tuple[torch.Tensor, ...]:
    """Noise states (x, h, e) of a 4-atom and a 3-atom molecule, with their edges and batch."""
    from chem.flow_matching import centred_noise, symmetric_pair_noise
    from chem.flow_model import BOND_TYPES, pair_index

    counts = torch.tensor([4, 3])
    batch = torch.repeat_interleave(torch.arange(2), counts)
    edges = pair_index(counts)
    gen = torch.Generator().manual_seed(0)
    x = centred_noise((len(batch), 3), batch, 2, gen)
    h = torch.randn(len(batch), len(ATOM_TYPES), generator=gen)
    e = symmetric_pair_noise(edges, len(BOND_TYPES), gen)
    return x, h, e, edges, batch


def test_a_stage_with_self_conditioning_starts_from_one_without_it(
    data: MoleculeSet, tmp_path: Path,
) -> None:
    from chem.flow_matching import integrate

    first = train_generator(data, GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=2,
                                                    batch_size=5))
    config = GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=1, batch_size=5,
                               learning_rate=1e-9, self_condition=True)
    second = train_generator(data, config, init_from=first)
    assert second.model.self_condition and "previous_shift" in second.model.state_dict()
    x, h, e, edges, batch = _noisy_pair()
    cond, mask = first.condition_tensor(2, {"gap_ev": 6.0})
    # the new inputs start at zero weight: the same flow, step by step, guided or not
    for guidance in (0.0, 2.0):
        before = integrate(first.model, x, h, e, edges, batch, cond, mask, 8, guidance)
        after = integrate(second.model, x, h, e, edges, batch, cond, mask, 8, guidance)
        for a, b in zip(before, after, strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    second.save(tmp_path / "sc.pt")
    loaded = FlowGenerator.load(tmp_path / "sc.pt")
    assert loaded.config.self_condition
    for a, b in zip(loaded.sample(3, seed=4, steps=5), second.sample(3, seed=4, steps=5),
                    strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1], atol=1e-6)
    with pytest.raises(ValueError, match="uses self-conditioning"):
        train_generator(data, config.model_copy(update={"self_condition": False}),
                        init_from=second)


@pytest.mark.parametrize("self_condition", [False, True])
def test_a_stage_with_descriptor_labels_widens_the_conditions(
    data: MoleculeSet, self_condition: bool,
) -> None:
    from chem.flow_data import with_labels
    from chem.flow_matching import integrate

    first = train_generator(data, GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=2,
                                                    batch_size=5, self_condition=self_condition))
    smiles = data.smiles.tolist()
    labelled, matched = with_labels(data, {smiles[0]: [0.2], smiles[1]: [0.8]}, 1)
    assert matched == 2 and np.isnan(labelled.y[2:, 3]).all()
    properties = ("homo_ev", "lumo_ev", "gap_ev", "frontier_overlap")
    config = GeneratorTraining(features=8, n_layers=1, n_rbf=4, epochs=1, batch_size=5,
                               learning_rate=1e-9, self_condition=self_condition)
    second = train_generator(labelled, config, init_from=first, properties=properties)
    assert second.properties == properties
    torch.testing.assert_close(second.y_mean[:3], first.y_mean)
    assert second.y_mean[3] == pytest.approx(0.5)  # the mean of the two labels
    x, h, e, edges, batch = _noisy_pair()
    cond, mask = first.condition_tensor(2, {"gap_ev": 6.0})
    wide_cond, wide_mask = second.condition_tensor(2, {"gap_ev": 6.0})
    # the new inputs start at zero weight: the same flow until trained on the new labels
    before = integrate(first.model, x, h, e, edges, batch, cond, mask, 6, 2.0)
    after = integrate(second.model, x, h, e, edges, batch, wide_cond, wide_mask, 6, 2.0)
    for a, b in zip(before, after, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert len(second.sample(2, {"frontier_overlap": 0.3}, steps=3, seed=1)) == 2
    with pytest.raises(ValueError, match="must start with them"):
        train_generator(labelled, config, init_from=first,
                        properties=("frontier_overlap", "homo_ev", "lumo_ev", "gap_ev"))


@pytest.mark.parametrize("self_condition", [False, True])
def test_guided_steps_in_one_call_equal_two_calls(data: MoleculeSet, self_condition: bool) -> None:
    from chem.flow_matching import centred_noise, integrate, symmetric_pair_noise
    from chem.flow_model import BOND_TYPES, pair_index

    config = GeneratorTraining(features=16, n_layers=2, n_rbf=8, epochs=20, batch_size=5,
                               learning_rate=3e-3, self_condition=self_condition)
    generator = train_generator(data, config)
    counts = torch.tensor([3, 2, 5, 1])
    batch = torch.repeat_interleave(torch.arange(4), counts)
    edges = pair_index(counts)
    gen = torch.Generator().manual_seed(1)
    x = centred_noise((len(batch), 3), batch, 4, gen)
    h = 3 * torch.randn(len(batch), len(ATOM_TYPES), generator=gen)
    e = 3 * symmetric_pair_noise(edges, len(BOND_TYPES), gen)
    cond, mask = generator.condition_tensor(4, {"gap_ev": 7.0, "homo_ev": -6.5})
    steps = []
    paired = integrate(generator.model, x, h, e, edges, batch, cond, mask, 6, 3.0, 2.0,
                       on_step=lambda: steps.append(1))
    separate = integrate(generator.model, x, h, e, edges, batch, cond, mask, 6, 3.0, 2.0,
                         paired=False)
    assert len(steps) == 6
    for a, b in zip(paired, separate, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # guidance does something here, so the comparison is not between two unguided runs
    unguided = integrate(generator.model, x, h, e, edges, batch, cond, mask, 6, 0.0, 2.0)
    assert (paired[0] - unguided[0]).abs().max() > 1e-3


class _CountingProgress:
    """Records what a rich Progress would be told."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict[str, object]] = {}

    def add_task(self, description: str, total: float | None = None, **kwargs: object) -> int:
        self.tasks[len(self.tasks)] = {"description": description, "total": total, "done": 0}
        return len(self.tasks) - 1

    def advance(self, task: int, advance: float = 1) -> None:
        done = self.tasks[task]["done"]
        assert isinstance(done, int)
        self.tasks[task]["done"] = done + int(advance)


def test_sampling_reports_every_step_of_every_batch(data: MoleculeSet) -> None:
    generator = train_generator(data, GeneratorTraining(features=8, n_layers=1, n_rbf=4,
                                                        epochs=1, batch_size=5))
    progress = _CountingProgress()
    quiet = generator.sample(5, {"gap_ev": 8.0}, steps=3, seed=2, batch_size=2)
    shown = generator.sample(5, {"gap_ev": 8.0}, steps=3, seed=2, batch_size=2,
                             progress=progress)  # type: ignore[arg-type]
    assert progress.tasks == {0: {"description": "sampling molecules", "total": 9, "done": 9}}
    for (ta, pa, ba), (tb, pb, bb) in zip(quiet, shown, strict=True):
        np.testing.assert_array_equal(ta, tb)
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(ba, bb)
