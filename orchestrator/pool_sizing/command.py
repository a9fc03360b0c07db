"""`prismrl size-pools [CONFIG] [key=value ...] SOURCE [options]`: reward-pool sizing from measured throughput.

Each pool gets the fewest replicas whose throughput reaches the rollout sample rate times a
headroom (no pool starves the learner), and a GPU fraction per replica (orchestrator/pool_sizing/sizing.py).
Prints a table, writes <run_dir>/pool_sizes.json and <run_dir>/pools.yaml (a `pools:` snippet to merge
into a config, or pass as overrides).

SOURCE, one of:
  --bench PATH        benchmarks/pools.py output {"scaling": {teacher: {replicas: samples/s}}};
                      needs --rollout-samples-per-s
  --summary PATH      a training run's summary.json (follows its MLflow run)
  --mlflow-run ID     a training run in MLflow (--tracking-uri URI, default tracking.tracking_uri)
options:
  --rollout-samples-per-s X   rollout rate to size for (default: measured by the run)
  --headroom H                capacity over the rollout rate (default 1.5)
  --measured-gpus G           GPUs per replica during the measurement (default: the run's
                              pools.<t>.num_gpus; 0 for a bench JSON, which runs on the CPU)
  --gpu-step S                GPU fractions are rounded up to multiples of S (default 0.05)

    prismrl size-pools cluster --bench runs/bench/pools.json --rollout-samples-per-s 40
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

import yaml

from common.types import TEACHERS
from orchestrator.config.argv import config_from_argv, wants_help
from orchestrator.pool_sizing.sizing import PoolSize, size_pools
from orchestrator.runtime.tracking import tracking_uri, write_json


def scaling_from_bench(data: dict[str, Any]) -> dict[str, dict[int, float]]:
    """{teacher: {replicas: samples/s}} of a pools benchmark; `teacher/backend` names count as the
    teacher; the `latency` stand-in and unknown names are left out."""
    if "scaling" not in data:
        raise ValueError("bench JSON has no 'scaling' key (expected benchmarks/pools.py output)")
    out = {}
    for name, per_r in data["scaling"].items():
        teacher = name.partition("/")[0]
        if teacher in TEACHERS:
            out[teacher] = {int(r): float(s) for r, s in per_r.items()}
    if not out:
        raise ValueError(f"bench JSON measures none of the teachers {list(TEACHERS)}: {sorted(data['scaling'])}")
    return out


def measured_from_mlflow(uri: str, run_id: str) -> dict[str, Any]:
    """Pool throughput per teacher at the run's replica counts, the rollout rate, and GPUs per replica.

    Rollout rate: the larger of the run's samples/s (whole loop) and the fleet's generation rate
    (rollout.num_workers x grpo.group_size / time/rollout_busy, per group of one worker)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(run_id)
    params = run.data.params

    def mean_of(key: str) -> float:
        values = [m.value for m in client.get_metric_history(run_id, key) if math.isfinite(m.value) and m.value > 0]
        return float(sum(values) / len(values)) if values else math.nan

    scaling, gpus = {}, {}
    for t in TEACHERS:
        sps = mean_of(f"pool/{t}/samples_per_s")
        if math.isfinite(sps):
            scaling[t] = {int(params.get(f"pools.{t}.replicas", 1)): sps}
            gpus[t] = float(params.get(f"pools.{t}.num_gpus", 0.0))
    if not scaling:
        raise ValueError(f"MLflow run {run_id} at {uri} has no pool/<teacher>/samples_per_s metrics")
    rates = [mean_of("samples_per_s")]
    busy = mean_of("time/rollout_busy")
    if math.isfinite(busy):
        rates.append(int(params.get("rollout.num_workers", 1)) * int(params.get("grpo.group_size", 1)) / busy)
    rates = [r for r in rates if math.isfinite(r)]
    return {"scaling": scaling, "gpus": gpus, "rollout_samples_per_s": max(rates) if rates else math.nan,
            "source": f"mlflow run {run_id} ({uri})"}


