"""Work that must not stall the mail servers' event loop, done in worker processes with a deadline.

A message's inspection is CPU work (MIME, zip, XML, the DMP's document rules): on the event loop it would
stall every SMTP and IMAP session, and in a thread it would still hold the interpreter lock most of the time.
Processes take nothing from the loop, and one that overruns its deadline is killed and replaced, which no
thread can be. ``concurrent.futures.ProcessPoolExecutor`` cannot kill one task's process (a killed worker
breaks the whole pool), hence this small pool: one pipe per process, one task at a time per process.

Processes come from the ``forkserver`` context (never ``fork`` from this multi-threaded server), with the
modules named by ``preload`` imported once in the fork server, so a replacement starts in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any


class Overdue(Exception):
    """The task ran past the deadline; its process was killed."""


class TaskFailed(Exception):
    """The task raised in its process; the message names the exception."""


def _serve(connection: Connection, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            function, args = connection.recv()
        except (EOFError, OSError):
            return
        try:
            connection.send((True, function(*args)))
        except Exception as exc:  # the task's own failure, sent back as text
            connection.send((False, f"{type(exc).__name__}: {exc}"))


class _Process:
    def __init__(self, context: Any, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, initializer, initargs), daemon=True)
        self.process.start()
        child.close()

    def call(self, function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        self.connection.send((function, args))
        return self.connection.recv()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


class WorkerPool:
    """``size`` worker processes; :meth:`run` gives one a task and waits for it at most ``deadline`` seconds.
    Call :meth:`start` (and :meth:`run`) on the event loop that owns the pool."""

    def __init__(self, size: int, deadline: float, *, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = (), preload: Sequence[str] = ()) -> None:
        self.size, self.deadline = size, deadline
        self.initializer, self.initargs = initializer, initargs
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))
        self._idle: asyncio.Queue[_Process] | None = None
        self._all: set[_Process] = set()

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(await self._spawn())

    async def _spawn(self) -> _Process:
        process = await asyncio.to_thread(_Process, self._context, self.initializer, self.initargs)
        self._all.add(process)
        return process

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """``function(*args)`` in a worker process (both picklable), or :class:`Overdue` / :class:`TaskFailed`."""
        if self._idle is None:
            raise RuntimeError("the worker pool is not started")
        process = await self._idle.get()
        try:
            done, result = await asyncio.wait_for(asyncio.to_thread(process.call, function, args), self.deadline)
        except (TimeoutError, EOFError, OSError) as exc:
            await self._replace(process)
            raise Overdue(f"no answer within {self.deadline:g} s") if isinstance(exc, TimeoutError) \
                else TaskFailed(f"the worker process died ({type(exc).__name__})") from None
        self._give_back(process)
        if not done:
            raise TaskFailed(result)
        return result

    async def _replace(self, process: _Process) -> None:
        owned = process in self._all  # not when the pool was closed or restarted meanwhile
        self._all.discard(process)
        await asyncio.to_thread(process.kill)
        if owned:
            self._give_back(await self._spawn())

    def _give_back(self, process: _Process) -> None:
        if process in self._all and self._idle is not None:
            self._idle.put_nowait(process)

    async def restart(self, initargs: tuple[Any, ...]) -> None:
        """New processes, initialised with ``initargs`` (the data set changed)."""
        self.close()
        self.initargs = initargs
        await self.start()

    def close(self) -> None:
        for process in list(self._all):
            with contextlib.suppress(OSError):
                process.kill()
        self._all.clear()
        self._idle = None
