"""What the review page shows, read from the campaign store: campaign summaries, the ranked
candidate table (sorted, filtered, searched, paged), one candidate in full, exports and plots.

Everything here returns plain data (dicts, lists, bytes); :mod:`flows.review.app` turns it into
pages and JSON. Nothing here writes to the store except :func:`decide` and :func:`import_lab`.
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import CampaignConfig
from pipeline.decisions import DecisionRecord
from pipeline.protocols import OrbitalPicture
from pipeline.ranking import (
    RankedCandidate,
    ok_values_by_candidate,
    pareto_front,
    rank_candidates,
    ranked_rows,
)
from pipeline.registry import DOMAINS, ORACLES, PRESENTERS
from pipeline.store import CandidateRecord, EvaluationRecord, Store
from pipeline.types import CandidateStatus

PER_PAGE_MAX = 500
COLUMN_FILTER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|=|<|>|~)\s*(.*?)\s*$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""A spreadsheet reads a cell starting with one of these as a formula."""


class NotFound(LookupError):
    """A campaign or candidate that the store does not have."""


class BadRequest(ValueError):
    """A request the page cannot answer (a bad filter, search or parameter); says why."""


def campaign_config(store: Store, name: str) -> CampaignConfig:
    """The stored config of a campaign.

    Raises:
        NotFound: no such campaign.
    """
    record = store.campaign(name)
    if record is None:
        raise NotFound(f"no campaign {name!r}")
    return CampaignConfig.model_validate(record.config)


def oracle_units(config: CampaignConfig) -> dict[str, str]:
    """Property -> unit of the campaign's oracle."""
    return dict(ORACLES.build(config.oracle.name, config.oracle.params).properties())


def shown_properties(config: CampaignConfig) -> list[str]:
    """The properties the table shows: objective, further objectives, constraints and
    ``predict_properties``, in that order."""
    names = [config.objective.property, *(o.property for o in config.pareto_with),
             *(c.property for c in config.constraints), *config.predict_properties]
    return list(dict.fromkeys(names))


def campaign_summaries(store: Store) -> list[dict[str, Any]]:
    """One row per campaign: objective, rounds, oracle results, hits and best score."""
    from pipeline.objectives import Objective

    out = []
    for record in store.campaigns():
        rounds = store.rounds(record.name)
        last = next((r.metrics for r in reversed(rounds) if r.metrics), {})
        # the objective alone: validating the whole config would import every domain
        objective = Objective.model_validate(record.config["objective"])
        out.append({
            "name": record.name, "domain": record.domain,
            "objective": objective.describe(),
            "rounds_done": sum(r.complete for r in rounds), "rounds_target": record.rounds_target,
            "oracle_results": store.count_evaluated(record.name),
            "oracle_calls": int(sum(r.metrics.get("oracle_calls", 0) for r in rounds
                                    if r.metrics)),
            "hits": _number(last.get("hits_total")), "best": _number(last.get("best_objective")),
            "created_at": record.created_at.isoformat(),
        })
    return out


