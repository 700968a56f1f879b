"""Everything the job process runs, registered in one place.

A capability that needs background work adds one line to ``register_all``: a handler per job
kind (``registry.handle(kind, handler)``) and/or a periodic tick
(``registry.run_periodic(name, fn, every_s)``), see ``jobs.runner``.
"""

from __future__ import annotations

from heliograph.jobs.runner import Registry


def register_all(registry: Registry) -> Registry:
    from heliograph.alerts import jobs as alert_jobs
    from heliograph.alerts import webhooks
    from heliograph.budgets import jobs as budget_jobs
    from heliograph.evals import online
    from heliograph.evals import runner as experiment_runner
    from heliograph.retention import jobs as retention_jobs

    experiment_runner.register(registry)
    online.register(registry)
    webhooks.register(registry)
    alert_jobs.register(registry)
    budget_jobs.register(registry)
    retention_jobs.register(registry)
    return registry
