"""Automatic tuning: tasks, config spaces, isolated builders/runners, tuners (random, grid,
GA, XGBoost cost model) and append-only JSON-lines tuning logs.

It searches each operator's schedule template on the real machine and hands the winners to
later builds through ``apply_history_best``.
"""
