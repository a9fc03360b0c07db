"""Reward-weight sweeps on Ray Tune: the search space and per-trial resources (`space.py`), one
trial as a training run in its placement group (`trial.py`), the `prismrl sweep` entry point
(`sweep.py`), and the comparison at the end (`report.py`, with the Pareto maths in `pareto.py`).

May import `config`, `runtime`, `training`, `actors` and `common`.
"""