def markdown_table(sizes: dict[str, PoolSize]) -> str:
    """One line per pool."""
    rows = ["| pool | replicas | per replica (samples/s) | capacity | demand | utilization | GPUs/replica | GPUs |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for p in sizes.values():
        rows.append(f"| {p.teacher} | {p.replicas} | {p.per_replica_samples_per_s:.1f} | {p.capacity_samples_per_s:.1f} "
                    f"| {p.demand_samples_per_s:.1f} | {p.utilization:.0%} | {p.num_gpus:g} | {p.replicas * p.num_gpus:g} |")
    return "\n".join(rows)


def pools_snippet(sizes: dict[str, PoolSize]) -> str:
    """YAML `pools:` section of the sizes."""
    return yaml.safe_dump({"pools": {t: {"replicas": p.replicas, "num_gpus": p.num_gpus} for t, p in sizes.items()}},
                          sort_keys=False)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="prismrl size-pools", add_help=False)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--bench")
    source.add_argument("--summary")
    source.add_argument("--mlflow-run")
    p.add_argument("--tracking-uri")
    p.add_argument("--rollout-samples-per-s", type=float)
    p.add_argument("--headroom", type=float, default=1.5)
    p.add_argument("--measured-gpus", type=float)
    p.add_argument("--gpu-step", type=float, default=0.05)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prismrl size-pools`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if wants_help(argv, __doc__):
        return 0
    try:
        args, rest = _parser().parse_known_args(argv)
    except SystemExit:
        print(__doc__, file=sys.stderr)
        return 2
    cfg = config_from_argv(rest, "size-pools", default_preset="cluster")
    if args.bench:
        with open(args.bench) as f:
            measured = {"scaling": scaling_from_bench(json.load(f)), "gpus": {}, "rollout_samples_per_s": math.nan,
                        "source": f"bench {args.bench}"}
    else:
        uri, run_id = args.tracking_uri or tracking_uri(cfg), args.mlflow_run
        if args.summary:
            with open(args.summary) as f:
                summary = json.load(f)
            uri, run_id = summary["mlflow"]["tracking_uri"], summary["mlflow"]["run_id"]
        measured = measured_from_mlflow(uri, run_id)
    rate = args.rollout_samples_per_s or measured["rollout_samples_per_s"]
    if not rate or not math.isfinite(rate):
        print(f"prismrl size-pools: {measured['source']} has no rollout rate; pass --rollout-samples-per-s", file=sys.stderr)
        return 2
    gpus = ({t: args.measured_gpus for t in measured["scaling"]} if args.measured_gpus is not None
            else measured["gpus"])
    sizes = size_pools(measured["scaling"], rate, args.headroom, gpus, args.gpu_step)
    os.makedirs(cfg.run_dir, exist_ok=True)
    table = markdown_table(sizes)
    write_json(os.path.join(cfg.run_dir, "pool_sizes.json"), {
        "source": measured["source"], "rollout_samples_per_s": rate, "headroom": args.headroom,
        "measured_gpus_per_replica": gpus, "measured_samples_per_s": measured["scaling"],
        "pools": {t: p.as_dict() for t, p in sizes.items()},
        "unmeasured": [t for t in TEACHERS if t not in sizes]})
    snippet = pools_snippet(sizes)
    with open(os.path.join(cfg.run_dir, "pools.yaml"), "w") as f:
        f.write(snippet)
    print(f"rollout rate {rate:.1f} samples/s x headroom {args.headroom:g} ({measured['source']})\n")
    print(table)
    print("\n" + snippet)
    missing = [t for t in TEACHERS if t not in sizes]
    if missing:
        print(f"not measured (keep their config): {', '.join(missing)}")
    print("overrides: " + " ".join(f"pools.{t}.replicas={p.replicas} pools.{t}.num_gpus={p.num_gpus:g}"
                                   for t, p in sizes.items()))
    print(f"written: {os.path.join(cfg.run_dir, 'pool_sizes.json')}, {os.path.join(cfg.run_dir, 'pools.yaml')}")
    return 0
