"""Points Prefect and thread pools at the invdes home before Prefect is imported."""

from __future__ import annotations

import logging
import os

from pipeline.home import Home


def configure_prefect(home: Home) -> None:
    """Prefect's local mode with its database under ``home``, quiet logs and no telemetry.

    Values already set in the environment win, so a user can point at a Prefect server with
    ``PREFECT_API_URL``.
    """
    defaults = {
        "PREFECT_HOME": str(home.prefect_home),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_TO_API_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        # the local-mode server starts in a few seconds, but much later on 2 busy cores
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        # calculations run in child processes with their own thread counts
        "OMP_NUM_THREADS": "1",
        # a Dask cluster (executor: dask) logs its workers' comings and goings only on trouble
        "DASK_LOGGING__DISTRIBUTED": "warning",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    write_prefect_profile(home)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


PROFILE_SETTINGS = {
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",  # Prefect's local mode, as its own default
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
}
"""What Prefect's own command line needs to read the invdes home's database: with server
analytics on, ``prefect flow-run ls`` ran into its own temporary server writing a telemetry row
to the same SQLite file and failed with ``database is locked``."""


def write_prefect_profile(home: Home) -> None:
    """Writes ``profiles.toml`` in the home's Prefect directory (unless one is there), with an
    active ``invdes`` profile of :data:`PROFILE_SETTINGS`, so that ``PREFECT_HOME=.invdes/prefect
    prefect flow-run ls`` works without further settings."""
    path = home.prefect_home / "profiles.toml"
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ['active = "invdes"', "", "[profiles.invdes]"]
    lines += [f'{key} = "{value}"' for key, value in PROFILE_SETTINGS.items()]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
