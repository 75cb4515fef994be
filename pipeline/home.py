"""The one directory where everything a campaign writes lives.

``$INVDES_HOME`` if set, else ``./.invdes``. Inside it: the campaign store (``campaigns.db``), the
MLflow database and artifacts (``mlflow.db``, ``mlartifacts/``), Prefect's local data
(``prefect/``) and caches (``cache/``).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class CampaignBusyError(RuntimeError):
    """Another process is running the same campaign."""


@dataclass(frozen=True, slots=True)
class Home:
    """Paths inside the invdes home; nothing is created until :meth:`ensure` is called."""

    root: Path

    @classmethod
    def resolve(cls) -> Home:
        """The home from ``$INVDES_HOME``, else ``./.invdes``, as an absolute path."""
        return cls(Path(os.environ.get("INVDES_HOME") or ".invdes").expanduser().resolve())

    @property
    def store_url(self) -> str:
        """SQLAlchemy URL of the default SQLite campaign store."""
        return f"sqlite:///{self.root / 'campaigns.db'}"

    @property
    def mlflow_uri(self) -> str:
        """MLflow tracking URI with its SQLite backend."""
        return f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        """Where MLflow stores artifacts."""
        return self.root / "mlartifacts"

    @property
    def prefect_home(self) -> Path:
        """Prefect's local database and settings."""
        return self.root / "prefect"

    @property
    def cache(self) -> Path:
        """Scratch space for oracles and models."""
        return self.root / "cache"

    @contextmanager
    def campaign_lock(self, name: str) -> Iterator[None]:
        """Holds an exclusive lock on a campaign for as long as this process runs it.

        The operating system releases the lock when the process dies, kill -9 included.

        Raises:
            CampaignBusyError: another process holds it; the message names its pid.
        """
        path = self.root / "locks" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise CampaignBusyError(
                    f"campaign {name!r} is already running (process {holder}); wait for it or "
                    "stop it first"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def ensure(self) -> Home:
        """Creates the directories."""
        for path in (self.root, self.mlflow_artifacts, self.prefect_home, self.cache):
            path.mkdir(parents=True, exist_ok=True)
        return self
