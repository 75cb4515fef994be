"""MLflow record of a campaign: one parent run per campaign, one nested run per round.

The client is given its tracking URI explicitly (no global MLflow state), so several campaigns
and tests can log to different homes in one process. Runs are found again by their tags, so a
campaign killed while logging reuses its runs instead of creating duplicates.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

CAMPAIGN_TAG = "invdes.campaign"
ROUND_TAG = "invdes.round"


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flattens a nested config into ``a.b.0.c`` keys with string values (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            out.update(flatten(value, name) if value else {name: "{}"})
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            for i, item in enumerate(value):
                out.update(flatten(item, f"{name}.{i}"))
        else:
            out[name] = json.dumps(value) if not isinstance(value, str) else value
    return out


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}


class CampaignTracker:
    """Logs a campaign and its rounds to MLflow.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///.../mlflow.db``, or a tracking server's
            ``http://host:5000``).
        artifact_root: directory for the experiment's artifacts (used when it is created, unless
            the URI is a tracking server's, whose own artifact store is used).
        experiment: experiment name.
    """

    def __init__(self, tracking_uri: str, artifact_root: Path, experiment: str) -> None:
        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.tracking_uri = tracking_uri
        found = self.client.get_experiment_by_name(experiment)
        if found is None:  # a tracking server keeps the artifacts where it was told to
            remote = tracking_uri.startswith(("http://", "https://", "databricks"))
            location = None if remote else (artifact_root / experiment).resolve().as_uri()
            self.experiment_id = self.client.create_experiment(experiment,
                                                               artifact_location=location)
        else:
            self.experiment_id = found.experiment_id

    def __repr__(self) -> str:
        return f"CampaignTracker(uri={self.tracking_uri!r}, experiment_id={self.experiment_id!r})"

    def _find(self, campaign: str, round_index: int | None) -> str | None:
        filt = f"tags.`{CAMPAIGN_TAG}` = '{campaign}'"
        filt += (f" and tags.`{ROUND_TAG}` = '{round_index}'" if round_index is not None
                 else f" and tags.`{ROUND_TAG}` = 'campaign'")
        runs = self.client.search_runs([self.experiment_id], filter_string=filt, max_results=1)
        return runs[0].info.run_id if runs else None

    def campaign_run(self, campaign: str, config: Mapping[str, Any]) -> str:
        """Returns the campaign's parent run, creating it with the config as params."""
        run_id = self._find(campaign, None)
        if run_id is None:
            run = self.client.create_run(
                self.experiment_id, run_name=campaign,
                tags={CAMPAIGN_TAG: campaign, ROUND_TAG: "campaign", **run_tags(config)},
            )
            run_id = run.info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in run_tags(config).items()])
        logged = self.client.get_run(run_id).data.params
        # (re)logged on every start, so a crash right after create_run leaves no run without
        # params; values that changed between runs (rounds, limits) keep their first value
        params = [Param(k, v[:6000]) for k, v in flatten(config).items() if k not in logged]
        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        return run_id

    def log_round(
        self,
        campaign: str,
        parent_run_id: str,
        round_index: int,
        metrics: Mapping[str, float],
        artifacts: Mapping[str, str] | None = None,
        files: Sequence[Path] = (),
        *,
        campaign_metrics: Mapping[str, float] | None = None,
        start_time_ms: int | None = None,
        end_time_ms: int | None = None,
        tags: Mapping[str, str] | None = None,
        parent_tags: Mapping[str, str] | None = None,
    ) -> str:
        """Logs one round as a nested run, and the campaign's totals on the parent.

        Args:
            campaign: campaign name.
            parent_run_id: the campaign's run.
            round_index: the round.
            metrics: the round's own metrics, name -> value; NaN values are left out.
            artifacts: file name -> text content, stored as artifacts of the round's run.
            files: files to store as artifacts of the round's run.
            campaign_metrics: the campaign's totals and bests after this round (oracle calls,
                cost, hits, best score), logged on the parent at step ``round_index``, so
                that the parent's latest values compare campaigns in the MLflow UI.
            start_time_ms: when the round started (Unix ms); the round's run spans it.
            end_time_ms: when the round finished (Unix ms).
            tags: further tags of the round's run (``invdes.surrogate_drift``).
            parent_tags: tags to set on the parent (``invdes.surrogate_drift_rounds``).

        Returns:
            The round's run id.
        """
        run_id = self._find(campaign, round_index)
        if run_id is None:
            inherited = {k: v for k, v in self.client.get_run(parent_run_id).data.tags.items()
                         if k.startswith("invdes.") and k not in (CAMPAIGN_TAG, ROUND_TAG)
                         and not k.startswith("invdes.surrogate_drift")}
            run_id = self.client.create_run(
                self.experiment_id, run_name=f"{campaign}/round-{round_index}",
                start_time=start_time_ms,
                tags={**inherited, CAMPAIGN_TAG: campaign, ROUND_TAG: str(round_index),
                      "mlflow.parentRunId": parent_run_id},
            ).info.run_id
        finite = _finite(metrics)
        stamp = end_time_ms or 0
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, v, stamp, 0) for k, v in finite.items()],
            params=[Param("round", str(round_index))],
            tags=[RunTag("invdes.stage", "logged"),
                  *(RunTag(k, v) for k, v in (tags or {}).items())],
        )
        totals = _finite(campaign_metrics or {})
        if totals:
            self.client.log_batch(
                parent_run_id, metrics=[Metric(k, v, stamp, round_index) for k, v in totals.items()],
                tags=[RunTag(k, v) for k, v in (parent_tags or {}).items()])
        with tempfile.TemporaryDirectory() as tmp:
            for fname, text in (artifacts or {}).items():
                path = Path(tmp) / fname
                path.write_text(text)
                self.client.log_artifact(run_id, str(path))
        for path in files:
            self.client.log_artifact(run_id, str(path))
        self.client.set_terminated(run_id, status="FINISHED", end_time=end_time_ms)
        return run_id

    def log_campaign_artifacts(
        self, parent_run_id: str, artifacts: Mapping[str, str], files: Sequence[Path] = ()
    ) -> None:
        """Stores the latest campaign-level artifacts (ranked table, plots) on the parent run."""
        with tempfile.TemporaryDirectory() as tmp:
            for fname, text in artifacts.items():
                path = Path(tmp) / fname
                path.write_text(text)
                self.client.log_artifact(parent_run_id, str(path))
        for path in files:
            self.client.log_artifact(parent_run_id, str(path))

    def finish_campaign(self, parent_run_id: str) -> None:
        """Marks the parent run finished."""
        self.client.set_terminated(parent_run_id, status="FINISHED")


def run_tags(config: Mapping[str, Any]) -> dict[str, str]:
    """The tags a campaign's MLflow runs carry, so that MLflow's compare view groups them:
    domain, generators, surrogate, acquisition, oracle and level of theory."""
    oracle = config.get("oracle") or {}
    params = oracle.get("params") or {}
    level = params.get("level") or "/".join(str(params[k]) for k in ("method", "basis")
                                            if params.get(k))
    surrogate = (config.get("surrogate") or {}).get("name") or "default"
    prior = (config.get("prior") or {}).get("name")
    return {
        "invdes.domain": str(config.get("domain", "")),
        "invdes.generator": "+".join(g.get("name", "") for g in config.get("generators") or []),
        "invdes.surrogate": surrogate + (f"+{prior}" if prior else ""),
        "invdes.acquisition": str((config.get("acquisition") or {}).get("name", "")),
        "invdes.oracle": str(oracle.get("name", "")),
        "invdes.level": str(level or oracle.get("name", "")),
        "invdes.objective": str((config.get("objective") or {}).get("property", "")),
    }