def campaign_overview(store: Store, name: str) -> dict[str, Any]:
    """A campaign's target, fidelities and rounds with their metrics."""
    config = campaign_config(store, name)
    units = oracle_units(config)
    rounds = [{"round": r.round_index, "stage": r.stage,
               "started_at": r.started_at.isoformat(),
               "finished_at": r.finished_at.isoformat() if r.finished_at else None,
               "metrics": {k: _number(v) for k, v in sorted(r.metrics.items())}}
              for r in store.rounds(name)]
    shown = shown_properties(config)
    return {
        "name": name, "domain": config.domain, "description": config.description,
        "objective": config.objective.describe(),
        "objective_property": config.objective.property,
        "constraints": [c.model_dump() for c in config.constraints],
        "pareto_with": [o.property for o in config.pareto_with],
        "fidelities": list(config.trust_levels()),
        "properties": [{"name": p, "unit": units.get(p, "")} for p in shown],
        "all_properties": [{"name": p, "unit": u} for p, u in units.items()],
        "filters": [f.name for f in config.filters],
        "label": DOMAINS.build(config.domain).label,
        "export_format": PRESENTERS.build(config.domain).export_format,
        "rounds": rounds,
    }


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _rows(store: Store, name: str, config: CampaignConfig
          ) -> tuple[list[RankedCandidate], list[dict[str, Any]]]:
    """Ranked candidates and their flat rows, with the latest decision and the fidelity of
    each shown value."""
    ranked = rank_candidates(store, name, config)
    props = shown_properties(config)
    rows = ranked_rows(ranked, config, props)
    decisions = store.current_decisions(name)
    out = []
    for r, row in zip(ranked, rows, strict=True):
        c = r.record.candidate
        decision = decisions.get(c.key)
        flat: dict[str, Any] = {
            "rank": row["rank"], "id": c.id, "design": c.key, "round": row["round"],
            "status": row["status"], "origin": row["origin"], "score": row["score"],
            "hit": row["hit"], "decision": decision.decision if decision else None,
            "reviewer": decision.reviewer if decision else None,
        }
        for p in props:
            flat[f"{p}_pred_mean"] = row[f"{p}_pred_mean"]
            flat[f"{p}_pred_std"] = row[f"{p}_pred_std"]
            flat[p] = row[p]
            flat[f"{p}_fidelity"] = r.fidelity.get(p)
        flat["reason"] = row["reason"]
        out.append(flat)
    return ranked, out


def _filter_row(row: dict[str, Any], column: str, op: str, text: str) -> bool:
    value = row.get(column)
    if op == "~":
        return text.lower() in str(value if value is not None else "").lower()
    try:
        number = float(text)
    except ValueError:
        if op not in ("=", "!="):
            raise BadRequest(f"filter {column}{op}{text}: {text!r} is not a number") from None
        same = str(value if value is not None else "") == text
        return same if op == "=" else not same
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return op == "!="
    return {"<": value < number, "<=": value <= number, ">": value > number,
            ">=": value >= number, "=": value == number, "!=": value != number}[op]


def candidate_table(store: Store, name: str, *, sort: str = "rank", descending: bool = False,
                    filters: Sequence[str] = (), search: str = "", page: int = 1,
                    per_page: int = 50) -> dict[str, Any]:
    """One page of the ranked candidates.

    Args:
        store: the store.
        name: campaign.
        sort: a column to sort by (missing values last either way).
        descending: sort from high to low.
        filters: ``column op value`` with op one of ``= != < <= > >= ~`` (``~``: contains),
            all of which a row must meet (``status=evaluated``, ``gap_ev<=5``).
        search: a search of the domain's presenter (SMARTS for molecules, a formula for
            perovskites).
        page: from 1.
        per_page: rows per page (at most :data:`PER_PAGE_MAX`).

    Raises:
        NotFound: no such campaign.
        BadRequest: an unknown column, a malformed filter or search.
    """
    config = campaign_config(store, name)
    if not 1 <= per_page <= PER_PAGE_MAX:
        raise BadRequest(f"per_page must be 1 to {PER_PAGE_MAX}, got {per_page}")
    if page < 1:
        raise BadRequest(f"page must be 1 or more, got {page}")
    ranked, rows = _rows(store, name, config)
    columns = list(rows[0]) if rows else ["rank", "id", "design", "round", "status", "origin",
                                          "score", "hit", "decision", "reviewer", "reason"]
    for text in filters:
        if not text.strip():
            continue
        m = COLUMN_FILTER.match(text)
        if m is None:
            raise BadRequest(f"filter {text!r}: expected COLUMN OP VALUE with OP one of = != < "
                             "<= > >= ~")
        column, op, value = m.groups()
        if rows and column not in columns:
            raise BadRequest(f"filter {text!r}: unknown column {column!r}; columns: "
                             f"{', '.join(columns)}")
        keep = [i for i, row in enumerate(rows) if _filter_row(row, column, op, value)]
        ranked, rows = [ranked[i] for i in keep], [rows[i] for i in keep]
    if search.strip():
        presenter = PRESENTERS.build(config.domain)
        try:
            mask = presenter.search(search, [r.record.candidate for r in ranked])
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        rows = [row for row, hit in zip(rows, mask, strict=True) if hit]
    if sort not in columns:
        raise BadRequest(f"cannot sort by {sort!r}; columns: {', '.join(columns)}")

    def missing(row: dict[str, Any]) -> bool:
        value = row.get(sort)
        return value is None or (isinstance(value, float) and math.isnan(value))

    present = sorted((r for r in rows if not missing(r)), key=lambda r: r[sort],
                     reverse=descending)
    rows = present + [r for r in rows if missing(r)]  # missing values last either way
    total = len(rows)
    start = (page - 1) * per_page
    return {"campaign": name, "total": total, "page": page, "per_page": per_page,
            "pages": max(1, math.ceil(total / per_page)), "columns": columns,
            "rows": rows[start:start + per_page]}


