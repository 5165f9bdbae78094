"""What the reviewers' lab's tests share (no test here): a lab with its people, a PostgreSQL server started for
the tests, and a real HTTP server of the lab.

PostgreSQL is Debian's (the ``postgresql`` package: ``initdb`` and ``pg_ctl`` under
/usr/lib/postgresql/<version>/bin), started in a temporary folder on a free loopback port; as root it runs as the
``postgres`` account the package creates, since the server refuses root. Where none can start, the tests that
need it skip and say why.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from esante.harness.server import security
from esante.harness.server.app import Lab, build_lab, create_app, ensure_admin
from esante.harness.server.db import Database, database_url
from esante.simulators.core.server import ServerHandle, free_port

ADMIN, PASSWORD = "admin@lab.test", "admin-password-1"
PEOPLE = {  # e-mail -> (role, organisation)
    "editor@alpha.test": ("editor", "Alpha Santé"),
    "editor@beta.test": ("editor", "Beta Logiciels"),
    "reviewer@cnda.test": ("reviewer", None),
    "other-reviewer@cnda.test": ("reviewer", None),
}
ACTIVE = ("queued", "running")
# argon2's default costs take 0.7 s a hash on a CI machine; the lab's tests use its cheapest parameters
security._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


# -- PostgreSQL -----------------------------------------------------------------------------------------------

def _pg_tool(name: str) -> str | None:
    """Debian's server programs (``/usr/lib/postgresql/<version>/bin``, the newest version; Debian puts neither
    ``initdb`` nor ``pg_ctl`` on the PATH), else the PATH's (another distribution, or a server built by hand)."""
    installed = [path for path in Path("/usr/lib/postgresql").glob(f"*/bin/{name}") if path.parts[-3].isdigit()]
    if installed:
        return str(max(installed, key=lambda path: int(path.parts[-3])))
    return shutil.which(name)


@dataclass
class Postgres:
    url: str
    folder: Path
    as_user: list[str]
    pg_ctl: str
    created: int = 0

    def new_database(self) -> str:
        """A fresh, empty database on the server: its URL."""
        import psycopg

        self.created += 1
        name = f"lab_{os.getpid()}_{self.created}"
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def start_postgres() -> Postgres:
    """Start a throwaway PostgreSQL server, or skip saying why none can start here."""
    initdb, pg_ctl = _pg_tool("initdb"), _pg_tool("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL server here (Debian's postgresql: initdb and pg_ctl)")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="esante-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as Debian's postgres account
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' account to run PostgreSQL as")
        os.chmod(folder, 0o755)
        os.chown(folder, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port("127.0.0.1")
    data = folder / "data"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-U", "lab", "--auth=trust", "-E", "UTF8", "--no-locale"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(folder / "server.log"), "-w", "-t", "60",
                        "-o", f"-p {port} -h 127.0.0.1 -k {folder} -c fsync=off", "start"],
                       check=True, capture_output=True, timeout=90)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        pytest.skip(f"PostgreSQL did not start: {exc} {detail.decode(errors='replace')[-300:]}")
    return Postgres(f"postgresql://lab@127.0.0.1:{port}/postgres", folder, as_user, pg_ctl)


def stop_postgres(server: Postgres) -> None:
    subprocess.run([*server.as_user, server.pg_ctl, "-D", str(server.folder / "data"), "-m", "immediate", "stop"],
                   capture_output=True, timeout=60)
    shutil.rmtree(server.folder, ignore_errors=True)


# -- a lab and its people -------------------------------------------------------------------------------------

@dataclass
class People:
    """The lab's accounts, and a way to call the API as each of them."""

    client: Any  # TestClient or httpx.Client, with the lab as base URL
    lab: Lab
    tokens: dict[str, str] = field(default_factory=dict)
    organisations: dict[str, int] = field(default_factory=dict)

    def call(self, who: str, method: str, path: str, expect: int | None = None, **kwargs: Any) -> Any:
        answer = self.client.request(method, f"/api/v1{path}", headers={"Authorization": f"Bearer {self.tokens[who]}"},
                                     **kwargs)
        if expect is not None:
            assert answer.status_code == expect, f"{method} {path}: {answer.status_code} {answer.text[:500]}"
        return answer

    def json(self, who: str, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return self.call(who, method, path, expect, **kwargs).json()

    def wait(self, who: str, run_id: int, timeout: float = 240) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.json(who, "GET", f"/runs/{run_id}")
            if run["status"] not in ACTIVE:
                return run
            assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout} s"
            time.sleep(0.5)


def populate(people: People) -> People:
    """The administrator creates two organisations, their editors and two reviewers; everyone gets a token."""
    people.tokens[ADMIN] = token(people.client, ADMIN, PASSWORD)
    for email, (role, organisation) in PEOPLE.items():
        org_id = None
        if organisation:
            if organisation not in people.organisations:
                people.organisations[organisation] = people.json(ADMIN, "POST", "/organisations", 201,
                                                                 json={"name": organisation})["id"]
            org_id = people.organisations[organisation]
        people.json(ADMIN, "POST", "/users", 201, json={"email": email, "password": PASSWORD, "role": role,
                                                         "organisation_id": org_id, "name": email.split("@")[0]})
        people.tokens[email] = token(people.client, email, PASSWORD)
    return people


def token(client: Any, email: str, password: str) -> str:
    answer = client.post("/api/v1/tokens", json={"email": email, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()["token"]


def make_lab(folder: Path, database: str = "", workers: int = 2, campaigns: Path | None = None) -> Lab:
    lab = build_lab(folder, Database(database_url(database, folder)), workers=workers, campaigns_dir=campaigns,
                    signing_key=folder / "keys" / "ed25519.pem")
    ensure_admin(lab, ADMIN, PASSWORD)
    return lab


@contextlib.contextmanager
def lab_in_process(folder: Path, database: str = "", campaigns: Path | None = None) -> Iterator[People]:
    """A lab served by a TestClient (its pool of workers started with it)."""
    lab = make_lab(folder, database, campaigns=campaigns)
    with TestClient(create_app(lab)) as client:
        yield populate(People(client, lab))


@contextlib.contextmanager
def lab_over_http(folder: Path, database: str = "", workers: int = 2) -> Iterator[tuple[str, People]]:
    """A lab on a real loopback HTTP server (uvicorn), for browsers and ``esante submit``."""
    lab = make_lab(folder, database, workers)
    lab.start()  # ServerHandle runs no lifespan
    try:
        with ServerHandle(create_app(lab)) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            yield server.url, populate(People(client, lab))
    finally:
        lab.stop()
