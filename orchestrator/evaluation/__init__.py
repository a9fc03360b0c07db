"""Evaluation of a trained policy: `prismrl eval` (`evaluate.py`), paired per-clip differences
between two policies (`paired.py`), the Fréchet log-mel distance (`fd_logmel.py`), the paper's
ablation tables (`ablation.py`) and `prismrl generate` for videos (`generate.py`).

May import `config`, `data`, `runtime`, `policies`, `rewards` and `common`.
"""