def _record(store: Store, name: str, candidate_id: str) -> CandidateRecord:
    """The stored candidate record, read alone.

    Raises:
        NotFound: no such candidate.
    """
    found = store.candidates(name, ids=[candidate_id])
    if not found:
        raise NotFound(f"campaign {name!r} has no candidate {candidate_id!r}")
    return found[0]


def _level(provenance: dict[str, Any]) -> str:
    """A result's level of theory (or source) in a few words."""
    if provenance.get("level"):
        method = provenance.get("method")
        basis = provenance.get("basis")
        return f"{provenance['level']} ({method}/{basis})" if method and basis else \
            str(provenance["level"])
    if provenance.get("method") and provenance.get("basis"):
        return f"{provenance['method']}/{provenance['basis']}"
    if provenance.get("oracle"):
        return str(provenance["oracle"]) + (f" {provenance['model']}" if provenance.get("model")
                                            else "")
    if provenance.get("source"):
        return f"imported from {provenance['source']}"
    return ""


def candidate_detail(store: Store, name: str, candidate_id: str) -> dict[str, Any]:
    """Everything known of one candidate.

    Raises:
        NotFound: no such campaign or candidate.
    """
    config = campaign_config(store, name)
    record = _record(store, name, candidate_id)
    c = record.candidate
    ranked = {r.record.candidate.id: r for r in rank_candidates(store, name, config)}
    mine = ranked.get(candidate_id)
    units = oracle_units(config)
    mine_evals = store.evaluations(name, candidate_ids=[candidate_id])
    evaluations = [{
        "property": e.evaluation.property, "value": _number(e.evaluation.value),
        "unit": e.evaluation.unit, "fidelity": e.evaluation.fidelity,
        "status": e.evaluation.status.value, "reason": e.evaluation.reason,
        "level": _level(dict(e.evaluation.provenance)),
        "note": str(e.evaluation.provenance.get("note", "")),
        "created_at": e.created_at.isoformat(),
    } for e in mine_evals]
    if record.status is CandidateStatus.REJECTED:
        verdict = f"rejected by {record.filter_name}: {record.reason}"
    else:
        verdict = f"passed {', '.join(f.name for f in config.filters) or 'no filters'}"
    return {
        "campaign": name, "id": c.id, "design": c.key, "representation": c.representation,
        "label": DOMAINS.build(config.domain).label, "round": c.round_index,
        "origin": c.origin, "parents": list(c.parents), "status": record.status.value,
        "filters": verdict, "rank": mine.rank if mine else None,
        "score": _number(mine.score) if mine else None, "hit": mine.hit if mine else False,
        "selected_rank": record.selected_rank,
        "acquisition_value": _number(record.acquisition_value),
        "predictions": {p: {"mean": _number(v.mean), "std": _number(v.std),
                            "unit": units.get(p, "")}
                        for p, v in sorted(record.predictions.items())},
        "evaluations": evaluations,
        "decisions": [_decision(d) for d in store.decisions(name, candidate_id)],
        "has_orbitals": _orbital_picture(store, config, mine_evals) is not None,
    }


def _decision(d: DecisionRecord) -> dict[str, Any]:
    return {"decision": d.decision, "reviewer": d.reviewer, "comment": d.comment,
            "created_at": d.created_at.isoformat()}


