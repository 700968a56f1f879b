"""Datasets, evaluators and experiments (issue 16).

The pure core lives here and touches neither the store nor the network: ``specs`` (what a
saved evaluator is), ``observation`` (what an evaluator sees of one request or dataset cell),
``checks`` (the deterministic evaluators), ``judge``, ``judge_parse`` and ``scales`` (an
LLM-as-judge rubric filled in, its answer read on its scale), ``scores`` (what every
evaluator returns).
"""
