"""What every request of the lab holds: the :class:`Lab` (database, files, dispatcher) and who is asking."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import Request
from sqlalchemy.orm import Session

from esante.harness.server.db import Database
from esante.harness.server.models import User
from esante.harness.server.worker import Dispatcher, LabSettings, LocalPool, interrupt_stale

SWEEP_SECONDS = 5.0  # how often runs whose worker is gone are looked for


@dataclass
class Lab:
    """Everything a request needs: the database, where files go, and who plays the runs."""

    db: Database
    settings: LabSettings
    dispatcher: Dispatcher | None = None
    campaigns_dir: Path | None = None
    workers: int = 2
    secure_cookies: bool = False
    secret: str = ""
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        if self.dispatcher is None:
            self.dispatcher = LocalPool(self.db, self.settings, self.workers).start()
        threading.Thread(target=self._sweep, name="lab-sweeper", daemon=True).start()

    def _sweep(self) -> None:
        while True:
            interrupt_stale(self.db)
            if self._stop.wait(SWEEP_SECONDS):
                return

    def stop(self) -> None:
        self._stop.set()
        stop = getattr(self.dispatcher, "stop", None)
        if stop is not None:
            stop()

    def submit(self, run_id: int) -> None:
        assert self.dispatcher is not None
        self.dispatcher.submit(run_id)


@dataclass(frozen=True, slots=True)
class Who:
    """The signed-in user of a request; each operation opens its own unit of work."""

    lab: Lab
    user_id: int

    @contextmanager
    def unit(self) -> Iterator[tuple[Session, User]]:
        with self.lab.db.session() as s:
            yield s, s.get_one(User, self.user_id)


def lab_of(request: Request) -> Lab:
    return request.app.state.lab