def _orbital_picture(store: Store, config: CampaignConfig,
                     evaluations: Sequence[EvaluationRecord]) -> OrbitalPicture | None:
    """Where the oracle found a candidate's HOMO and LUMO (the most trusted calculation that
    kept per-atom shares), from its evaluation records; None when none did."""
    trust = config.trust_levels()
    evals = sorted((e for e in evaluations if e.evaluation.ok),
                   key=lambda e: trust.get(e.evaluation.fidelity, -1), reverse=True)
    for key in dict.fromkeys(e.request_key for e in evals):
        result = store.oracle_result(key)
        atoms = result.details.get("atoms") if result is not None else None
        positions = result.details.get("positions_angstrom") if result is not None else None
        if not isinstance(atoms, list) or not atoms or not isinstance(positions, list):
            continue
        if not all("homo_density" in a and "lumo_density" in a for a in atoms):
            continue
        return OrbitalPicture(tuple(a["symbol"] for a in atoms),
                              tuple((float(x), float(y), float(z)) for x, y, z in positions),
                              tuple(float(a["homo_density"]) for a in atoms),
                              tuple(float(a["lumo_density"]) for a in atoms))
    return None


def depiction(store: Store, name: str, candidate_id: str) -> str:
    """The candidate's SVG picture (shaded by its frontier orbitals where computed)."""
    config = campaign_config(store, name)
    candidate = _record(store, name, candidate_id).candidate
    picture = _orbital_picture(store, config, store.evaluations(name, candidate_ids=[candidate_id]))
    return str(PRESENTERS.build(config.domain).depict(candidate, picture))


def decide(store: Store, name: str, candidate_id: str, decision: str, reviewer: str,
           comment: str) -> dict[str, Any]:
    """Stores a decision (see :meth:`pipeline.store.Store.add_decision`)."""
    from pipeline.store import StoreError

    campaign_config(store, name)
    if len(comment) > 4000:
        raise BadRequest("a comment may be at most 4000 characters")
    try:
        return _decision(store.add_decision(name, candidate_id, decision, reviewer, comment))
    except StoreError as exc:
        if "has no candidate" in str(exc):
            raise NotFound(str(exc)) from None
        raise BadRequest(str(exc)) from None


def csv_cell(value: Any) -> Any:
    """A cell a spreadsheet will not run: text starting with ``= + - @`` (or a tab or carriage
    return) gets a leading apostrophe; numbers are left as they are."""
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    try:
        float(text)
        return text
    except ValueError:
        pass
    return "'" + text if text.startswith(FORMULA_START) else text


def export(store: Store, name: str, which: str, fmt: str) -> tuple[str, str, str]:
    """The approved (or selected) candidates for the lab.

    Args:
        store: the store.
        name: campaign.
        which: ``approved`` (latest decision approve) or ``selected`` (picked for an oracle).
        fmt: ``csv``, or the domain's structure format (``sdf``, ``cif``).

    Returns:
        (file name, media type, text).

    Raises:
        BadRequest: another ``which`` or ``fmt``.
    """
    config = campaign_config(store, name)
    presenter = PRESENTERS.build(config.domain)
    if which not in ("approved", "selected"):
        raise BadRequest(f"export which={which!r}: expected approved or selected")
    if fmt not in ("csv", presenter.export_format):
        raise BadRequest(f"export format {fmt!r}: expected csv or {presenter.export_format}")
    ranked, rows = _rows(store, name, config)
    if which == "approved":
        keep = [i for i, row in enumerate(rows) if row["decision"] == "approve"]
    else:
        keep = [i for i, r in enumerate(ranked) if r.record.selected_rank is not None]
    props = shown_properties(config)
    table = []
    for i in keep:
        row = rows[i]
        out = {"candidate_id": row["id"], "design": row["design"], "round": row["round"],
               "status": row["status"], "decision": row["decision"]}
        for p in props:
            out[f"{p}_predicted"] = row.get(f"{p}_pred_mean")
            out[p] = row.get(p)
            out[f"{p}_fidelity"] = row.get(f"{p}_fidelity")
        table.append(out)
    stem = f"{name}-{which}"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        header = list(table[0]) if table else ["candidate_id", "design"]
        writer.writerow(header)
        for out in table:
            writer.writerow([csv_cell(out[h]) for h in header])
        return f"{stem}.csv", "text/csv", buffer.getvalue()
    candidates = [ranked[i].record.candidate for i in keep]
    text = presenter.export(candidates, [{k: v for k, v in t.items() if k != "design"}
                                         for t in table])
    media = "chemical/x-mdl-sdfile" if fmt == "sdf" else "chemical/x-cif"
    return f"{stem}.{fmt}", media, text


