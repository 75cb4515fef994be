"""The crystal generator: invariances of its encoding and network, training, sampling (de novo
and structure prediction), validity checks and the command line."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure
from pymatgen.core.operations import SymmOp
from typer.testing import CliRunner

from materials.cell_encoding import (
    canonical_cell,
    lattice_from_vector,
    lattice_vector,
    rock_salt_supercell,
)
from materials.cell_geometry import metric_tensors, pair_edges, separate_sites
from materials.crystal_flow import (
    PROPERTIES,
    CrystalDenoiser,
    CrystalFlowTraining,
    CrystalGenerator,
    train_crystal_generator,
)
from materials.crystal_generation import (
    composition_species,
    generate_crystals,
    predict_crystal_structures,
    summarize,
)
from materials.validity import charge_neutral_species, composition_valid, structure_problem
from pipeline.conditions import parse_condition


def polar_cell(a: str = "Sr", b: str = "Ti", x: str = "O", length: float = 3.95) -> Structure:
    """A tetragonal (P4mm) perovskite cell with its B and X sites shifted along c."""
    return Structure(Lattice.cubic(length), [a, b, x, x, x],
                     [[0, 0, 0.02], [0.5, 0.5, 0.53], [0.5, 0.5, 0.0], [0.5, 0, 0.47],
                      [0, 0.5, 0.47]])


def encoding(structure: Structure) -> tuple[np.ndarray, list[str], np.ndarray]:
    cell = canonical_cell(structure)
    return (lattice_vector(cell.lattice, len(cell)), [s.specie.symbol for s in cell],
            np.mod(cell.frac_coords, 1.0))


@pytest.mark.parametrize("rattle", [0.0, 0.04])
def test_equivalent_descriptions_of_a_crystal_encode_alike(rattle: float) -> None:
    base = polar_cell()
    if rattle:
        base.perturb(rattle, rattle * 0.5)  # no symmetry left (P1)
    rotated = base.copy()
    rotated.apply_operation(SymmOp.from_axis_angle_and_translation([1, 2, 3], 37.0, False,
                                                                   [0.4, -1.0, 2.0]))
    sheared = Structure(Lattice(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]) @ base.lattice.matrix),
                        base.species, base.cart_coords, coords_are_cartesian=True)
    order = [4, 2, 0, 3, 1]
    shuffled = Structure(base.lattice, [base.species[i] for i in order],
                         base.frac_coords[order] + np.array([0.3, 1.1, -0.7]))
    flipped = base.copy()  # the polar axis down instead of up: the same crystal turned over
    flipped.apply_operation(SymmOp.from_axis_angle_and_translation([1, 0, 0], 180.0))
    ref_lattice, ref_species, ref_frac = encoding(base)
    for other in (rotated, sheared, shuffled, flipped):
        lattice, species, frac = encoding(other)
        np.testing.assert_allclose(lattice, ref_lattice, atol=1e-5)
        assert species == ref_species
        np.testing.assert_allclose(frac, ref_frac, atol=2e-3)


def _denoiser_outputs(frac: np.ndarray, species: list[int]) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    net = CrystalDenoiser(n_types=4, n_conditions=2, features=16, n_layers=2, n_frequencies=3)
    net.eval()
    counts = torch.tensor([len(species)])
    s = torch.nn.functional.one_hot(torch.tensor(species), 4).float()
    with torch.no_grad():
        return net(s, torch.as_tensor(frac, dtype=torch.float32),
                   torch.tensor([[0.1, -0.2, 0.05, 0.3, 0.0, -0.1]]), torch.tensor([0.4]),
                   torch.tensor([[0.5, -1.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([0.0]),
                   torch.zeros(len(species), dtype=torch.long), pair_edges(counts))


def test_denoiser_is_invariant_to_origin_periodic_images_and_site_order() -> None:
    rng = np.random.default_rng(1)
    frac = rng.random((5, 3))
    species = [0, 1, 2, 2, 3]
    v, lat, logits = _denoiser_outputs(frac, species)
    assert torch.allclose(v.sum(0), torch.zeros(3), atol=1e-5)  # no drift of the whole cell
    shifted = frac + np.array([0.31, -0.52, 0.77])  # another origin
    imaged = frac + np.array([[1, 0, -2], [0, 0, 0], [3, 1, 0], [0, -1, 0], [0, 0, 5]])
    for moved in (shifted, imaged):
        v2, lat2, logits2 = _denoiser_outputs(moved, species)
        assert torch.allclose(v2, v, atol=1e-4)
        assert torch.allclose(lat2, lat, atol=1e-4)
        assert torch.allclose(logits2, logits, atol=1e-4)
    order = [3, 0, 4, 1, 2]
    v3, lat3, logits3 = _denoiser_outputs(frac[order], [species[i] for i in order])
    assert torch.allclose(v3, v[order], atol=1e-4)
    assert torch.allclose(lat3, lat, atol=1e-4)
    assert torch.allclose(logits3, logits[order], atol=1e-4)


def test_factored_messages_equal_the_concatenated_layer() -> None:
    """The denoiser applies each message's first layer as separate site, cell and edge
    products; on a batch of a 5- and a 10-site cell it must give what the layer gives on the
    concatenated inputs."""
    import math

    from torch_geometric.utils import scatter

    torch.manual_seed(2)
    net = CrystalDenoiser(n_types=4, n_conditions=2, features=16, n_layers=2,
                          n_frequencies=3).eval()
    counts = torch.tensor([5, 10])
    batch = torch.repeat_interleave(torch.arange(2), counts)
    species = torch.softmax(torch.randn(15, 4), -1)
    frac, lattice, t = torch.rand(15, 3), torch.randn(2, 6), torch.tensor([0.3, 0.8])
    cond, mask, given = torch.randn(2, 2), torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.zeros(2)
    edges = pair_edges(counts)
    with torch.no_grad():
        v, lat, logits = net(species, frac, lattice, t, cond, mask, given, batch, edges)
        freqs = torch.arange(1, 9, dtype=t.dtype)
        temb = torch.cat([torch.sin(math.pi * t[:, None] * freqs),
                          torch.cos(math.pi * t[:, None] * freqs)], dim=-1)
        cell = torch.cat([lattice, cond * mask, mask, given[:, None],
                          torch.log(counts.float())[:, None]], dim=-1)
        cell_h = net.time_in(temb) + net.cell_in(cell)
        h = net.species_in(species) + cell_h[batch]
        src, dst = edges
        k = torch.arange(1, 4, dtype=frac.dtype)
        angle = 2 * math.pi * (frac[dst] - frac[src])[:, :, None] * k
        edge_feat = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1).flatten(1)
        for message, update, norm in zip(net.messages, net.updates, net.norms, strict=True):
            m = message(torch.cat([h[src], h[dst], cell_h[batch[src]], edge_feat], dim=-1))
            agg = scatter(m, src, dim=0, dim_size=15, reduce="mean")
            h = norm(h + update(torch.cat([h, agg], dim=-1)))
        ref_v = net.coord_out(h)
        ref_v = ref_v - scatter(ref_v, batch, dim=0, dim_size=2, reduce="mean")[batch]
        pooled = scatter(h, batch, dim=0, dim_size=2, reduce="mean")
    torch.testing.assert_close(v, ref_v, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(lat, net.lattice_out(torch.cat([pooled, cell_h], dim=-1)),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(logits, net.species_out(h), atol=1e-5, rtol=1e-4)


def test_lattice_vector_round_trip_and_double_cell() -> None:
    lattice = Lattice.from_parameters(4.1, 4.2, 5.9, 88.0, 91.0, 120.0)
    back = lattice_from_vector(lattice_vector(lattice, 5), 5)
    np.testing.assert_allclose(back.parameters, lattice.parameters, atol=1e-8)
    double = rock_salt_supercell(polar_cell())
    assert len(double) == 10
    np.testing.assert_allclose(double.lattice.angles, [60.0, 60.0, 60.0], atol=1e-6)
    assert abs(double.volume - 2 * polar_cell().volume) < 1e-6


def test_metric_tensors_match_the_decoded_lattice() -> None:
    skewed = Lattice.from_parameters(4.1, 4.2, 5.9, 88.0, 91.0, 120.0)
    vectors = torch.as_tensor(np.stack([lattice_vector(skewed, 5),
                                        lattice_vector(Lattice.cubic(7.8), 10)]))
    metric = metric_tensors(vectors, torch.tensor([5, 10])).numpy()
    np.testing.assert_allclose(metric[0], skewed.metric_tensor, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(metric[1], Lattice.cubic(7.8).metric_tensor, atol=1e-9)


def test_site_separation_parts_only_close_sites_across_the_boundary() -> None:
    # cell 0 (cubic, 4 A): two sites 0.08 A apart across the periodic boundary, one far off;
    # cell 1 (cubic, 4 A): two sites 2 A apart
    frac = torch.tensor([[0.01, 0.5, 0.5], [0.99, 0.5, 0.5], [0.5, 0.0, 0.0],
                         [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]], dtype=torch.float64)
    counts = torch.tensor([3, 2])
    batch = torch.tensor([0, 0, 0, 1, 1])
    metric = torch.as_tensor(np.stack([Lattice.cubic(4.0).metric_tensor] * 2))
    out = separate_sites(frac, metric, batch, pair_edges(counts), 1.2)
    # each of the close pair moves half the shortfall (0.56 A) away from the other, outwards
    np.testing.assert_allclose(out[:2].numpy(), [[0.15, 0.5, 0.5], [0.85, 0.5, 0.5]], atol=1e-9)
    np.testing.assert_array_equal(out[2:].numpy(), frac[2:].numpy())
    structure = Structure(Lattice.cubic(4.0), ["O", "O", "Ti"], out[:3].numpy())
    assert structure.get_distance(0, 1) == pytest.approx(1.2)
    # a metric that is not positive definite (no lattice has it) gives no distances: no push
    impossible = metric.clone()
    impossible[0, 0, 0] = -16.0
    kept = separate_sites(frac, impossible, batch, pair_edges(counts), 1.2)
    np.testing.assert_array_equal(kept[:2].numpy(), frac[:2].numpy())


def test_validity_follows_cdvae_definitions() -> None:
    assert composition_valid(["Sr", "Ti", "O", "O", "O"])
    assert composition_valid(["Cs", "Pb", "I", "I", "I"])
    assert not composition_valid(["Na", "K", "I", "I", "I"])  # +1 +1 against -3
    assert composition_valid(["Cu", "Zn"])  # an alloy
    assert structure_problem(polar_cell()) == ""
    squeezed = Structure(Lattice.cubic(4.0), ["Sr", "Ti"], [[0, 0, 0], [0.98, 0.0, 0.05]])
    assert "apart, below 0.5" in structure_problem(squeezed)


def test_charge_neutral_species_takes_the_most_probable_valid_assignment() -> None:
    vocabulary = ["Na", "Cs", "K", "Pb", "I", "O"]
    probs = np.full((5, 6), 1e-3)
    probs[0, [0, 1]] = 0.6, 0.35  # A: Na, then Cs
    probs[1, [2, 3]] = 0.9, 0.05  # B: K, then Pb
    probs[2:, 4] = 1.0  # X: I
    probs /= probs.sum(1, keepdims=True)
    # Na K I3 and Cs K I3 are not neutral (+1 +1 against -3); Na Pb I3 is the most probable
    # assignment that is (Cs Pb I3 is neutral too, but less probable)
    assert not composition_valid(["Na", "K", "I", "I", "I"])
    assert not composition_valid(["Cs", "K", "I", "I", "I"])
    assert [vocabulary[j] for j in charge_neutral_species(probs, vocabulary) or []] == \
        ["Na", "Pb", "I", "I", "I"]
    # already valid: unchanged
    probs[1, 3] = 0.99
    assert charge_neutral_species(probs, vocabulary) == [0, 3, 4, 4, 4]
    # nothing neutral among the candidates: None
    only = np.zeros((3, 6))
    only[0, 0] = only[1:, 4] = 1.0  # Na I2
    assert charge_neutral_species(only, vocabulary, top_k=1) is None


def test_conditions_parse_and_name_their_problem() -> None:
    c = parse_condition("band_gap_ev>=1.5", PROPERTIES)
    assert (c.name, c.op, c.value) == ("band_gap_ev", ">=", 1.5)
    assert c.violation(1.0) == pytest.approx(0.5) and c.violation(2.0) == 0.0
    with pytest.raises(ValueError, match="unknown property 'gap'"):
        parse_condition("gap=1", PROPERTIES)
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_condition("band_gap_ev~1", PROPERTIES)
    assert composition_species("Cs2AgBiBr6").count("Br") == 6
    with pytest.raises(ValueError, match="fractional amount"):
        composition_species("SrTiO2.5")


@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cells = [polar_cell(a, b, x, length) for a, b, x, length in (
        ("Sr", "Ti", "O", 3.9), ("Ba", "Ti", "O", 4.0), ("Ca", "Zr", "O", 4.1),
        ("K", "Nb", "O", 4.0), ("Na", "Ta", "O", 3.95), ("La", "Al", "O", 3.8))]
    labels = np.array([[-3.0, 1.8, np.nan], [-3.1, 1.6, -0.1], [-3.5, 3.5, np.nan],
                       [-2.8, 1.5, 0.05], [-3.0, 2.5, np.nan], [-3.6, 4.0, -0.2]])
    config = CrystalFlowTraining(features=16, n_layers=2, n_frequencies=3, epochs=3,
                                 batch_size=4, double_share=0.5)
    generator = train_crystal_generator(cells, labels, config)
    path = tmp_path_factory.mktemp("crystal_generator") / "generator.pt"
    generator.save(path)
    return path


def test_training_saving_and_sampling(tiny_generator: Path) -> None:
    generator = CrystalGenerator.load(tiny_generator)
    assert generator.properties == PROPERTIES
    assert set(generator.vocabulary) == {"Sr", "Ba", "Ca", "K", "Na", "La", "Ti", "Zr", "Nb",
                                         "Ta", "Al", "O"}
    assert generator.metrics["labelled"]["decomposition_energy_ev_per_atom"] == 3
    assert generator.metrics["n_cells"] == 10  # 6 cells and 4 double cells
    # bounds aim at the median of the training labels inside them
    assert generator.target_for("band_gap_ev", ">=", 2.0) == pytest.approx(3.5)
    assert generator.target_for("band_gap_ev", "=", 2.0) == 2.0
    with pytest.raises(ValueError, match=r"labels span -3\.6 to -2\.8"):
        generator.target_for("formation_energy_ev_per_atom", "<=", -4.0)
    with pytest.raises(ValueError, match="outside what the generator was trained on"):
        generator.target_for("band_gap_ev", "=", 9.0)
    first = generator.sample([5, 10], steps=4, seed=3)
    again = generator.sample([5, 10], steps=4, seed=3)
    # charge-aware decoding: a barely trained generator's most probable species are often not
    # neutral; where a neutral assignment is among the top three per site, it is taken
    raw = generator.sample([5] * 40, steps=4, seed=5, charge_neutral=False)
    aware = generator.sample([5] * 40, steps=4, seed=5)
    species = [[x.symbol for x in c.structure.species] for c in aware if c.structure is not None]
    n_raw_valid = sum(composition_valid([x.symbol for x in c.structure.species])
                      for c in raw if c.structure is not None)
    assert sum(map(composition_valid, species)) > n_raw_valid
    for r, c in zip(raw, aware, strict=True):
        assert r.structure is not None and c.structure is not None
        np.testing.assert_allclose(r.structure.frac_coords, c.structure.frac_coords)
        changed = r.structure.species != c.structure.species
        assert changed == c.redecoded
        assert not changed or composition_valid([x.symbol for x in c.structure.species])
    for a, b in zip(first, again, strict=True):
        assert a.structure is not None and b.structure is not None
        assert len(a.structure) in (5, 10)
        np.testing.assert_allclose(a.structure.frac_coords, b.structure.frac_coords)
    predicted = predict_crystal_structures(generator, ["SrTiO3", "Ba2TiZrO6"], 2, seed=1, steps=4)
    assert [s.formula for s in predicted] == ["SrTiO3"] * 2 + ["Ba2TiZrO6"] * 2
    for s in predicted:
        assert s.structure is not None and s.composition_valid
        assert s.structure.composition.reduced_formula == s.formula or len(s.structure) == 10
    with pytest.raises(ValueError, match=r"formula 2: .*not known to the generator|Br"):
        predict_crystal_structures(generator, ["SrTiO3", "CsPbBr3"], 1, steps=2)
    samples, drawn = generate_crystals(generator, 6, [parse_condition(
        "decomposition_energy_ev_per_atom<=0", generator.properties)], seed=2, steps=4)
    assert drawn == 6 and len(samples) == 6
    summary = summarize(samples, drawn, 1.0, generator)
    assert 0.0 <= summary["validity"] <= 1.0
    assert set(summary) >= {"composition_validity", "structure_validity", "uniqueness",
                            "novelty", "samples_per_s", "failures"}


def test_site_separation_in_sampling_leaves_no_collapsed_sites(tiny_generator: Path) -> None:
    generator = CrystalGenerator.load(tiny_generator)

    def closest(cells: list) -> float:
        out = []
        for c in cells:
            d = c.structure.distance_matrix
            np.fill_diagonal(d, np.inf)
            out.append(d.min())
        return float(min(out))

    sizes = [5] * 40 + [10] * 20
    plain = generator.sample(sizes, steps=4, seed=0)
    parted = generator.sample(sizes, steps=4, seed=0, min_distance=1.2)
    assert closest(plain) < 0.5  # a barely trained generator stacks sites
    assert closest(parted) > 0.8
    assert all(c.structure is not None and structure_problem(c.structure) == ""
               for c in parted)


def test_selection_weighs_the_models_uncertainty() -> None:
    from materials.crystal_generation import CrystalSample, _select

    cell = polar_cell()

    def sample(gap: float, gap_std: float) -> CrystalSample:
        return CrystalSample("SrTiO3", cell, True, True,
                             predicted={"band_gap_ev": (gap, gap_std),
                                        "formation_energy_ev_per_atom": (0.1, 0.01)})

    sure, wild, outside = sample(2.0, 0.1), sample(500.0, 900.0), sample(0.5, 0.1)
    gap_window = [parse_condition("band_gap_ev>=1.5", PROPERTIES)]
    # the wild prediction lies inside on its mean, but its interval says it may well not
    assert _select([wild, outside, sure], gap_window, 2) == [sure, wild]
    # point targets rank by distance in units of the model's error
    point = [parse_condition("formation_energy_ev_per_atom=0.0", PROPERTIES),
             parse_condition("decomposition_energy_ev_per_atom<=0", PROPERTIES)]  # not predicted
    near = CrystalSample("SrTiO3", cell, True, True,
                         predicted={"formation_energy_ev_per_atom": (0.02, 0.01)})
    far = CrystalSample("SrTiO3", cell, True, True,
                        predicted={"formation_energy_ev_per_atom": (0.3, 0.01)})
    assert _select([far, near], point, 1, {"formation_energy_ev_per_atom": 0.013}) == [near]


def test_generate_command_writes_valid_cifs(tiny_generator: Path, tmp_path: Path) -> None:
    from flows.cli import app

    runner = CliRunner()
    out = tmp_path / "cells.csv"
    result = runner.invoke(app, ["generate", "perovskites", "--n", "5", "--steps", "4",
                                 "--weights", str(tiny_generator), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["mode"] == "de novo" and summary["samples"] == 5
    assert summary["min_distance"] == 1.2 and summary["structure_validity"] == 1.0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == summary["rows_written"] > 0
    for row in rows:
        cell = Structure.from_str(row["cif"], fmt="cif")
        assert cell.composition.reduced_formula == row["generated_formula"]
    formulas = tmp_path / "formulas.txt"
    formulas.write_text("# two compositions\nSrTiO3\nBaZrO3\n")
    result = runner.invoke(app, ["generate", "perovskites", "--compositions", str(formulas),
                                 "--per-composition", "2", "--steps", "4", "--weights",
                                 str(tiny_generator), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["formula"] for r in rows] == ["SrTiO3", "SrTiO3", "BaZrO3", "BaZrO3"]
    formulas.write_text("SrTiO3\nSr(Ti\n")
    result = runner.invoke(app, ["generate", "perovskites", "--compositions", str(formulas),
                                 "--weights", str(tiny_generator), "--out", str(out)])
    assert result.exit_code == 2 and "formula 2" in result.output
    result = runner.invoke(app, ["generate", "perovskites", "--n", "2", "--condition", "gap=1",
                                 "--weights", str(tiny_generator), "--out", str(out)])
    assert result.exit_code == 2 and "unknown property 'gap'" in result.output


def test_campaign_generator_uses_the_campaigns_targets(tiny_generator: Path) -> None:
    from materials.generators import CrystalFlowGenerator
    from pipeline.protocols import GenerationContext

    generator = CrystalFlowGenerator(CrystalFlowGenerator.Params(weights=str(tiny_generator),
                                                                 steps=4))
    context = GenerationContext(0, 5, condition={"band_gap_ev": 2.0, "gap_ev": 1.0},
                                id_prefix="r0-g0-",
                                bounds={"decomposition_energy_ev_per_atom": (None, 0.0),
                                        "band_gap_ev": (1.0, 3.0)})
    assert [str(c) for c in generator.campaign_conditions(context)] == [
        "band_gap_ev=2", "decomposition_energy_ev_per_atom<=0"]
    proposals = generator.sample(4, context=context)
    assert 0 < len(proposals) <= 4
    assert all(c.origin == "crystal_flow" and c.id.startswith("r0-g0-") for c in proposals)
    assert all(c.geometry is not None and c.geometry.lattice_angstrom is not None
               for c in proposals)
    assert len(generator.reference_keys()) == 6


def test_site_separation_reaches_sampling_and_spares_older_campaigns(
        tiny_generator: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    import materials.crystal_generation as crystal_generation
    from materials.generators import CrystalFlowGenerator
    from pipeline.config import parse_config
    from pipeline.protocols import GenerationContext

    seen: list[float] = []
    real = crystal_generation.generate_crystals

    def spy(*args: object, **kwargs: object) -> object:
        seen.append(float(kwargs["min_distance"]))  # type: ignore[arg-type]
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(crystal_generation, "generate_crystals", spy)
    default = CrystalFlowGenerator.Params(weights=str(tiny_generator), steps=2)
    for params in (default, default.model_copy(update={"min_distance": 0.0})):
        generator = CrystalFlowGenerator(params)
        generator.sample(2, context=GenerationContext(0, 5, id_prefix="r0-g0-"))
    assert seen == [1.2, 0.0]
    # a campaign created before the setting existed keeps its identity at the default
    data = yaml.safe_load((Path(__file__).parents[2] / "conf" / "generator_perovskites.yaml")
                          .read_text())
    identity = parse_config(data).identity()["generators"][0]["params"]
    assert "min_distance" not in identity and identity["anneal"] == 5.0
    data["generators"][0]["params"]["min_distance"] = 0.5
    assert parse_config(data).identity()["generators"][0]["params"]["min_distance"] == 0.5


def test_geometry_filter_rejects_cells_without_perovskite_sites() -> None:
    from materials.domain import structure_candidate
    from materials.filters import CrystalGeometryFilter

    odd = Structure(Lattice.cubic(4.0), ["V", "S", "S", "O", "O"],
                    [[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    result = CrystalGeometryFilter()([structure_candidate(polar_cell(), "a"),
                                      structure_candidate(odd, "b")])
    assert list(result.passed) == [True, False]
    assert "no perovskite sites" in result.reasons[1] and "both a cation and an anion" in \
        result.reasons[1]


def test_training_state_does_not_depend_on_the_device(tmp_path: Path) -> None:
    """A state written by a run on one device continues on another (a GPU run finished on the
    CPU): the device is not part of the state's identity, the recipe is."""
    cells = [polar_cell(a, b, x, length) for a, b, x, length in (
        ("Sr", "Ti", "O", 3.9), ("Ba", "Ti", "O", 4.0), ("K", "Nb", "O", 4.0))]
    labels = np.array([[-3.0, 1.8, np.nan], [-3.1, 1.6, np.nan], [-2.8, 1.5, np.nan]])
    state = tmp_path / "state.pt"
    config = CrystalFlowTraining(features=8, n_layers=1, n_frequencies=2, epochs=2, batch_size=2,
                                 double_share=0.0, device="cpu")
    first = train_crystal_generator(cells, labels, config, state_path=state)
    again = train_crystal_generator(cells, labels, config.model_copy(update={"device": "auto"}),
                                    state_path=state)
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="other settings or data"):
        train_crystal_generator(cells, labels, config.model_copy(update={"learning_rate": 0.1}),
                                state_path=state)
    with pytest.raises(ValueError, match="device"):
        CrystalFlowTraining(device="gpu0")


