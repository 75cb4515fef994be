"""Campaign configuration: YAML files in ``conf/`` loaded into pydantic models.

Every model forbids unknown keys, so a typo is an error. Component sections (generators, filters,
featurizer, surrogate, acquisition, oracle) name a registered implementation and give its
``params``, which are validated against that implementation's own ``Params`` model. A bad file
raises :class:`ConfigError` whose message names the file, the key, the bad value and what is
allowed; loading a config never writes anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline.objectives import Constraint, Objective
from pipeline.registry import (
    ACQUISITIONS,
    DOMAINS,
    FEATURIZERS,
    FILTERS,
    GENERATORS,
    ORACLES,
    PRIORS,
    SURROGATES,
    Registry,
    RegistryError,
)

OPERATIONAL_PARAMS = frozenset({"timeout_s", "threads", "max_memory_mb", "memory_limit_mb"})
"""Oracle params that change how a calculation runs, not what it answers."""


class ConfigError(ValueError):
    """A campaign file that cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ComponentConfig(_Strict):
    """A registered implementation and its parameters.

    Attributes:
        name: registry name of the implementation.
        params: its parameters, validated against the implementation's ``Params`` model.
    """

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)


class GeneratorConfig(ComponentConfig):
    """A generator and how many proposals it makes per round.

    Attributes:
        n_proposals: proposals per round from this generator (1 to 100,000).
    """

    n_proposals: int = Field(default=200, ge=1, le=100_000)


class AcquisitionConfig(ComponentConfig):
    """The acquisition step.

    Attributes:
        batch_size: q, the number of candidates sent to the oracle per round (1 to 1,000).
        initial_batch: acquisition used while fewer than ``min_labels`` oracle values exist.
        min_labels: successful oracle results needed before the surrogate is used (>= 2).
    """

    batch_size: int = Field(default=8, ge=1, le=1000)
    initial_batch: str = "maxmin"
    min_labels: int = Field(default=4, ge=2, le=10_000)


class OracleConfig(ComponentConfig):
    """The oracle and how many requests run at once.

    Attributes:
        max_parallel: oracle requests running at the same time (1 to 256).
    """

    max_parallel: int = Field(default=2, ge=1, le=256)


class FidelityConfig(_Strict):
    """A level of truth results may carry.

    Attributes:
        name: the fidelity name results carry (``dft-cheap-dft``, ``dft-standard``, ``lab``).
        cost: cost of one result at this fidelity, in the campaign's own unit (for example
            CPU-hours or euros); reported per round and used to weigh fidelities.
        oracle: an oracle the campaign may run at this fidelity, besides its main ``oracle``
            (whose results carry its own fidelity); without one, results at this fidelity
            only come in from outside (``invdes results import``).
    """

    name: str = Field(min_length=1, max_length=64)
    cost: float = Field(gt=0)
    oracle: OracleConfig | None = None


class StoreConfig(_Strict):
    """Where the campaign store lives.

    Attributes:
        url: any SQLAlchemy URL (``postgresql+psycopg://...``); default: SQLite in the home.
    """

    url: str | None = None


class TrackingConfig(_Strict):
    """MLflow tracking.

    Attributes:
        experiment: MLflow experiment name; default: the campaign name.
        tracking_uri: MLflow tracking URI; default: SQLite in the home.
    """

    experiment: str | None = None
    tracking_uri: str | None = None


