"""Tuning logs shipped with tetune: data only (``*.jsonl``, format in README.md); see
``autotune.default_logs()``."""
