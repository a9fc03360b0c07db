"""Runtime services every command shares: joining or starting Ray on loopback (`ray_setup.py`),
MLflow tracking and JSON output (`tracking.py`) and the PNG figures it logs (`plots.py`).

May import `config` and `common` only, so that every other subpackage can use it.
"""