class ExecutorConfig(_Strict):
    """Where the oracle calculations of a round run.

    Attributes:
        kind: ``local`` (a thread pool of ``oracle.max_parallel`` in the campaign's process;
            each calculation in its own child process) or ``dask`` (Prefect's Dask task
            runner: one task per calculation on a Dask cluster).
        address: the Dask scheduler (``tcp://host:8786``); without one, ``dask`` starts a
            local cluster of ``n_workers`` processes for the run.
        n_workers: workers of that local cluster (1 to 256).
        threads_per_worker: calculations at once per worker of that local cluster.
        retries: how often a calculation whose task failed for a transient reason (a lost
            worker, a broken connection) is sent again before it is stored as failed.
        retry_delay_s: the wait before the first retry, in seconds; doubled for each further one.
    """

    kind: Literal["local", "dask"] = "local"
    address: str | None = Field(default=None, min_length=1)
    n_workers: int = Field(default=2, ge=1, le=256)
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    retries: int = Field(default=2, ge=0, le=10)
    retry_delay_s: float = Field(default=2.0, ge=0.0, le=3600.0)

    @model_validator(mode="after")
    def _address_needs_dask(self) -> Self:
        if self.address is not None and self.kind != "dask":
            raise ValueError(f"executor.address={self.address!r} needs kind: dask")
        return self


class BudgetConfig(_Strict):
    """When a campaign stops for good (scheduled runs and ``invdes run`` alike).

    Attributes:
        oracle_cost: total oracle cost, in the fidelities' cost unit (1 per calculation when
            the campaign lists no costs); no new round starts once the rounds done have spent it.
        rounds: total rounds, never exceeded whatever a run asks for.
    """

    oracle_cost: float | None = Field(default=None, gt=0)
    rounds: int | None = Field(default=None, ge=1, le=100_000)


