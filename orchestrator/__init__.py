"""The single controller of PrismRL: everything that decides what the Ray roles do.

A subpackage per concern: `config/` (typed schema, presets, argv), `data/` (SynthScenes and
manifests), `grpo/` (advantage and loss maths), `training/` (the controller loop and its parts),
`runtime/` (Ray connection, MLflow tracking, plots), `evaluation/` (eval, generate, ablation),
`sweeps/` (Ray Tune over reward weights), `pool_sizing/` (replicas per reward pool) and `cli/`
(the `prismrl` command). The orchestrator imports `actors`, `policies`, `rewards` and `common`,
never `benchmarks` (only `cli/bench.py` dispatches to them, lazily).
"""
