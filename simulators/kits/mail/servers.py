"""The SMTP and IMAP servers on an event loop of their own thread, with the store and the worker pool they
share; started and stopped from any thread (a simulator's ``start_listeners`` / ``stop_listeners``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from esante.simulators.core.server import free_port
from esante.simulators.kits.mail.imap import ImapServer
from esante.simulators.kits.mail.store import MailStore
from esante.simulators.kits.mail.worker import WorkerPool

T = TypeVar("T")


class MailServers:
    """``smtp`` makes one aiosmtpd protocol per connection; ``imap`` serves IMAP connections."""

    def __init__(self, host: str, ports: tuple[int, int], *, smtp: Callable[[], asyncio.Protocol],
                 imap: ImapServer, store: MailStore, pool: WorkerPool | None = None) -> None:
        self.host, self.smtp, self.imap, self.store, self.pool = host, smtp, imap, store, pool
        self.smtp_port, self.imap_port = (port or free_port(host) for port in ports)
        self.loop = asyncio.new_event_loop()
        self.servers: list[asyncio.AbstractServer] = []
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"mail-{self.smtp_port}", daemon=True)

    def start(self) -> None:
        self.thread.start()
        self.run(self._open(), timeout=60)

    def run(self, work: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``work`` on the servers' loop and wait for it (from another thread)."""
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=timeout)

    async def _open(self) -> None:
        self.store.loop = self.loop
        if self.pool is not None:
            await self.pool.start()
        self.servers = [await self.loop.create_server(self.smtp, self.host, self.smtp_port),
                        await self.imap.start(self.host, self.imap_port)]

    async def _close(self) -> None:
        for server in self.servers:
            server.close()
        for task in asyncio.all_tasks(self.loop) - {asyncio.current_task(self.loop)}:
            task.cancel()
        if self.pool is not None:
            self.pool.close()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.run(self._close(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
        self.store.loop = None