class CampaignConfig(_Strict):
    """One design campaign.

    Attributes:
        name: campaign name; letters, digits, ``-`` and ``_`` (the store's key).
        description: free text for people.
        domain: a registered domain: ``molecules`` or ``perovskites``.
        seed: master seed; the same config and seed give the same campaign.
        rounds: number of rounds to run in total (1 to 1,000).
        objective: the property target.
        constraints: outcome constraints a hit must also meet.
        pareto_with: further objectives; with any, the campaign searches the Pareto front of
            ``objective`` and these (needs a multi-objective acquisition such as ``qlognehvi``),
            and a hit must meet every objective's target.
        predict_properties: further oracle properties the surrogate predicts for people to see.
        generators: one or more generators; their proposals are pooled.
        filters: validity filters, applied in order.
        featurizer: turns candidates into surrogate inputs.
        surrogate: the property model fitted on the campaign's oracle results; default: the
            domain's best for the objective (for molecules and a property the pretrained
            model predicts, ``prior_gp`` around it, else ``tanimoto_gp``).
        prior: a pretrained property model (``pretrained_painn``) the surrogate starts from and
            corrects as labels accumulate: ``prior_gp`` uses its predictions as the GP's mean
            (recalibrated to the campaign's level of theory), ``multifidelity_gp`` as its least
            trusted fidelity. Left out, a surrogate that can use one gets the domain's
            pretrained model when it predicts the objective; ``prior: null`` means none.
        acquisition: picks the oracle batch from the filtered pool.
        oracle: the expensive truth.
        fidelities: the fidelities the campaign's results may carry, from the least to the most
            trusted (the oracle's own among them); default: only the oracle's. Where a design
            has results at several, the most trusted counts (ranking, hits), and a
            multi-fidelity surrogate learns from all of them. The list may grow between runs
            of a campaign (for example when lab results start to arrive).
        store: campaign store settings.
        tracking: MLflow settings.
        executor: where the oracle calculations run (local threads or a Dask cluster).
        budget: the oracle cost and rounds after which the campaign stops for good.
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    description: str = ""
    domain: str
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    rounds: int = Field(ge=1, le=1000)
    objective: Objective
    constraints: list[Constraint] = Field(default_factory=list)
    pareto_with: list[Objective] = Field(default_factory=list)
    predict_properties: list[str] = Field(default_factory=list)
    generators: list[GeneratorConfig] = Field(min_length=1)
    filters: list[ComponentConfig] = Field(default_factory=list)
    featurizer: ComponentConfig
    surrogate: ComponentConfig | None = None
    prior: ComponentConfig | None = None
    acquisition: AcquisitionConfig
    oracle: OracleConfig
    fidelities: list[FidelityConfig] = Field(default_factory=list)
    store: StoreConfig = Field(default_factory=StoreConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)

    @field_validator("domain")
    @classmethod
    def _known_domain(cls, value: str) -> str:
        if value not in DOMAINS:
            raise ValueError(f"unknown domain {value!r}; known: {', '.join(DOMAINS.names())}")
        return value

    @model_validator(mode="after")
    def _check_objectives(self) -> Self:
        props = [self.objective.property] + [o.property for o in self.pareto_with]
        if len(set(props)) != len(props):
            raise ValueError(f"objective and pareto_with name the same property twice: {props}")
        return self

    @model_validator(mode="after")
    def _check_fidelities(self) -> Self:
        names = [f.name for f in self.fidelities]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"fidelities name {twice} more than once")
        return self

    def trust_levels(self, oracle_fidelity: str | None = None) -> dict[str, int]:
        """Fidelity name -> trust level (0 = least trusted); without ``fidelities``, the
        oracle's fidelity (when given) is the only one."""
        if not self.fidelities:
            return {oracle_fidelity: 0} if oracle_fidelity else {}
        return {f.name: i for i, f in enumerate(self.fidelities)}

    def fidelity_cost(self, name: str) -> float:
        """Cost of one result at fidelity ``name`` (1 when the campaign lists no costs)."""
        return next((f.cost for f in self.fidelities if f.name == name), 1.0)

    def objectives(self) -> list[Objective]:
        """The objective followed by the ``pareto_with`` objectives."""
        return [self.objective, *self.pareto_with]

    @model_validator(mode="after")
    def _check_batch(self) -> Self:
        total = sum(g.n_proposals for g in self.generators)
        if self.acquisition.batch_size > total:
            raise ValueError(
                f"acquisition.batch_size={self.acquisition.batch_size} exceeds the "
                f"{total} proposals per round of the generators"
            )
        return self

    def identity(self) -> dict[str, Any]:
        """The config without the settings that may change between runs of one campaign.

        Those are: ``rounds``, ``description``, ``store``, ``tracking``, ``fidelities``,
        ``executor``, ``budget``, ``oracle.max_parallel`` and the oracle's operational limits
        (:data:`OPERATIONAL_PARAMS`). Parameters are written with their defaults, except those a
        stage's ``Params`` lists in ``added_later`` while they are at their default.
        """
        data = self.model_dump(mode="json",
                               exclude={"rounds", "description", "store", "tracking",
                                        "fidelities", "executor", "budget"})
        for section, registry in _SECTIONS.items():  # defaults written out change nothing
            entries = data[section] if isinstance(data[section], list) else [data[section]]
            for entry in (e for e in entries if e is not None):
                model = registry.params_model(entry["name"])
                params = model.model_validate(entry["params"]).model_dump(mode="json")
                # settings a later version added: at their default they leave the identity of
                # a campaign created before them as it was, so that it still resumes
                for key in getattr(model, "added_later", ()):
                    if params.get(key) == model.model_fields[key].default:
                        params.pop(key)
                entry["params"] = params
        data["oracle"].pop("max_parallel")
        data["oracle"]["params"] = {k: v for k, v in data["oracle"]["params"].items()
                                    if k not in OPERATIONAL_PARAMS}
        return data


_SECTIONS: dict[str, Registry[Any]] = {
    "generators": GENERATORS,
    "filters": FILTERS,
    "featurizer": FEATURIZERS,
    "surrogate": SURROGATES,
    "prior": PRIORS,
    "acquisition": ACQUISITIONS,
    "oracle": ORACLES,
}


