"""Each kind of bad campaign file: one clear error naming file and key, exit code 2, no writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flows.cli import app
from pipeline.config import ConfigError, load_config, parse_config
from tests.conftest import tiny_campaign, write_yaml

REPO = Path(__file__).resolve().parents[2]


def _set(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node: Any = data
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return data


def _drop(data: dict[str, Any], key: str) -> dict[str, Any]:
    del data[key]
    return data


CASES = {
    "unknown top-level key": (
        _set(tiny_campaign(), "roundz", 3),
        ["roundz: unknown key; allowed keys here: name, description, domain, seed, rounds"]),
    "unknown nested key": (
        _set(tiny_campaign(), "objective.lo", 1.0),
        ["objective.lo: unknown key; allowed keys here: property, goal, low, high, threshold"]),
    "unknown component param": (
        _set(tiny_campaign(), "generators.0.params.mutaton_rate", 0.5),
        ["generators[0].params.mutaton_rate: unknown key; allowed keys here: population_size, "
         "mutation_rate"]),
    "wrong type": (
        _set(tiny_campaign(), "rounds", "many"),
        ["rounds: Input should be a valid integer", "(got 'many')"]),
    "out of range": (
        _set(tiny_campaign(), "acquisition.batch_size", 0),
        ["acquisition.batch_size: Input should be greater than or equal to 1", "(got 0)"]),
    "out of range component param": (
        _set(tiny_campaign(), "oracle.params.timeout_s", -5),
        ["oracle.params.timeout_s: Input should be greater than 0", "(got -5)"]),
    "bad choice": (
        _set(tiny_campaign(), "objective.goal", "closest"),
        ["objective.goal: Input should be 'maximize', 'minimize' or 'window'", "(got 'closest')"]),
    "unknown component": (
        _set(tiny_campaign(), "oracle.name", "pyscff"),
        ["oracle.name: unknown oracle 'pyscff'; known: chgnet, pyscf, pyscf_pbc"]),
    "missing required key": (
        _drop(tiny_campaign(), "objective"), ["objective: required key is missing"]),
    "inconsistent window": (
        _set(tiny_campaign(), "objective.low", 20.0), ["window needs low < high"]),
    "initial batch that needs a surrogate": (
        _set(tiny_campaign(), "acquisition.initial_batch", "qlognei"),
        ["acquisition.initial_batch: 'qlognei' is not an acquisition that works without a "
         "surrogate; allowed: maxmin, random"]),
    "unknown oracle level": (
        _set(tiny_campaign(), "oracle.params.level", "best"),
        ["oracle.params: unknown level 'best'; known: fast, cheap-dft, standard, accurate, qm9"]),
    "objective property the oracle lacks": (
        _set(tiny_campaign(), "objective.property", "gap_kcal"),
        ["objective.property: oracle 'pyscf' does not return 'gap_kcal'; it returns: "
         "energy_hartree, homo_ev, lumo_ev, gap_ev, dipole_debye"]),
    "constraint without bounds": (
        tiny_campaign(constraints=[{"property": "dipole_debye"}]),
        ["constraints[0]: constraint on 'dipole_debye' needs 'min' or 'max'"]),
    "constraint on a property the oracle lacks": (
        tiny_campaign(constraints=[{"property": "sa_score", "max": 4.0}]),
        ["constraints[0].property: oracle 'pyscf' does not return 'sa_score'"]),
    "generator element it cannot add": (
        _set(tiny_campaign(), "generators.0.params.elements", ["C", "Xe"]),
        ["generators[0].params.elements: graph_ga cannot add elements ['Xe']"]),
    "missing seed library": (
        _set(tiny_campaign(), "generators.0.params.seed_library", "/nonexistent/seeds.smi"),
        ["generators[0].params.seed_library: /nonexistent/seeds.smi: cannot read seed library"]),
    "pareto objectives with a single-objective acquisition": (
        tiny_campaign(pareto_with=[{"property": "dipole_debye", "goal": "minimize"}]),
        ["acquisition.name: 'qlognei' optimises one objective but pareto_with names 1 more; "
         "use one of: qlognehvi"]),
    "multi-objective acquisition without pareto objectives": (
        _set(tiny_campaign(), "acquisition.name", "qlognehvi"),
        ["acquisition.name: 'qlognehvi' needs further objectives in pareto_with"]),
    "the same property twice": (
        tiny_campaign(pareto_with=[{"property": "gap_ev", "goal": "minimize"}]),
        ["objective and pareto_with name the same property twice"]),
    "a fidelity listed twice": (
        tiny_campaign(fidelities=[{"name": "dft-fast", "cost": 1}, {"name": "dft-fast", "cost": 2}]),
        ["fidelities name ['dft-fast'] more than once"]),
    "the oracle's fidelity not listed": (
        tiny_campaign(fidelities=[{"name": "lab", "cost": 100}]),
        ["fidelities: the oracle's fidelity 'dft-fast' is not listed; listed: lab"]),
    "a free cost": (
        tiny_campaign(fidelities=[{"name": "dft-fast", "cost": 0}]),
        ["fidelities[0].cost"]),
    "batch larger than proposals": (
        _set(tiny_campaign(), "acquisition.batch_size", 500),
        ["acquisition.batch_size=500 exceeds the 40 proposals"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_clear_error_exit_2_and_writes_nothing(
    case: str, tmp_path: Path, home: Path
) -> None:
    data, expected = CASES[case]
    config = write_yaml(tmp_path / "bad.yaml", data)
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert f"{config}: invalid campaign config" in message
    for part in expected:
        assert " ".join(part.split()) in message, message
    assert not home.exists()


def test_missing_file_and_broken_yaml(tmp_path: Path, home: Path) -> None:
    missing = CliRunner().invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert "nope.yaml: campaign file not found" in " ".join(missing.output.split())
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    result = CliRunner().invoke(app, ["run", str(broken)])
    assert result.exit_code == 2 and "not valid YAML" in result.output
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just text\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping, got str"):
        load_config(scalar)
    assert not home.exists()


def test_shipped_configs_are_valid() -> None:
    for path in sorted((REPO / "conf").glob("*.yaml")):
        config = load_config(path)
        assert config.name and config.rounds >= 1


def test_identity_ignores_rounds_and_description() -> None:
    a = parse_config(tiny_campaign())
    b = parse_config(tiny_campaign(rounds=9, description="longer"))
    assert a.identity() == b.identity()
    assert a.identity() != parse_config(tiny_campaign(seed=99)).identity()
    operational = tiny_campaign(store={"url": "sqlite:////elsewhere.db"})
    operational["oracle"] = {"name": "pyscf", "max_parallel": 1,
                             "params": {"level": "fast", "timeout_s": 5, "threads": 2}}
    assert parse_config(operational).identity() == a.identity()
    with_lab = tiny_campaign(fidelities=[{"name": "dft-fast", "cost": 1},
                                         {"name": "lab", "cost": 500}])
    assert parse_config(with_lab).identity() == a.identity()  # the lab may join later
    explicit = tiny_campaign()
    explicit["oracle"] = {"name": "pyscf", "params": {"level": "fast", "fukui": "frontier"}}
    assert parse_config(explicit).identity() == a.identity()  # a default written out
    other_level = tiny_campaign()
    other_level["oracle"] = {"name": "pyscf", "params": {"level": "standard"}}
    assert parse_config(other_level).identity() != a.identity()


def test_the_domain_fills_in_the_surrogate_and_the_pretrained_prior() -> None:
    data = tiny_campaign()
    del data["surrogate"]
    config = parse_config(data)  # gap_ev: the pretrained property model predicts it
    assert config.surrogate is not None and config.surrogate.name == "prior_gp"
    assert config.prior is not None and config.prior.name == "pretrained_painn"
    explicit = parse_config(tiny_campaign())  # tanimoto_gp named: exactly that, no prior
    assert explicit.surrogate is not None and explicit.surrogate.name == "tanimoto_gp"
    assert explicit.prior is None
    multi = parse_config(tiny_campaign(surrogate={"name": "multifidelity_gp"}))
    assert multi.prior is not None and multi.prior.name == "pretrained_painn"
    switched_off = parse_config(tiny_campaign(surrogate={"name": "prior_gp"}, prior=None))
    assert switched_off.prior is None  # an explicit 'prior: null' is kept
    dipole = tiny_campaign(objective={"property": "dipole_debye", "goal": "maximize"})
    del dipole["surrogate"]
    other = parse_config(dipole)  # not a property the pretrained model predicts
    assert other.surrogate is not None and other.surrogate.name == "tanimoto_gp"
    assert other.prior is None
    for path in sorted((REPO / "conf").glob("*.yaml")):  # shipped molecules: the prior everywhere
        shipped = load_config(path)
        if shipped.domain != "molecules":
            continue
        assert shipped.prior is not None and shipped.prior.name == "pretrained_painn", path
        assert [f.name for f in shipped.filters][-1] == "embeddable"
        assert "plausible" in [f.name for f in shipped.filters]


def test_shipped_perovskite_configs_load_with_their_domain_defaults() -> None:
    demo = load_config(REPO / "conf" / "demo_perovskites.yaml")
    assert demo.domain == "perovskites" and demo.oracle.name == "chgnet"
    assert demo.surrogate is not None and demo.surrogate.name == "tanimoto_gp"
    assert demo.prior is None  # CHGNet's decomposition energy is no property of the crystal model
    pbc = load_config(REPO / "conf" / "perovskites_pbc.yaml")
    assert pbc.prior is not None and pbc.prior.name == "crystal_painn"
    assert pbc.oracle.name == "pyscf_pbc"
    with pytest.raises(ConfigError, match="unknown domain 'crystals'; known: molecules, "
                                          "perovskites"):
        parse_config({**tiny_campaign(), "domain": "crystals"})
