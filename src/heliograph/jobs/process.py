"""The job process that ``heliograph serve`` starts beside the writer (``jobs_main``).

It runs at a lower priority than the gateway workers (the request path comes first), leaves
with the server (an orphan would keep leasing jobs), and on SIGTERM stops its handlers, giving
their jobs back to the queue so the next job process resumes them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal

from heliograph.config import load_settings
from heliograph.jobs.kinds import register_all
from heliograph.jobs.runner import JobContext, JobRunner, Registry, owner_id
from heliograph.store.engine import make_engine


def jobs_main() -> None:
    """Entry point of the job process."""
    settings = load_settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s jobs %(levelname)s %(message)s"
    )
    with contextlib.suppress(OSError):
        os.nice(5)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    engine = make_engine(settings.sqlalchemy_url)
    context = JobContext(settings, engine, owner_id())
    try:
        asyncio.run(_main(context, register_all(Registry())))
    finally:
        engine.dispose()


async def _main(context: JobContext, registry: Registry) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    parent = os.getppid()

    async def watch_parent() -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0)
            if os.getppid() != parent:
                logging.getLogger(__name__).warning("server process gone; job process stopping")
                stop.set()

    watcher = asyncio.create_task(watch_parent())
    try:
        await JobRunner(context, registry).run(stop)
    finally:
        watcher.cancel()
        for close in context.extras.get("closers", []):
            with contextlib.suppress(Exception):
                await close()
