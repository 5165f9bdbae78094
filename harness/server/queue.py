"""Runs on other machines: procrastinate, a task queue kept in PostgreSQL, carries run ids from the lab's server
to ``esante serve --worker`` processes anywhere that reach the same database (and the same data folder, where
the evidence goes). It is the engine; this module only names the one task and opens the app.

The server defers ``esante_lab_run(run_id)``; a worker executes it with :func:`.worker.execute`, which claims
the run in the lab's own tables first, so a job delivered twice plays once, and a run cancelled while queued
is not played at all.
"""

from __future__ import annotations

from typing import Any

import procrastinate
import psycopg

from esante.harness.server.db import Database
from esante.harness.server.worker import LabSettings, execute

QUEUE, TASK = "esante-lab", "esante_lab_run"


def conninfo(url: str) -> str:
    """A libpq connection string from the lab's SQLAlchemy URL."""
    return "postgresql://" + url.split("://", 1)[1]


def make_app(db: Database, settings: LabSettings) -> procrastinate.App:
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo(db.url)))

    @app.task(name=TASK, queue=QUEUE)
    def play_run(run_id: int) -> None:
        execute(db, settings, run_id)

    return app


def ensure_schema(db: Database, app: procrastinate.App) -> None:
    """Apply procrastinate's schema once (it has no "if not exists")."""
    with psycopg.connect(conninfo(db.url)) as connection:
        present = connection.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
    if present is None or present[0] is None:
        with app.open():
            app.schema_manager.apply_schema()


class QueueDispatcher:
    """The server's side: defer each run to the queue."""

    def __init__(self, db: Database, settings: LabSettings) -> None:
        self.app = make_app(db, settings)
        ensure_schema(db, self.app)
        self.app.open()

    def submit(self, run_id: int) -> None:
        self.app.configure_task(TASK).defer(run_id=run_id)

    def stop(self) -> None:
        self.app.close()


def run_worker(db: Database, settings: LabSettings, concurrency: int, **options: Any) -> None:
    """A worker, in the foreground until SIGINT/SIGTERM: ``concurrency`` runs at a time."""
    app = make_app(db, settings)
    ensure_schema(db, app)
    app.run_worker(queues=[QUEUE], concurrency=concurrency, name=f"esante-lab-{concurrency}", **options)