def _format_loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for listing allowed keys)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = field.annotation
        # unwrap list[X] and X | None
        for _ in range(3):
            args = getattr(current, "__args__", None)
            if args:
                models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
                current = models[0] if models else args[0]
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe_errors(
    error: ValidationError, model: type[BaseModel], prefix: tuple[int | str, ...] = ()
) -> list[str]:
    lines = []
    for err in error.errors():
        loc = tuple(err["loc"])
        where = _format_loc(prefix + loc)
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = ", ".join(owner.model_fields) if owner else "see the documentation"
            lines.append(f"{where}: unknown key; allowed keys here: {allowed}")
        elif err["type"] == "missing":
            lines.append(f"{where}: required key is missing")
        else:
            msg = re.sub(r"^Value error, ", "", err["msg"])
            value = err.get("input")
            shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
            lines.append(f"{where}: {msg}{shown}")
    return lines


def parse_config(data: Any, source: str = "<config>") -> CampaignConfig:
    """Validates a config mapping, including each component's ``params``.

    Args:
        data: the parsed YAML document.
        source: file name for error messages.

    Raises:
        ConfigError: naming ``source``, the key and the allowed values.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a campaign file must be a YAML mapping, got {type(data).__name__}")
    try:
        config = CampaignConfig.model_validate(data)
    except ValidationError as exc:
        lines = _describe_errors(exc, CampaignConfig)
        raise ConfigError(f"{source}: invalid campaign config\n  " + "\n  ".join(lines)) from None
    try:
        config = with_domain_defaults(config, prior_given="prior" in data)
    except RegistryError as exc:
        raise ConfigError(f"{source}: invalid campaign config\n  domain: {exc}") from None
    problems: list[str] = []
    for section, registry in _SECTIONS.items():
        value = getattr(config, section)
        entries = list(enumerate(value)) if isinstance(value, list) else [(None, value)]
        for i, component in ((i, c) for i, c in entries if c is not None):
            base: tuple[int | str, ...] = (section,) if i is None else (section, i)
            try:
                model = registry.params_model(component.name)
            except RegistryError as exc:
                problems.append(f"{_format_loc((*base, 'name'))}: {exc}")
                continue
            try:
                model.model_validate(component.params)
            except ValidationError as exc:
                problems += _describe_errors(exc, model, (*base, "params"))
    if not problems:
        oracle = ORACLES.build(config.oracle.name, config.oracle.params)
        props = oracle.properties()
        if config.fidelities and oracle.fidelity not in config.trust_levels(oracle.fidelity):
            problems.append(f"fidelities: the oracle's fidelity {oracle.fidelity!r} is not listed; "
                            f"listed: {', '.join(f.name for f in config.fidelities)}")
        problems += _check_fidelity_oracles(config, oracle.fidelity)
        wanted = [("objective.property", config.objective.property)]
        wanted += [(f"pareto_with[{i}].property", o.property)
                   for i, o in enumerate(config.pareto_with)]
        wanted += [(f"constraints[{i}].property", c.property)
                   for i, c in enumerate(config.constraints)]
        wanted += [(f"predict_properties[{i}]", p) for i, p in enumerate(config.predict_properties)]
        for where, prop in wanted:
            if prop not in props:
                problems.append(f"{where}: oracle {config.oracle.name!r} does not return "
                                f"{prop!r}; it returns: {', '.join(props)}")
    if config.acquisition.name in ACQUISITIONS:
        multi = getattr(ACQUISITIONS.get(config.acquisition.name), "multi_objective", False)
        if config.pareto_with and not multi:
            problems.append(
                f"acquisition.name: {config.acquisition.name!r} optimises one objective but "
                f"pareto_with names {len(config.pareto_with)} more; use one of: "
                + ", ".join(n for n in ACQUISITIONS.names()
                            if getattr(ACQUISITIONS.get(n), "multi_objective", False))
            )
        if multi and not config.pareto_with:
            problems.append(f"acquisition.name: {config.acquisition.name!r} needs further "
                            "objectives in pareto_with")
    surrogate_name = config.surrogate.name if config.surrogate else ""
    if (config.prior is not None and surrogate_name in SURROGATES
            and not _takes_prior(surrogate_name)):
        problems.append(
            f"prior: surrogate {surrogate_name!r} cannot use a prior; use one of: "
            + ", ".join(n for n in SURROGATES.names() if _takes_prior(n)))
    initial = config.acquisition.initial_batch
    model_free = [n for n in ACQUISITIONS.names()
                  if not getattr(ACQUISITIONS.get(n), "needs_surrogate", False)]
    if initial not in model_free:
        problems.append(
            f"acquisition.initial_batch: {initial!r} is not an acquisition that works without a "
            f"surrogate; allowed: {', '.join(model_free)}"
        )
    if problems:
        raise ConfigError(f"{source}: invalid campaign config\n  " + "\n  ".join(problems))
    return config


def _takes_prior(surrogate: str) -> bool:
    """Whether the registered surrogate can use a prior (``prior_gp`` as its mean, a
    multi-fidelity one as its least trusted fidelity)."""
    cls = SURROGATES.get(surrogate)
    return bool(getattr(cls, "multi_fidelity", False) or getattr(cls, "uses_prior", False))


def with_domain_defaults(config: CampaignConfig, prior_given: bool) -> CampaignConfig:
    """Fills the surrogate and the prior the file leaves out with the domain's defaults.

    The domain (:data:`pipeline.registry.DOMAINS`) names them for the objective property
    (``default_surrogate(property) -> (surrogate, prior)``, each a ``{name, params}`` mapping or
    None): without a ``surrogate``, both are used; with a surrogate that can use a prior and no
    ``prior`` key, the default prior is added. An explicit ``prior: null`` is kept.
    """
    surrogate, prior = DOMAINS.build(config.domain).default_surrogate(config.objective.property)
    update: dict[str, Any] = {}
    if config.surrogate is None:
        update["surrogate"] = ComponentConfig.model_validate(surrogate)
        chosen = surrogate["name"]
    else:
        chosen = config.surrogate.name
    if not prior_given and prior is not None and chosen in SURROGATES and _takes_prior(chosen):
        update["prior"] = ComponentConfig.model_validate(prior)
    return config.model_copy(update=update) if update else config


def _check_fidelity_oracles(config: CampaignConfig, main_fidelity: str) -> list[str]:
    """Problems with the oracles listed under ``fidelities``."""
    problems: list[str] = []
    runnable = 1
    for i, fid in enumerate(config.fidelities):
        if fid.oracle is None:
            continue
        where = f"fidelities[{i}].oracle"
        if fid.name == main_fidelity:
            problems.append(f"{where}: {fid.name!r} is the main oracle's fidelity; the main "
                            "oracle runs it")
            continue
        try:
            model = ORACLES.params_model(fid.oracle.name)
            model.model_validate(fid.oracle.params)
        except RegistryError as exc:
            problems.append(f"{where}.name: {exc}")
            continue
        except ValidationError as exc:
            problems += _describe_errors(exc, model, ("fidelities", i, "oracle", "params"))
            continue
        other = ORACLES.build(fid.oracle.name, fid.oracle.params)
        if other.fidelity != fid.name:
            problems.append(f"{where}: its results carry fidelity {other.fidelity!r}, not "
                            f"{fid.name!r} (set its params.fidelity, or rename the entry)")
        if config.objective.property not in other.properties():
            problems.append(f"{where}: it does not return {config.objective.property!r}")
        runnable += 1
    surrogate_name = config.surrogate.name if config.surrogate else ""
    if runnable > 1 and surrogate_name in SURROGATES and not getattr(
            SURROGATES.get(surrogate_name), "multi_fidelity", False):
        problems.append(f"surrogate.name: {runnable} fidelities can be run, which needs a "
                        f"multi-fidelity surrogate, not {surrogate_name!r}; use one of: "
                        + ", ".join(n for n in SURROGATES.names()
                                    if getattr(SURROGATES.get(n), "multi_fidelity", False)))
    return problems


def load_config(path: str | Path) -> CampaignConfig:
    """Reads and validates a campaign YAML file.

    Raises:
        ConfigError: the file is missing, unreadable, not YAML, or not a valid campaign.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: campaign file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config(data, str(path))
