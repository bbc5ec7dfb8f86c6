"""A throwaway PostgreSQL server for tests: initdb in a temp folder, a free loopback port.

``postgres_server()`` yields ``postgresql://inferd@127.0.0.1:<port>/postgres`` and stops the
server (immediate mode) at the end; ``fresh_database(url)`` creates an empty database on it,
so each test starts clean without paying for a new server. PostgreSQL refuses to run as root:
as root, initdb and pg_ctl run as the ``postgres`` user, in folders chowned to it. Without any
PostgreSQL binaries the tests that need one are skipped with how to install them.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_INSTALL_HINT = "PostgreSQL binaries (initdb, pg_ctl) not found; apt-get install postgresql"
_databases = itertools.count()


def find_binaries() -> tuple[str, str] | None:
    """(initdb, pg_ctl): on PATH, else the newest /usr/lib/postgresql/<version>/bin."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return initdb, pg_ctl

    def version(folder: str) -> int:
        name = Path(folder).parent.name
        return int(name) if name.isdigit() else 0

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        initdb, pg_ctl = f"{folder}/initdb", f"{folder}/pg_ctl"
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return initdb, pg_ctl
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def postgres_server() -> Iterator[str]:
    """Start a PostgreSQL server for the duration of the block; yield its URL."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(_INSTALL_HINT)
    initdb, pg_ctl = binaries
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="inferd-pg-"))  # under /tmp: reachable by postgres
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        as_user = ["runuser", "-u", "postgres", "--"]
        os.chown(base, owner.pw_uid, owner.pw_gid)
    data, sockets, log = base / "data", base / "sockets", base / "server.log"

    def run(*command: str) -> None:
        done = subprocess.run(
            [*as_user, *command], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
                f"{server_log}"
            )

    port = _free_port()
    try:
        run("mkdir", "-p", str(sockets))
        run(initdb, "-D", str(data), "-U", "inferd", "--auth=trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        options = (
            f"-p {port} -k {sockets} -h 127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        run(pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start")
        try:
            yield f"postgresql://inferd@127.0.0.1:{port}/postgres"
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server_url: str) -> str:
    """Create an empty database on the server at ``server_url``; its URL."""
    import psycopg

    name = f"test_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server shared by the whole test session (see ``fresh_database``)."""
    with postgres_server() as url:
        yield url
