"""The job queue on both dialects (one lease per job under concurrency, expired and dead-owner
takeover, renewal by the holder only, release, cancel) and the job runner's loop (a handler
run once, a failing one recorded, periodic ticks)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Engine, update

from heliograph.config import Settings
from heliograph.jobs.runner import JobContext, JobRunner, Registry, owner_dead
from heliograph.store import jobs as store
from heliograph.store.schema import jobs


def test_a_job_is_leased_once_even_by_racing_processes(engine: Engine) -> None:
    job_id = store.enqueue(engine, "k", {"n": 1}, ref_id="r1")
    won: list[Any] = []
    barrier = threading.Barrier(8)

    def take(i: int) -> None:
        barrier.wait()
        got = store.lease(engine, f"owner-{i}", ["k"], 30)
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and won[0]["id"] == job_id and won[0]["attempts"] == 1
    assert won[0]["payload"] == {"n": 1} and won[0]["status"] == store.RUNNING
    assert store.lease(engine, "late", ["k"], 30) is None
    assert store.lease(engine, "other-kind", ["x"], 30) is None


def test_renew_finish_fail_release_and_cancel(engine: Engine) -> None:
    a = store.enqueue(engine, "k", {})
    got = store.lease(engine, "me", ["k"], 30)
    assert got is not None and got["id"] == a
    assert store.renew(engine, a, "me", 30)
    assert not store.renew(engine, a, "someone-else", 30)
    assert store.release(engine, a, "me")
    again = store.lease(engine, "you", ["k"], 30)
    assert again is not None and again["attempts"] == 2 and again["lease_owner"] == "you"
    assert not store.finish(engine, a, "me")  # no longer the holder
    assert store.fail(engine, a, "you", "boom")
    assert store.get_job(engine, a)["status"] == store.FAILED  # type: ignore[index]
    b = store.enqueue(engine, "k", {}, ref_id="exp")
    assert store.cancel_ref(engine, "k", "exp") == 1
    assert store.get_job(engine, b)["status"] == store.CANCELLED  # type: ignore[index]
    assert store.lease(engine, "me", ["k"], 30) is None


def test_an_expired_lease_or_a_dead_owner_is_taken_over(engine: Engine) -> None:
    a = store.enqueue(engine, "k", {})
    assert store.lease(engine, "host:1:x", ["k"], 30) is not None
    assert store.lease(engine, "other", ["k"], 30) is None  # held and alive
    taken = store.lease(engine, "other", ["k"], 30, owner_dead=lambda o: o == "host:1:x")
    assert taken is not None and taken["lease_owner"] == "other"
    with engine.begin() as conn:  # the lease runs out
        conn.execute(update(jobs).where(jobs.c.id == a).values(lease_until=1))
    late = store.lease(engine, "third", ["k"], 30)
    assert late is not None and late["attempts"] == 3
    assert not store.renew(engine, a, "other", 30)  # the old holder learns it lost the job


def test_owner_dead_only_for_gone_processes_of_this_host() -> None:
    import os
    import socket

    host = socket.gethostname()
    assert not owner_dead(f"{host}:{os.getpid()}:abc")  # this process
    assert not owner_dead(f"{host}:1:abc")  # init exists (or is not ours to signal)
    assert owner_dead(f"{host}:{2**22 + 12345}:abc")  # no such pid
    assert not owner_dead("another-host:4242:abc")
    assert not owner_dead("garbage")


def test_runner_runs_handlers_and_ticks(engine: Engine, tmp_path: Any) -> None:
    seen: list[str] = []
    ticks: list[int] = []

    async def ok(context: JobContext, job: dict[str, Any]) -> None:
        seen.append(job["payload"]["v"])

    async def bad(context: JobContext, job: dict[str, Any]) -> None:
        raise RuntimeError("handler failed")

    registry = Registry()
    registry.handle("ok", ok)
    registry.handle("bad", bad)
    registry.run_periodic("tick", lambda context: ticks.append(1), 0.05)
    with pytest.raises(ValueError):
        registry.handle("ok", ok)
    with pytest.raises(ValueError):
        registry.run_periodic("tick", lambda context: None, 1)
    first = store.enqueue(engine, "ok", {"v": "one"})
    second = store.enqueue(engine, "bad", {})
    context = JobContext(Settings(home=tmp_path), engine, "runner-1")

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(JobRunner(context, registry).run(stop))
        for _ in range(200):
            states = [store.get_job(engine, j)["status"] for j in (first, second)]  # type: ignore[index]
            if states == [store.DONE, store.FAILED] and len(ticks) >= 3:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task

    asyncio.run(main())
    assert seen == ["one"]
    assert store.get_job(engine, first)["status"] == store.DONE  # type: ignore[index]
    failed = store.get_job(engine, second)
    assert failed is not None and failed["status"] == store.FAILED
    assert "handler failed" in failed["error"]
    assert len(ticks) >= 3


def test_idle_system_keys_are_revoked(engine: Engine) -> None:
    from heliograph.auth.keys import create_key
    from heliograph.store import orgs, system_keys
    from heliograph.store.keys import list_keys
    from heliograph.store.schema import api_keys

    org = orgs.create_org(engine, "o")
    old, _ = create_key(engine, org_id=org, name="experiments (system)", scope="write")
    used, _ = create_key(engine, org_id=org, name="experiments (system)", scope="write")
    fresh, _ = create_key(engine, org_id=org, name="experiments (system)", scope="write")
    other, _ = create_key(engine, org_id=org, name="ci", scope="write")
    with engine.begin() as conn:
        conn.execute(
            update(api_keys).where(api_keys.c.id.in_([old, used, other])).values(created_at=1)
        )
        conn.execute(update(api_keys).where(api_keys.c.id == used).values(last_used_at=2**50))
    assert system_keys.revoke_idle(engine, org, "experiments (system)", 3600_000) == 1
    revoked = {k["id"] for k in list_keys(engine, org) if k["revoked_at"]}
    assert revoked == {old}
    assert fresh not in revoked and other not in revoked
