"""Real services for the tests that need them: a Prefect server, an MLflow tracking server and a
PostgreSQL server, each started in a temporary directory on a free local port and stopped after.

PostgreSQL comes from the machine (Debian's ``postgresql`` package): ``.ci/run`` installs it,
starts a server with ``python -m tests.services start-postgres DIR`` and gives the tests its URL
in ``INVDES_TEST_POSTGRES_URL`` (a server of one's own works the same); without that variable
the tests start one themselves. Where PostgreSQL is missing the tests that need it skip, saying
so, unless ``INVDES_REQUIRE_POSTGRES`` is set (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Waits until ``url`` answers 200, failing with the log when the process ends first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")


@contextmanager
def _process(command: list[str], cwd: Path, env: dict[str, str], health: str,
             timeout_s: float = 180) -> Iterator[subprocess.Popen[bytes]]:
    log = cwd / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=sink,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http(health, process, log, timeout_s)
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()


@contextmanager
def prefect_server(root: Path) -> Iterator[str]:
    """A Prefect server with its own SQLite database under ``root``; yields its API URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(root / "prefect"), PREFECT_UI_ENABLED="false",
               PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1")
    env.pop("PREFECT_API_URL", None)
    with _process([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port",
                   str(port)], root, env, f"http://127.0.0.1:{port}/api/health"):
        yield f"http://127.0.0.1:{port}/api"


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """``mlflow server`` with a SQLite backend and artifacts under ``root``; yields its URL."""
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
               "--artifacts-destination", str(root / "artifacts")]
    with _process(command, root, dict(os.environ), f"http://127.0.0.1:{port}/health"):
        yield f"http://127.0.0.1:{port}"


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


def _as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, the command runs as the ``postgres`` user."""
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.fail("running as root without runuser: cannot start PostgreSQL as 'postgres'")
    return [runuser, "-u", "postgres", "--", *command]


def missing_postgres(reason: str) -> None:
    """Skips, or fails where PostgreSQL is required (``INVDES_REQUIRE_POSTGRES``, set in CI)."""
    if os.environ.get("INVDES_REQUIRE_POSTGRES"):
        pytest.fail(f"PostgreSQL is required here (INVDES_REQUIRE_POSTGRES) but {reason}")
    pytest.skip(f"no PostgreSQL server: {reason} (install Debian's postgresql, as .ci/run does)")


def start_postgres(root: Path) -> str:
    """Initialises a PostgreSQL cluster in the empty directory ``root`` (made readable to the
    ``postgres`` user when run as root) and starts it on a free port with its log in
    ``root/log``; returns an SQLAlchemy URL (psycopg) of its empty database ``invdes``."""
    bindir = _postgres_bin()
    if bindir is None:
        raise FileNotFoundError("initdb is not installed")
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir(parents=True)
    if os.geteuid() == 0:
        for path in (root, sockets):
            shutil.chown(path, "postgres")
    port = free_port()

    def run(*command: str) -> None:
        done = subprocess.run(_as_postgres_user(list(command)), capture_output=True, cwd=root,
                              text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({done.returncode}): "
                               f"{done.stdout[-1500:]} {done.stderr[-1500:]}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "invdes", "--auth=trust",
        "--encoding=UTF8", "--no-sync")
    run(str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(root / "log"), "-w",
        "-t", "60", "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 "
        "-c fsync=off -c full_page_writes=off")
    run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "invdes", "invdes")
    return f"postgresql+psycopg://invdes@127.0.0.1:{port}/invdes"


def stop_postgres(root: Path) -> None:
    """Stops the cluster :func:`start_postgres` started in ``root`` and removes ``root``."""
    bindir = _postgres_bin()
    if bindir is not None and (root / "data").exists():
        subprocess.run(_as_postgres_user([str(bindir / "pg_ctl"), "stop", "-D",
                                          str(root / "data"), "-m", "immediate"]),
                       capture_output=True, cwd=root)
    shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """The PostgreSQL server of ``INVDES_TEST_POSTGRES_URL`` (``.ci/run`` starts one), or else
    a cluster started here in a temporary directory and removed after; yields an SQLAlchemy URL
    of an empty database."""
    given = os.environ.get("INVDES_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    if _postgres_bin() is None:
        missing_postgres("initdb is not installed")
    # not under pytest's tmp_path: as root the server runs as 'postgres', who cannot enter it
    root = Path(tempfile.mkdtemp(prefix="invdes-postgres-"))
    try:
        yield start_postgres(root)
    finally:
        stop_postgres(root)


def fresh_database(server_url: str, name: str) -> str:
    """Creates the empty database ``name`` on the server of ``server_url`` (dropping an older
    one) and returns its URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":  # for .ci/run: start-postgres DIR (prints the URL) | stop-postgres DIR
    action, directory = sys.argv[1], Path(sys.argv[2])
    if action == "start-postgres":
        print(start_postgres(directory))
    elif action == "stop-postgres":
        stop_postgres(directory)
    else:
        sys.exit(f"unknown action {action!r}: start-postgres DIR or stop-postgres DIR")
