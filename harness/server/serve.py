"""``esante serve``: the lab's web server (with its pool of workers), or a worker alone (``--worker``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from esante.harness.server.app import Lab, build_lab, create_app, ensure_admin
from esante.harness.server.db import Database, database_url

ADMIN_EMAIL = "admin@lab.local"


@dataclass(slots=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8800
    data_dir: Path = Path.home() / ".esante" / "lab-server"
    database: str = ""
    workers: int = 2
    queue: str = "local"  # local | procrastinate
    campaigns_dir: Path | None = None
    signing_key: Path | None = None
    pki_dir: Path | None = None
    admin_email: str = ADMIN_EMAIL
    admin_password: str | None = None
    secure_cookies: bool = False


def open_lab(options: ServeOptions, dispatch: bool = True) -> Lab:
    database = Database(database_url(options.database, options.data_dir))
    if options.queue not in ("local", "procrastinate"):
        raise ValueError("--queue is local or procrastinate")
    if options.queue == "procrastinate" and not database.is_postgresql:
        raise ValueError("--queue procrastinate needs a PostgreSQL --database")
    lab = build_lab(options.data_dir, database, signing_key=options.signing_key, pki_dir=options.pki_dir,
                    campaigns_dir=options.campaigns_dir, workers=options.workers, secure_cookies=options.secure_cookies)
    if options.queue == "procrastinate" and dispatch:
        from esante.harness.server.queue import QueueDispatcher

        lab.dispatcher = QueueDispatcher(database, lab.settings)
    return lab


def serve(options: ServeOptions, say: Callable[[str], None] = print) -> None:
    import uvicorn

    lab = open_lab(options)
    generated = ensure_admin(lab, options.admin_email, options.admin_password)
    if generated:
        say(f"first administrator: {options.admin_email} / {generated} (shown once)")
    say(f"reviewers' lab on http://{options.host}:{options.port}/ (data {lab.settings.data_dir}, database "
        f"{lab.db.engine.url.render_as_string(hide_password=True)}, runs: "
        f"{'procrastinate' if options.queue == 'procrastinate' else f'{options.workers} local workers'})")
    uvicorn.run(create_app(lab), host=options.host, port=options.port, log_level="warning")


def work(options: ServeOptions, say: Callable[[str], None] = print) -> None:
    """A worker alone: takes runs from the procrastinate queue."""
    from esante.harness.server.queue import run_worker

    options.queue = "procrastinate"
    lab = open_lab(options, dispatch=False)
    say(f"lab worker: {options.workers} runs at a time from {lab.db.engine.url.render_as_string(hide_password=True)}")
    run_worker(lab.db, lab.settings, options.workers)
