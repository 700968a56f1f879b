"""The job loop: lease a job, run its kind's handler, keep the lease alive, record the end.

A ``Registry`` holds what the job process does: a handler per job kind (``handle``) and
periodic ticks (``run_periodic``). ``jobs.kinds.register_all`` fills it; a capability adds
one line there. Handlers are coroutines that receive the ``JobContext`` and the job's row; a
handler that returns ends the job as done, one that raises ends it as failed. While a handler
runs its lease is renewed every third of ``LEASE_S``; if a renewal finds the lease lost (this
process stalled and another took the job over), the handler is cancelled, so one job never
runs twice at once. A job left behind by a process that died (SIGKILL) is taken over when its
lease runs out, or at once when its owner was a process of this host that no longer exists.

Periodic ticks run in this process one at a time per name, every ``every_s`` seconds; a tick
that raises is logged and tried again at the next period. Several replicas each run their
ticks: a tick must take its work through the store (a guarded update, a leased queue) so
two of them never do the same item twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from heliograph.config import Settings
from heliograph.store import jobs as job_store

log = logging.getLogger("heliograph.jobs")

LEASE_S = 30.0
POLL_S = 0.5

Handler = Callable[["JobContext", dict[str, Any]], Coroutine[Any, Any, None]]
Tick = Callable[["JobContext"], Awaitable[None] | None]


@dataclass
class Periodic:
    name: str
    fn: Tick
    every_s: float


@dataclass
class Registry:
    """Job handlers by kind and periodic ticks: what one job process runs."""

    handlers: dict[str, Handler] = field(default_factory=dict)
    periodic: list[Periodic] = field(default_factory=list)

    def handle(self, kind: str, handler: Handler) -> None:
        """Run ``handler`` for every job of ``kind`` (``store.jobs.enqueue(engine, kind, ...)``)."""
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} already has a handler")
        self.handlers[kind] = handler

    def run_periodic(self, name: str, fn: Tick, every_s: float) -> None:
        """Call ``fn(context)`` (a function or a coroutine function) every ``every_s`` s."""
        if every_s <= 0:
            raise ValueError("every_s must be positive")
        if any(p.name == name for p in self.periodic):
            raise ValueError(f"periodic task {name!r} already registered")
        self.periodic.append(Periodic(name, fn, every_s))


@dataclass
class JobContext:
    """What handlers and ticks get: the settings, the store, and a place for shared helpers
    (``extras``, e.g. the experiments' internal keys), all owned by one job process."""

    settings: Settings
    engine: Engine
    owner: str
    extras: dict[str, Any] = field(default_factory=dict)


def owner_id() -> str:
    """This process as a lease owner: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_dead(owner: str) -> bool:
    """Whether ``owner`` was a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


class JobRunner:
    """Leases jobs and runs them, ``slots`` at a time, until ``stop`` is set."""

    def __init__(self, context: JobContext, registry: Registry, slots: int = 2) -> None:
        self.context = context
        self.registry = registry
        self.slots = slots
        self.running: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        ticks = [asyncio.create_task(self._tick(p, stop)) for p in self.registry.periodic]
        try:
            while not stop.is_set():
                if len(self.running) < self.slots:
                    job = await self._lease()
                    if job is not None:
                        task = asyncio.create_task(self._run_job(job))
                        self.running.add(task)
                        task.add_done_callback(self.running.discard)
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        finally:
            for task in [*ticks, *self.running]:
                task.cancel()
            await asyncio.gather(*ticks, *self.running, return_exceptions=True)

    async def _lease(self) -> dict[str, Any] | None:
        kinds = sorted(self.registry.handlers)
        try:
            return await asyncio.to_thread(
                job_store.lease, self.context.engine, self.context.owner, kinds, LEASE_S, owner_dead
            )
        except Exception as exc:  # the store may be down for a while
            log.warning("could not lease a job: %s", exc)
            return None

    async def _run_job(self, job: dict[str, Any]) -> None:
        engine, owner = self.context.engine, self.context.owner
        handler = self.registry.handlers[job["kind"]]
        work = asyncio.create_task(handler(self.context, job))
        keeper = asyncio.create_task(self._keep_lease(job["id"], work))
        try:
            await work
        except asyncio.CancelledError:
            if not keeper.done():  # this process is stopping: another one resumes the job
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(job_store.release, engine, job["id"], owner)
                raise
            log.warning("job %s lost its lease; stopped here", job["id"])
            return
        except Exception as exc:
            log.exception("job %s (%s) failed", job["id"], job["kind"])
            await asyncio.to_thread(job_store.fail, engine, job["id"], owner, repr(exc))
            return
        finally:
            keeper.cancel()
        await asyncio.to_thread(job_store.finish, engine, job["id"], owner)

    async def _keep_lease(self, job_id: str, work: asyncio.Task[None]) -> None:
        while True:
            await asyncio.sleep(LEASE_S / 3)
            try:
                held = await asyncio.to_thread(
                    job_store.renew, self.context.engine, job_id, self.context.owner, LEASE_S
                )
            except Exception as exc:
                log.warning("could not renew the lease of job %s: %s", job_id, exc)
                continue
            if not held:
                work.cancel()
                return

    async def _tick(self, periodic: Periodic, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                result = periodic.fn(self.context)
                if asyncio.iscoroutine(result):
                    await result
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic task %s failed", periodic.name)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), periodic.every_s)
