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
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        "MLFLOW_LOGGING_LEVEL": "WARNING",
        # calculations run in child processes with their own thread counts
        "OMP_NUM_THREADS": "1",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
