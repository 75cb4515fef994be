"""The stages of a design round, on top of the store; no chemistry and no orchestration here.

A round is: generate proposals -> validity filters -> fit surrogate -> acquisition picks a batch
-> oracle -> record metrics. Each stage reads what it needs from the store and commits its output
with the round's stage marker in one transaction, so :class:`CampaignEngine` can be driven by any
orchestrator (the Prefect flows of :mod:`flows`) and resumed after a crash at any point.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.acquisition import Acquisition, Selection, information_per_cost
from pipeline.config import CampaignConfig
from pipeline.metrics import campaign_totals, lab_metrics, surrogate_errors
from pipeline.protocols import (
    CachingOracle,
    Featurizer,
    Filter,
    GenerationContext,
    Generator,
    Oracle,
    Preparer,
    Prior,
    ScoredDesign,
    Surrogate,
)
from pipeline.ranking import (
    RankedCandidate,
    is_feasible,
    is_hit,
    ok_values_by_candidate,
    pareto_front,
    preferred_evaluations,
    rank_candidates,
)
from pipeline.registry import (
    ACQUISITIONS,
    FEATURIZERS,
    FILTERS,
    GENERATORS,
    ORACLES,
    PREPARERS,
    PRIORS,
    SURROGATES,
)
from pipeline.store import CampaignRecord, CandidateRecord, Store
from pipeline.types import (
    Candidate,
    CandidateStatus,
    EvaluationStatus,
    OracleResult,
    Prediction,
)

logger = logging.getLogger(__name__)

SEEN_FILTER = "not_seen_before"
"""Name under which the engine's own de-duplication rejects candidates."""
REVIEW_FILTER = "review"
"""Filter name of proposals a reviewer rejected earlier in the campaign."""

@dataclass
class Components:
    """The implementations a campaign runs with, built from its config.

    Attributes:
        generators: (name, proposals per round, generator).
        filters: (name, filter), applied in order.
        featurizer: candidates -> features (n, d).
        make_surrogate: builds a fresh, unfitted surrogate.
        acquisition: picks the batch once the surrogate has enough labels.
        initial_acquisition: picks the batch before that.
        oracle: the expensive truth.
        prepare: attaches what the oracle needs (a 3D geometry) to a candidate.
        prior: pretrained predictions the surrogate starts from, if configured.
        fidelity_oracles: further oracles by the fidelity they run (config ``fidelities``).
    """

    generators: list[tuple[str, int, Generator]]
    filters: list[tuple[str, Filter]]
    featurizer: Featurizer
    make_surrogate: Callable[[], Surrogate]
    acquisition: Acquisition
    initial_acquisition: Acquisition
    oracle: Oracle
    prepare: Preparer
    prior: Prior | None = None
    fidelity_oracles: dict[str, Oracle] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: CampaignConfig) -> Components:
        """Builds every component from the registries (domains must be imported first)."""
        surrogate_cfg = config.surrogate
        if surrogate_cfg is None:
            raise ValueError("the config names no surrogate: load campaign files with "
                             "pipeline.config.parse_config, which fills in the domain's default")
        return cls(
            generators=[
                (g.name, g.n_proposals, GENERATORS.build(g.name, g.params))
                for g in config.generators
            ],
            filters=[(f.name, FILTERS.build(f.name, f.params)) for f in config.filters],
            featurizer=FEATURIZERS.build(config.featurizer.name, config.featurizer.params),
            make_surrogate=lambda: SURROGATES.build(surrogate_cfg.name, surrogate_cfg.params),
            acquisition=ACQUISITIONS.build(config.acquisition.name, config.acquisition.params),
            initial_acquisition=ACQUISITIONS.build(config.acquisition.initial_batch),
            oracle=ORACLES.build(config.oracle.name, config.oracle.params),
            prepare=PREPARERS.build(config.domain),
            prior=(PRIORS.build(config.prior.name, config.prior.params) if config.prior
                   else None),
            fidelity_oracles={f.name: ORACLES.build(f.oracle.name, f.oracle.params)
                              for f in config.fidelities if f.oracle is not None},
        )


@dataclass(frozen=True, slots=True)
class OracleRequest:
    """A calculation to launch: the prepared candidate, its content key and its audit row."""

    candidate: Candidate
    request_key: str
    call_id: int
    fidelity: str


