"""Budgets: spending, token and request limits enforced before the upstream is called."""
