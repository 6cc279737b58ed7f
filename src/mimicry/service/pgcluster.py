"""A throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary directory) for tests and benchmarks.

The server refuses to run as root, so under root it runs as the `postgres` account (or `nobody`),
in a directory made outside any root-only tree.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mimicry.errors import MimicryError


def pg_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)
    return str(candidates[0]) if candidates else None


def _account() -> list[str]:
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
        except KeyError:
            continue
    raise MimicryError("running as root without a postgres or nobody account to run PostgreSQL as")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def temporary_cluster() -> Iterator[str]:
    """Yields a SQLAlchemy URL of a fresh local cluster; stops and deletes it afterwards."""
    initdb, pg_ctl = pg_tool("initdb"), pg_tool("pg_ctl")
    if not (initdb and pg_ctl):
        raise MimicryError("PostgreSQL binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    prefix = _account()
    root = Path(tempfile.mkdtemp(prefix="mimicry-pg-"))
    data, sock, log = root / "pgdata", root / "sock", root / "pg.log"
    sock.mkdir()
    if prefix:
        uid = pwd.getpwnam(prefix[2]).pw_uid
        for p in (root, sock):
            os.chown(p, uid, -1)
    port = _free_port()
    try:
        steps = [
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            [
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "start",
                "-o",
                f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            ],
        ]
        for step in steps:
            done = subprocess.run([*prefix, *step], capture_output=True, text=True)
            if done.returncode:
                tail = (done.stderr or done.stdout).strip()[-400:]
                raise MimicryError(f"PostgreSQL could not start: {Path(step[0]).name} said {tail}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
