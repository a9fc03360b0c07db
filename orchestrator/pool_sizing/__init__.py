"""Reward-pool sizing: how many replicas and what GPU fraction each teacher's pool needs so that
no pool starves the learner. `sizing.py` is the arithmetic (no Ray), `command.py` the
`prismrl size-pools` entry point that reads a pools benchmark or a run's MLflow metrics.

May import `config`, `runtime` and `common`.
"""
