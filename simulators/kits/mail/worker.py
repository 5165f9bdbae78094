"""Work that must not stall the mail servers' event loop, done in worker processes with a deadline.

A message's inspection is CPU work (MIME, zip, XML, the DMP's document rules): on the event loop it would
stall every SMTP and IMAP session, and in a thread it would still hold the interpreter lock most of the time.
Processes take nothing from the loop, and one that overruns its deadline is killed and replaced, which no
thread can be. ``concurrent.futures.ProcessPoolExecutor`` cannot kill one task's process (a killed worker
breaks the whole pool), hence this small pool: one process per slot, one task at a time, pickles over its
standard input and output.

The processes are plain ``python -m esante.simulators.kits.mail.worker``, not ``multiprocessing``'s: never
``fork`` from this multi-threaded server, and ``spawn`` or ``forkserver`` would import the program's main
module again in each worker, which breaks any script that starts a lab without an ``if __name__`` guard.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import IO, Any


class Overdue(Exception):
    """The task ran past the deadline; its process was killed."""


class TaskFailed(Exception):
    """The task raised in its process; the message names the exception."""


def _send(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "big") + data)
    stream.flush()


def _receive(stream: IO[bytes]) -> Any:
    size = stream.read(8)
    if len(size) < 8:
        raise EOFError("the other end closed")
    return pickle.loads(stream.read(int.from_bytes(size, "big")))


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """A worker's life: its initializer, then one task after another until its input closes."""
    initializer, initargs = _receive(requests)
    if initializer is not None:
        initializer(*initargs)
    while True:
        try:
            function, args = _receive(requests)
        except EOFError:
            return
        try:
            answer = (True, function(*args))
        except Exception as exc:  # the task's own failure, sent back as text
            answer = (False, f"{type(exc).__name__}: {exc}")
        _send(answers, answer)


class _Process:
    def __init__(self, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests, self.answers = self.process.stdin, self.process.stdout
        _send(self.requests, (initializer, initargs))

    def call(self, function: Callable[..., Any], args: tuple[Any, ...]) -> tuple[bool, Any]:
        _send(self.requests, (function, args))
        return _receive(self.answers)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=5)
        for stream in (self.requests, self.answers):
            with contextlib.suppress(OSError):
                stream.close()


class WorkerPool:
    """``size`` worker processes; :meth:`run` gives one a task and waits for it at most ``deadline`` seconds.
    Call :meth:`start` (and :meth:`run`) on the event loop that owns the pool."""

    def __init__(self, size: int, deadline: float, *, initializer: Callable[..., None] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self.size, self.deadline = size, deadline
        self.initializer, self.initargs = initializer, initargs
        self._idle: asyncio.Queue[_Process] | None = None
        self._all: set[_Process] = set()

    async def start(self) -> None:
        self._idle = asyncio.Queue()
        for _ in range(self.size):
            self._idle.put_nowait(await self._spawn())

    async def _spawn(self) -> _Process:
        process = await asyncio.to_thread(_Process, self.initializer, self.initargs)
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


if __name__ == "__main__":  # a worker: answers on a copy of stdout; whatever a task prints goes to stderr
    answers = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    serve(sys.stdin.buffer, answers)