def test_stability_condition_selects_by_the_stability_model(tiny_generator: Path) -> None:
    from materials.crystal_generation import (
        CrystalSample,
        _select,
        generate_crystals,
        predict_stability,
    )
    from materials.stability_model import StabilityModel, stability_features

    generator = CrystalGenerator.load(tiny_generator)
    pairs = (("Sr", "Ti"), ("Ba", "Ti"), ("Ca", "Zr"), ("K", "Nb"), ("Na", "Ta"), ("La", "Al"))
    cells = [polar_cell(a, b, "O") for a, b in pairs]
    model = StabilityModel.fit(np.array([stability_features(c) for c in cells]),
                               np.array([-0.2, -0.15, 0.3, 0.35, 0.4, -0.1]), list("abcdef"))
    stable = [parse_condition("decomposition_energy_ev_per_atom<=0", PROPERTIES)]
    # a condition only the stability model predicts is enough to draw more and select
    kept, drawn = generate_crystals(generator, 3, stable, seed=1, steps=4, oversample=4,
                                    stability_model=model)
    assert drawn == 12 and len(kept) == 3
    samples = [CrystalSample(c.composition.reduced_formula, c, True, True) for c in cells]
    predict_stability(samples, model)
    name = "decomposition_energy_ev_per_atom"
    assert all(name in s.predicted for s in samples)
    best = _select(samples, stable, 3, {name: 0.1}, {name})
    assert {s.formula for s in best} == {"SrTiO3", "BaTiO3", "LaAlO3"}
    assert _select(samples, stable, 3) == samples[:3]  # without the model: not ranked