def import_lab(store: Store, name: str, content: bytes, filename: str, fidelity: str
               ) -> dict[str, Any]:
    """Imports a lab-results file exactly as ``invdes results import`` does: every row is
    checked first and one problem rejects the file, nothing written.

    Raises:
        BadRequest: the file's problems (rows and columns named), a fidelity the campaign does
            not list, or text that is not UTF-8.
    """
    from pipeline.imports import ResultsFileError, read_results, store_results

    config = campaign_config(store, name)
    trust = config.trust_levels()
    if fidelity not in trust:
        raise BadRequest(f"fidelity {fidelity!r} is not listed under the campaign's fidelities "
                         f"({', '.join(trust)}); add it to the campaign file with its cost")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{filename}: not a UTF-8 text (CSV) file") from None
    domain = DOMAINS.build(config.domain)
    units = oracle_units(config)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(filename).name or "upload.csv")
        path.write_bytes(content)
        try:
            rows = read_results(path, store, name, units, fidelity, domain.parse_key)
            n = store_results(store, name, rows, units, fidelity, Path(filename).name, content)
        except ResultsFileError as exc:
            raise BadRequest(str(exc).replace(str(path), Path(filename).name)) from None
    return {"imported": n, "designs": len(rows), "fidelity": fidelity}


def plot(store: Store, name: str, kind: str, prop: str | None = None) -> bytes:
    """A PNG: ``best`` (best so far against oracle results), ``distribution`` (``prop`` per
    round), ``parity`` (predicted against measured ``prop``) or ``pareto``.

    Raises:
        BadRequest: another kind, or a property the oracle does not return.
    """
    from pipeline import review_plots

    config = campaign_config(store, name)
    units = oracle_units(config)
    prop = prop or config.objective.property
    if prop not in units:
        raise BadRequest(f"unknown property {prop!r}; known: {', '.join(units)}")
    records = store.evaluations(name)
    trust = config.trust_levels()
    rounds = {r.candidate.id: r.candidate.round_index for r in store.candidates(name)}
    if kind == "best":
        objective = config.objective
        ordered = sorted((e for e in records if e.evaluation.property == objective.property
                          and e.evaluation.ok), key=lambda e: e.id)
        values = ok_values_by_candidate(records, trust)
        from pipeline.ranking import is_hit

        seen: set[str] = set()
        scores, hits = [], []
        for e in ordered:
            cid = e.evaluation.candidate_id
            if cid in seen:
                continue
            seen.add(cid)
            scores.append(float(objective.score(e.evaluation.value)))
            hits.append(is_hit(config, values.get(cid, {})))
        return review_plots.best_so_far_plot(scores, hits, objective)
    if kind == "distribution":
        by_round: dict[int, list[float]] = {}
        for cid, v in ok_values_by_candidate(records, trust).items():
            if prop in v:
                by_round.setdefault(rounds.get(cid, 0), []).append(v[prop])
        return review_plots.distribution_plot(by_round, prop, units[prop], config.objective)
    if kind == "parity":
        measured = ok_values_by_candidate(records, trust)
        pred, std, meas = [], [], []
        for record in store.candidates(name):
            p = record.predictions.get(prop)
            value = measured.get(record.candidate.id, {}).get(prop)
            if p is not None and value is not None and math.isfinite(p.mean):
                pred.append(p.mean)
                std.append(p.std if math.isfinite(p.std) else 0.0)
                meas.append(value)
        return review_plots.parity_plot(pred, std, meas, prop, units[prop])
    if kind == "pareto":
        if not config.pareto_with:
            raise BadRequest("this campaign has one objective: no Pareto front")
        a, b = config.objective.property, config.pareto_with[0].property
        measured = ok_values_by_candidate(records, trust)
        front = pareto_front(config, measured)
        both = [(cid, v) for cid, v in measured.items() if a in v and b in v]
        return review_plots.pareto_plot([v[a] for _, v in both], [v[b] for _, v in both],
                                        [cid in front for cid, _ in both], a, b)
    raise BadRequest(f"unknown plot {kind!r}; known: best, distribution, parity, pareto")