@dataclass
class RoundTimer:
    """Wall time of each stage of a round, seconds."""

    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, start: float) -> None:
        """Adds the time since ``start`` (``time.perf_counter()``) to ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start


class CampaignEngine:
    """Runs the stages of one campaign against its store.

    Args:
        config: the validated campaign config.
        store: where everything is kept.
        components: the implementations (default: built from the config's registry names).
    """

    def __init__(
        self, config: CampaignConfig, store: Store, components: Components | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.components = components or Components.from_config(config)
        self.objective = config.objective
        self.timer = RoundTimer()
        oracle_props = self.components.oracle.properties()
        if self.objective.property not in oracle_props:
            raise ValueError(
                f"objective property {self.objective.property!r} is not returned by oracle "
                f"{config.oracle.name!r}; it returns: {', '.join(oracle_props)}"
            )
        for what, props in (("predict_properties", config.predict_properties),
                            ("constraints", [c.property for c in config.constraints])):
            unknown = [p for p in props if p not in oracle_props]
            if unknown:
                raise ValueError(
                    f"{what} {unknown} are not returned by oracle {config.oracle.name!r}; "
                    f"it returns: {', '.join(oracle_props)}"
                )
        main = self.components.oracle
        self.trust = config.trust_levels(main.fidelity)
        self.oracles: dict[str, Oracle] = {main.fidelity: main, **self.components.fidelity_oracles}
        """Every oracle the campaign can run, by fidelity."""
        self.runnable = sorted(self.oracles, key=lambda f: self.trust.get(f, -1))
        """Their fidelities, least trusted first."""
        for oracle in self.oracles.values():
            if isinstance(oracle, CachingOracle):
                oracle.bind_cache(store)
        self._objective_fit: tuple[Any, dict[str, int]] | None = None
        self._fit_rows: dict[str, int] = {}
        """Rows per fidelity the objective's surrogate was fitted on in this round."""
        self.surrogate_properties = list(dict.fromkeys(
            [o.property for o in config.objectives()] + [c.property for c in config.constraints]
            + list(config.predict_properties)
        ))

    @property
    def name(self) -> str:
        """Campaign name."""
        return self.config.name

    def open(self, rounds_target: int | None = None) -> CampaignRecord:
        """Creates or reopens the campaign in the store."""
        return self.store.open_campaign(
            self.name, self.config.domain, self.config.model_dump(mode="json"),
            self.config.identity(), rounds_target or self.config.rounds,
        )

    def round_stage(self, round_index: int) -> str | None:
        """The last stage the round committed, or None."""
        record = self.store.round(self.name, round_index)
        return None if record is None else record.stage

    # stage 1+2: generate and filter ---------------------------------------------------------------

    def _round_seed(self, round_index: int, salt: int) -> int:
        state = np.random.SeedSequence([self.config.seed, round_index, salt]).generate_state(1)
        return int(state[0])

    def population(self) -> tuple[ScoredDesign, ...]:
        """Designs with an ok oracle value of the objective property, best first; designs that
        break a constraint come after all that meet them."""
        records = {r.candidate.id: r for r in self.store.candidates(self.name)}
        measured = ok_values_by_candidate(self.store.evaluations(self.name), self.trust)
        ranked = []
        for cid, values in measured.items():
            if self.objective.property not in values:
                continue
            rec = records[cid]
            score = float(self.objective.score(values[self.objective.property]))
            design = ScoredDesign(rec.candidate.key, rec.candidate.representation, score,
                                  dict(values))
            ranked.append((not is_feasible(self.config, values), -score, design))
        ranked.sort(key=lambda item: item[:2])
        return tuple(design for _, _, design in ranked)

    def generate(self, round_index: int) -> list[CandidateRecord]:
        """Proposes, filters and stores a round's candidates (stage ``generated``).

        Every proposal is stored: rejected ones with the filter and the reason.
        """
        start = time.perf_counter()
        population = self.population()
        proposals: list[Candidate] = []
        for gi, (_name, n, generator) in enumerate(self.components.generators):
            context = GenerationContext(
                round_index=round_index,
                seed=self._round_seed(round_index, gi),
                population=population,
                condition=self._condition(),
                id_prefix=f"r{round_index}-g{gi}-",
                bounds=self._bounds(),
            )
            proposals += generator.sample(n, context=context)
        self.timer.add("generate", start)
        start = time.perf_counter()
        records = self.apply_filters(proposals)
        self.store.add_round_candidates(self.name, round_index, records)
        self.timer.add("filter", start)
        return records

    def _condition(self) -> dict[str, float]:
        obj = self.objective
        if obj.goal == "window":
            assert obj.low is not None and obj.high is not None
            return {obj.property: 0.5 * (obj.low + obj.high)}
        return {}

    def _bounds(self) -> dict[str, tuple[float | None, float | None]]:
        obj = self.objective
        bounds: dict[str, tuple[float | None, float | None]] = {}
        if obj.threshold is not None and obj.goal == "minimize":
            bounds[obj.property] = (None, obj.threshold)
        elif obj.threshold is not None and obj.goal == "maximize":
            bounds[obj.property] = (obj.threshold, None)
        for c in self.config.constraints:
            bounds[c.property] = (c.min, c.max)
        return bounds

    def apply_filters(self, proposals: Sequence[Candidate]) -> list[CandidateRecord]:
        """Runs the validity filters in order, then drops designs a reviewer rejected and those
        the campaign has already seen.

        Returns:
            One record per proposal, in input order: ``POOL`` or ``REJECTED`` with the first
            filter that rejected it and why.
        """
        verdict: list[tuple[str, str] | None] = [None] * len(proposals)
        for fname, flt in self.components.filters:
            alive = [i for i, v in enumerate(verdict) if v is None]
            if not alive:
                break
            result = flt([proposals[i] for i in alive])
            for i, passed, reason in zip(alive, result.passed, result.reasons, strict=True):
                if not passed:
                    verdict[i] = (fname, reason)
        seen = self.store.seen_keys(self.name)
        vetoed = self.vetoed()
        first_in_round: dict[str, str] = {}
        for i, cand in enumerate(proposals):
            if verdict[i] is not None:
                continue
            if cand.key in vetoed:
                verdict[i] = (REVIEW_FILTER, vetoed[cand.key])
            elif cand.key in seen:
                verdict[i] = (SEEN_FILTER, "already proposed in an earlier round of this campaign")
            elif cand.key in first_in_round:
                verdict[i] = (SEEN_FILTER, f"duplicate of {first_in_round[cand.key]} in this round")
            else:
                first_in_round[cand.key] = cand.id
        return [
            CandidateRecord(cand, CandidateStatus.POOL)
            if v is None
            else CandidateRecord(cand, CandidateStatus.REJECTED, filter_name=v[0], reason=v[1])
            for cand, v in zip(proposals, verdict, strict=True)
        ]

    def vetoed(self) -> dict[str, str]:
        """Design keys a reviewer rejected (their latest decision), each with the reason shown:
        they are never proposed or selected again in this campaign."""
        return {key: f"rejected by {d.reviewer} on {d.created_at:%Y-%m-%d %H:%M}"
                     + (f": {d.comment}" if d.comment else "")
                for key, d in self.store.current_decisions(self.name).items()
                if d.decision == "reject"}

    # stage 3+4: surrogate and acquisition -------------------------------------------------------

    def training_data(
        self, prop: str, all_fidelities: bool = False
    ) -> tuple[list[Candidate], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        """Labelled designs of ``prop``: candidates, values (n,) and trust levels (n,).

        By default one row per candidate, the result that counts (most trusted fidelity);
        with ``all_fidelities``, one row per successful result (for multi-fidelity models).
        """
        records = self.store.evaluations(self.name)
        if all_fidelities:
            evals = [r.evaluation for r in records if r.evaluation.property == prop
                     and r.evaluation.ok]
        else:
            evals = [props[prop] for props in preferred_evaluations(records, self.trust).values()
                     if prop in props and props[prop].ok]
        by_id = {r.candidate.id: r.candidate for r in self.store.candidates(self.name)}
        return ([by_id[e.candidate_id] for e in evals],
                np.array([e.value for e in evals], dtype=np.float64),
                np.array([self.trust.get(e.fidelity, -1) for e in evals], dtype=np.int64))

    def select(self, round_index: int) -> list[Candidate]:
        """Fits the surrogates, predicts the pool and picks the batch (stage ``selected``).

        Before ``acquisition.min_labels`` ok results exist, the initial acquisition picks.
        """
        start = time.perf_counter()
        pool = self.store.candidates(
            self.name, round_index=round_index, statuses=[CandidateStatus.POOL]
        )
        vetoed = self.vetoed()
        pool = [r for r in pool if r.candidate.key not in vetoed]
        q = self.config.acquisition.batch_size
        if not pool:
            self.store.select_candidates(self.name, round_index, {}, {}, [])
            return []
        pool_cands = [r.candidate for r in pool]
        x_pool = self.components.featurizer(pool_cands)
        self._objective_fit = None  # set by this round's fit, if any
        self._fit_rows = {}
        train_cands, _y_train, _levels = self.training_data(self.objective.property)
        x_train = self.components.featurizer(train_cands) if train_cands else None
        seed = self._round_seed(round_index, 1000)
        predictions: dict[str, dict[str, Prediction]] = {c.id: {} for c in pool_cands}
        if len(train_cands) < self.config.acquisition.min_labels:
            selection = self.components.initial_acquisition.select(
                x_pool, q, objective=self.objective, seed=seed, x_train=x_train
            )
        else:
            try:
                selection = self._model_selection(pool_cands, x_pool, x_train, predictions, q,
                                                  seed)
            except Exception as exc:  # a failed fit must not stall the campaign forever
                logger.warning("round %d: surrogate or acquisition failed (%r); picking with "
                               "%s instead", round_index, exc, self.config.acquisition.initial_batch)
                predictions = {c.id: {} for c in pool_cands}
                selection = self.components.initial_acquisition.select(
                    x_pool, q, objective=self.objective, seed=seed, x_train=x_train
                )
        fidelities: dict[str, str] = {}
        if len(self.runnable) > 1:
            picks = [pool_cands[i] for i in selection.indices]
            fidelities = self.choose_fidelities(picks, x_pool[list(selection.indices)])
        chosen = self._commit_selection(round_index, pool_cands, predictions, selection,
                                        fidelities)
        self.timer.add("select", start)
        return chosen

    def _model_selection(
        self, pool_cands: list[Candidate], x_pool: npt.NDArray[np.float64],
        x_train: npt.NDArray[np.float64] | None, predictions: dict[str, dict[str, Prediction]],
        q: int, seed: int,
    ) -> Selection:
        """Fits one surrogate per property, fills ``predictions`` and runs the acquisition."""
        surrogates = {}
        prior = self.components.prior
        if prior is not None:
            self._fit_prior(prior)
        for prop in self.surrogate_properties:
            surrogate: Any = self.components.make_surrogate()
            multi = getattr(surrogate, "multi_fidelity", False)
            cands, y, levels = self.training_data(prop, all_fidelities=multi)
            if len({c.id for c in cands}) < 2:
                continue
            if prop == self.objective.property:
                names = {v: k for k, v in self.trust.items()}
                self._fit_rows = {}
                for level in levels.tolist():
                    fidelity = names.get(int(level), "unlisted")
                    self._fit_rows[fidelity] = self._fit_rows.get(fidelity, 0) + 1
            x = self.components.featurizer(cands)
            prior_rows = (self._prior_rows(prior, prop, cands, pool_cands, x, x_pool)
                          if prior is not None and prop in prior.properties() else None)
            if multi:  # levels 0..k-1 over the fidelities present, in trust order
                present, levels = np.unique(levels, return_inverse=True)
                shift = 0
                if prior_rows is not None:  # the prior is the least trusted fidelity, level 0
                    x_prior, y_prior = prior_rows
                    x, y = np.concatenate([x, x_prior]), np.concatenate([y, y_prior])
                    levels = np.concatenate([levels + 1, np.zeros(len(y_prior), dtype=np.int64)])
                    shift = 1
                surrogate.fit(x, y, fidelity=levels)
                if prop == self.objective.property:
                    by_level = {v: k for k, v in self.trust.items()}
                    self._objective_fit = (surrogate, {by_level[int(t)]: i + shift
                                                       for i, t in enumerate(present)
                                                       if int(t) in by_level})
            elif prior_rows is not None and getattr(surrogate, "uses_prior", False):
                surrogate.fit(x, y, prior_x=prior_rows[0], prior_values=prior_rows[1])
            else:
                surrogate.fit(x, y)
            surrogates[prop] = surrogate
            mean, std = surrogates[prop].predict(x_pool)
            for cand, m, s in zip(pool_cands, mean, std, strict=True):
                predictions[cand.id][prop] = Prediction(float(m), float(s))
        constraints = [(c, surrogates[c.property]) for c in self.config.constraints
                       if c.property in surrogates]
        pareto = [(o, surrogates[o.property]) for o in self.config.pareto_with]
        return self.components.acquisition.select(
            x_pool, q, objective=self.objective, seed=seed,
            surrogate=surrogates[self.objective.property], x_train=x_train,
            constraints=constraints, pareto=pareto,
        )

    def _fit_prior(self, prior: Prior) -> None:
        """Lets the prior adapt to the labelled designs (the values that count per design)."""
        measured = ok_values_by_candidate(self.store.evaluations(self.name), self.trust)
        by_id = {r.candidate.id: r.candidate for r in self.store.candidates(self.name)}
        cids = [c for c, v in measured.items() if any(p in v for p in prior.properties())]
        prior.fit([by_id[c] for c in cids],
                  {p: np.array([measured[c].get(p, np.nan) for c in cids], dtype=np.float64)
                   for p in prior.properties()})

    @staticmethod
    def _prior_rows(
        prior: Prior, prop: str, cands: list[Candidate], pool_cands: list[Candidate],
        x: npt.NDArray[np.float64], x_pool: npt.NDArray[np.float64],
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Features (m, d) and the prior's predictions of ``prop`` (m,) for each labelled design
        (once) and each pool row, leaving out the designs the prior cannot predict."""
        first = {c.id: i for i, c in enumerate(cands)}
        designs = [cands[i] for i in first.values()] + pool_cands
        x_designs = np.concatenate([x[list(first.values())], x_pool])
        mean = prior.predict(designs)[prop][0]
        ok = np.isfinite(mean)
        return x_designs[ok], mean[ok]

    def choose_fidelities(
        self, picks: list[Candidate], x_picks: npt.NDArray[np.float64]
    ) -> dict[str, str]:
        """The fidelity to run each pick at, when the campaign can run several.

        Cold start: while a runnable fidelity has fewer than ``acquisition.min_labels``
        successful results of the objective, the best picks go to it (most trusted first), so
        the surrogate can learn how it relates to the others. After that, each pick goes to
        the fidelity f with the most information per cost: the share of the posterior variance
        of the most trusted fidelity at that design that one result at f removes,
        cov(target, f)^2 / (var(target) (var(f) + noise(f))), divided by the cost of f. A
        cheap fidelity that the model has learnt tracks the target closely wins; where it does
        not (low correlation, or it is noisy), the expensive one does.

        Returns:
            Candidate id -> fidelity name, for every pick.
        """
        counts = dict.fromkeys(self.runnable, 0)
        for r in self.store.evaluations(self.name):
            e = r.evaluation
            if e.property == self.objective.property and e.ok and e.fidelity in counts:
                counts[e.fidelity] += 1
        out: dict[str, str] = {}
        need = self.config.acquisition.min_labels
        queue = list(range(len(picks)))
        for fid in reversed(self.runnable):  # cold start, most trusted first
            while counts[fid] < need and queue:
                out[picks[queue.pop(0)].id] = fid
                counts[fid] += 1
        if not queue:
            return out
        surrogate, task_of = self._objective_fit or (None, {})
        runnable = [f for f in self.runnable if f in task_of]
        if surrogate is None or len(runnable) < 2 or not getattr(surrogate, "multi_task", False):
            for i in queue:  # no cross-fidelity model: the most trusted runnable fidelity
                out[picks[i].id] = self.runnable[-1]
            return out
        value = information_per_cost(surrogate, x_picks[queue], [task_of[f] for f in runnable],
                                     [self.config.fidelity_cost(f) for f in runnable])
        for row, i in enumerate(queue):
            out[picks[i].id] = runnable[int(np.argmax(value[row]))]
        return out

    def _commit_selection(
        self, round_index: int, pool: list[Candidate],
        predictions: dict[str, dict[str, Prediction]], selection: Selection,
        fidelities: Mapping[str, str] | None = None,
    ) -> list[Candidate]:
        chosen = [pool[i] for i in selection.indices]
        values = {pool[i].id: v for i, v in zip(selection.indices, selection.values, strict=True)}
        self.store.select_candidates(
            self.name, round_index, {k: v for k, v in predictions.items() if v}, values,
            [c.id for c in chosen], fidelities,
        )
        return chosen

    # stage 5: oracle ------------------------------------------------------------------------------

    def pending_oracle(self, round_index: int) -> list[Candidate]:
        """Selected candidates of the round that have no oracle result yet, in pick order."""
        return [
            r.candidate
            for r in self.store.candidates(
                self.name, round_index=round_index, statuses=[CandidateStatus.SELECTED]
            )
        ]

    def oracle_requests(self, round_index: int) -> list[OracleRequest]:
        """Prepares the round's pending candidates and returns the calculations still to run.

        A candidate that cannot be prepared is stored as failed with the reason; one whose
        identical request (same content key) already has a successful answer in the store, from
        any campaign, gets that answer (``cached: true`` in its provenance) and no new
        calculation. For the rest, an audit row is written before launch
        (:meth:`Store.oracle_calls`).
        """
        self.store.mark_interrupted_calls(self.name)
        chosen = self.store.selected_fidelities(self.name)
        requests = []
        for cand in self.pending_oracle(round_index):
            fidelity = chosen.get(cand.id, self.components.oracle.fidelity)
            oracle = self.oracles[fidelity]
            try:
                prepared = self.components.prepare(cand)
                key = oracle.request_key(prepared)
            except Exception as exc:  # any preparation problem is this candidate's failure
                failed = self.failed_result(f"unprepared:{cand.id}", f"preparation failed: {exc}",
                                            fidelity)
                self.store.add_evaluations(self.name, failed.evaluations(cand.id),
                                           failed.request_key)
                continue
            if prepared.geometry is not None:
                self.store.set_geometry(self.name, cand.id, prepared.geometry)
            cached = self.store.oracle_result(key)
            if cached is not None:  # same content key: same answer, under this campaign's name
                answer = dataclasses.replace(cached, fidelity=oracle.fidelity)
                self.store.add_oracle_result(self.name, cand.id, answer, None, cached=True)
                continue
            call_id = self.store.start_oracle_call(self.name, cand.id, key)
            requests.append(OracleRequest(prepared, key, call_id, fidelity))
        return requests

    def store_oracle_result(self, request: OracleRequest, result: OracleResult) -> None:
        """Commits one oracle answer: cache row, evaluations and audit row (one transaction)."""
        self.store.add_oracle_result(self.name, request.candidate.id, result, request.call_id)

    def failed_result(self, request_key: str, reason: str,
                      fidelity: str | None = None) -> OracleResult:
        """A failed answer (every oracle property NaN, with ``reason``) under ``request_key``,
        from the oracle of ``fidelity`` (default: the main oracle)."""
        oracle = self.oracles[fidelity or self.components.oracle.fidelity]
        name = self.config.oracle.name if oracle is self.components.oracle else next(
            f.oracle.name for f in self.config.fidelities if f.name == oracle.fidelity and f.oracle)
        return OracleResult(request_key, name, oracle.fidelity, EvaluationStatus.FAILED, reason,
                            {}, oracle.properties())

    def finish_oracle(self, round_index: int) -> None:
        """Marks the round ``evaluated`` once no selected candidate waits for a result."""
        if self.pending_oracle(round_index):
            raise RuntimeError(f"round {round_index} still has candidates waiting for the oracle")
        self.store.set_round_stage(self.name, round_index, "evaluated")

    # stage 6: record ------------------------------------------------------------------------------

    def round_metrics(self, round_index: int) -> dict[str, float]:
        """Metrics of one round; see the README for their definitions."""
        records = self.store.candidates(self.name, round_index=round_index)
        n_generated = len(records)
        chem_valid = [
            r for r in records if r.status is not CandidateStatus.REJECTED
            or r.filter_name == SEEN_FILTER
        ]
        n_valid = len(chem_valid)
        unique_keys = {r.candidate.key for r in chem_valid}
        earlier = {
            r.candidate.key for r in self.store.candidates(self.name)
            if r.candidate.round_index < round_index
        }
        reference: set[str] = set()
        for _name, _n, generator in self.components.generators:
            reference |= generator.reference_keys()
        novel = unique_keys - earlier - reference
        selected_ids = {r.candidate.id for r in records if r.selected_rank is not None}
        evals = self.store.evaluations(self.name, candidate_ids=selected_ids)
        prop = self.objective.property
        objective_evals = [e.evaluation for e in evals if e.evaluation.property == prop]
        calls = [c for c in self.store.oracle_calls(self.name) if c.candidate_id in selected_ids]
        chosen_fidelity = self.store.selected_fidelities(self.name)
        measured = ok_values_by_candidate(self.store.evaluations(self.name), self.trust)
        measured = {cid: v for cid, v in measured.items() if prop in v}
        round_hits = [is_hit(self.config, v) for cid, v in measured.items() if cid in selected_ids]
        feasible = {cid: v for cid, v in measured.items() if is_feasible(self.config, v)}
        all_ok = np.array([v[prop] for v in feasible.values()], dtype=np.float64)
        all_scores = self.objective.score(all_ok) if all_ok.size else np.array([])
        metrics: dict[str, float] = {
            "n_generated": float(n_generated),
            "n_valid": float(n_valid),
            "validity_rate": n_valid / n_generated if n_generated else math.nan,
            "uniqueness": len(unique_keys) / n_valid if n_valid else math.nan,
            "novelty": len(novel) / len(unique_keys) if unique_keys else math.nan,
            "n_pool": float(sum(r.status is not CandidateStatus.REJECTED for r in records)),
            "n_selected": float(len(selected_ids)),
            "oracle_calls": float(len(calls)),
            "oracle_results": float(len(objective_evals)),
            "oracle_cost": float(sum(self.config.fidelity_cost(
                chosen_fidelity.get(c.candidate_id, self.components.oracle.fidelity))
                for c in calls)),
            "oracle_failures": float(sum(not e.ok for e in objective_evals)),
            "hit_rate": float(np.mean(round_hits)) if round_hits else math.nan,
            "hits_total": float(sum(is_hit(self.config, v) for v in measured.values())),
            "labels_total": float(len(measured)),
            "best_objective": float(all_scores.max()) if all_scores.size else math.nan,
            "best_value": float(all_ok[int(np.argmax(all_scores))]) if all_scores.size else math.nan,
        }
        if self.config.constraints:
            metrics["feasible_total"] = float(len(feasible))
        if self.config.pareto_with:
            metrics["pareto_front_size"] = float(len(pareto_front(self.config, measured)))
        metrics.update(surrogate_errors(self.surrogate_properties, records, evals))
        metrics.update(lab_metrics(self.store, self.name, round_index, self.surrogate_properties))
        metrics.update({f"surrogate_rows_{f}": float(n) for f, n in self._fit_rows.items()})
        metrics.update({f"seconds_{k}": v for k, v in self.timer.seconds.items()})
        return metrics

    def campaign_totals(self, round_index: int) -> dict[str, float]:
        """The campaign's totals and bests after ``round_index`` (see
        :func:`pipeline.metrics.campaign_totals`)."""
        rounds = [r.metrics for r in self.store.rounds(self.name)
                  if r.round_index <= round_index and r.metrics]
        return campaign_totals(rounds, self.objective.property)

    def record(self, round_index: int) -> dict[str, float]:
        """Computes and stores the round's metrics (stage ``recorded``)."""
        metrics = self.round_metrics(round_index)
        self.store.record_round(self.name, round_index, metrics)
        self.timer = RoundTimer()
        return metrics

    # reading --------------------------------------------------------------------------------------

    def ranked(self) -> list[RankedCandidate]:
        """Candidates that passed the filters, best first.

        Order: oracle results that meet the constraints by objective score (with ``pareto_with``:
        the Pareto front first), then those that do not, then candidates without a result by
        predicted score, then failed oracle requests.
        """
        return rank_candidates(self.store, self.name, self.config)


def filter_report(filters: Sequence[tuple[str, Filter]],
                  designs: Sequence[Candidate]) -> list[list[tuple[str, str]]]:
    """Every filter on every design (a campaign stops at the first rejection; a person checking
    a list wants all of them).

    Returns:
        Per design, in input order: (filter name, reason) of each filter that rejects it; an
        empty list when it passes them all.
    """
    out: list[list[tuple[str, str]]] = [[] for _ in designs]
    for name, flt in filters:
        result = flt(designs)
        for i, (passed, reason) in enumerate(zip(result.passed, result.reasons, strict=True)):
            if not passed:
                out[i].append((name, reason))
    return out
