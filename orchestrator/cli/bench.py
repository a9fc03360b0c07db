"""`prismrl bench NAME [CONFIG] [key=value ...] [bench.KEY=value ...]`: run one benchmark.

NAME:
  efficiency  Fast-GRPO vs Flow-GRPO vs MixGRPO from one pretrained policy: validation reward per
              learner step and per second, steps and seconds to Flow-GRPO's best (benchmarks/efficiency.py)
  throughput  the Ray pipeline vs a single-process loop doing the same work: samples/s, stage
              times, orchestration overhead (benchmarks/throughput.py)
  pools       reward-pool scaling: samples/s per teacher at 1, 2, 4, 8 replicas (benchmarks/pools.py)
  gpu         one GPU: rollout s/clip, learner s/step, weight sync s, peak GPU memory of the
              cluster-size policy (benchmarks/gpu.py); exits with code 2 when there is no GPU
  gradsnr     the policy gradient's signal-to-noise at a checkpoint: per window start and reward, the
              groups a gradient needs before it points somewhere, against a run's budget (benchmarks/grad_snr.py)
  learn       a learning curve: validation every bench.val_every steps, paired change ± s.e. per teacher,
              PNG and MLflow; bench.null_control=shuffle_in_group|shuffle|zero adds a null-control run (benchmarks/learn.py)
  plan_following  do the policy's sounds have the classes its plan names (and does the plan
              matter at all)? Ground truth, codec ceiling and policy, paired ± s.e. (benchmarks/plan_following.py)
  ablation    the paper's teacher and CoT ablation tables: handed to orchestrator/evaluation/ablation.py
              (its own arguments: [CONFIG] [steps=N] [pretrained=PATH] [key=value ...])

CONFIG and key=value are as for `prismrl train` (default preset: demo; gpu: cluster).
bench.KEY=value sets the benchmark's own options, e.g. bench.measure_steps=5 or
bench.schedules=[fast_grpo,flow_grpo]. Writes <run_dir>/<NAME>.json and <run_dir>/<NAME>.md.

  prismrl bench efficiency demo grpo.steps=12 train.val_every=4
  prismrl bench throughput demo bench.warmup_steps=1 bench.measure_steps=3
  prismrl bench pools bench.replicas=[1,2,4,8]
  prismrl bench gpu cluster bench.steps=3
  prismrl bench gradsnr demo bench.groups=48 bench.window_starts=[0,1,2,3]
  prismrl bench learn demo bench.val_every=10 bench.null_control=shuffle_in_group
  prismrl bench plan_following demo bench.clips=40
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from orchestrator.config.argv import command_config
from orchestrator.config.load import ConfigError
from orchestrator.config.schema import PrismConfig

OPTION_PREFIX = "bench."
"""Overrides with this prefix set benchmark options instead of config keys."""
UNAVAILABLE_EXIT = 2
"""Exit code when a benchmark cannot run here (`gpu` without a GPU, `ablation` not installed)."""


class GpuUnavailable(RuntimeError):
    """A benchmark that needs a GPU found none (torch or Ray); `prismrl bench` exits with code 2."""


@dataclass
class PoolsOptions:
    """Options of `prismrl bench pools` (set as bench.<field>=value)."""

    teachers: list[str] = field(default_factory=lambda: ["latency", "semantic", "timing", "aesthetic", "spatial"])
    """Pools measured: `latency` (fixed wait per call), a teacher name (its CPU backend) or teacher/backend."""
    replicas: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    """Replica counts measured for every teacher."""
    n_samples: int = 128
    """Samples graded per measurement."""
    added_latency_s: float = 0.05
    """Wait per call of the `latency` teacher (a remote model's round trip)."""
    max_batch: int = 8
    """Pool max_batch."""


def run_pools(cfg: PrismConfig, opts: PoolsOptions) -> dict[str, Any]:
    """benchmarks/pools.run with these options; `scaling` is teacher -> replicas -> samples/s."""
    from benchmarks import pools

    return pools.run(list(opts.teachers), tuple(int(r) for r in opts.replicas), opts.n_samples,
                     opts.added_latency_s, None, opts.max_batch, seed=cfg.seed)


@dataclass(frozen=True)
class Benchmark:
    """How to run one benchmark: its options class, its run and markdown functions, its default preset."""

    load: Callable[[], tuple[type, Callable[..., dict], Callable[[dict], str]]]
    """Imports the benchmark lazily; returns (options dataclass, run(cfg, opts), markdown(result))."""
    preset: str
    """Config preset used when none is given."""


def _module_benchmark(module: str, options: str) -> Callable[[], tuple]:
    def load():
        mod = importlib.import_module(module)
        return getattr(mod, options), mod.run, mod.markdown
    return load


def _pools() -> tuple:
    from benchmarks.pools import markdown_table

    return PoolsOptions, run_pools, markdown_table


BENCHMARKS: dict[str, Benchmark] = {
    "efficiency": Benchmark(_module_benchmark("benchmarks.efficiency", "EfficiencyOptions"), "demo"),
    "throughput": Benchmark(_module_benchmark("benchmarks.throughput", "ThroughputOptions"), "demo"),
    "pools": Benchmark(_pools, "demo"),
    "gpu": Benchmark(_module_benchmark("benchmarks.gpu", "GpuOptions"), "cluster"),
    "gradsnr": Benchmark(_module_benchmark("benchmarks.grad_snr", "GradSNROptions"), "demo"),
    "learn": Benchmark(_module_benchmark("benchmarks.learn", "LearnOptions"), "demo"),
    "plan_following": Benchmark(_module_benchmark("benchmarks.plan_following", "PlanFollowingOptions"), "demo"),
}
"""Every `prismrl bench` NAME run by this module."""
DELEGATED: dict[str, str] = {"ablation": "orchestrator.evaluation.ablation"}
"""`prismrl bench` NAMEs handed whole to another module's main(argv) (it parses and writes its own outputs)."""


def parse_options(cls: type, items: list[str], name: str) -> Any:
    """The options dataclass from `bench.KEY=value` items; unknown keys and bad values raise ConfigError."""
    node = OmegaConf.structured(cls)
    allowed = ", ".join(f.name for f in dataclasses.fields(cls))
    for item in items:
        key = item.split("=", 1)[0]
        if key not in node:
            raise ConfigError(f"unknown option 'bench.{key}' of benchmark '{name}'; allowed: {allowed}")
    try:
        node = OmegaConf.merge(node, OmegaConf.from_dotlist(items))
    except OmegaConfBaseException as e:
        raise ConfigError(f"benchmark '{name}' option 'bench.{getattr(e, 'full_key', '?')}': "
                          f"{str(e).splitlines()[0]}") from None
    return OmegaConf.to_object(node)


def run_benchmark(name: str, cfg: PrismConfig, opts: Any = None) -> dict[str, Any]:
    """Run benchmark `name` on `cfg`; writes <run_dir>/<name>.json and .md and returns the result."""
    if name not in BENCHMARKS:
        raise ConfigError(f"unknown benchmark '{name}'; available: {', '.join(BENCHMARKS)}")
    options_cls, run, markdown = BENCHMARKS[name].load()
    opts = options_cls() if opts is None else opts
    os.makedirs(cfg.run_dir, exist_ok=True)
    result = run(cfg, opts)
    write_outputs(cfg.run_dir, name, result, markdown(result))
    return result


def write_outputs(run_dir: str, name: str, result: dict[str, Any], table: str) -> tuple[str, str]:
    """<run_dir>/<name>.json and <run_dir>/<name>.md; returns their paths."""
    from orchestrator.runtime.tracking import write_json

    json_path, md_path = os.path.join(run_dir, f"{name}.json"), os.path.join(run_dir, f"{name}.md")
    write_json(json_path, result)
    with open(md_path, "w") as f:
        f.write(f"# prismrl bench {name}\n\n{table}\n")
    return json_path, md_path


def main(argv: list[str] | None = None) -> int:
    """Entry point of `prismrl bench NAME [CONFIG] [key=value ...] [bench.KEY=value ...]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(__doc__.strip())
        return 0
    name, rest = argv[0], argv[1:]
    if name in DELEGATED:
        return _delegate(name, rest)
    if name not in BENCHMARKS:
        print(f"prismrl bench: unknown benchmark '{name}'; available: {', '.join([*BENCHMARKS, *DELEGATED])}",
              file=sys.stderr)
        return 2
    bench_items = [a[len(OPTION_PREFIX):] for a in rest if a.startswith(OPTION_PREFIX)]
    config_args = [a for a in rest if not a.startswith(OPTION_PREFIX)]
    try:
        options_cls, _, _ = BENCHMARKS[name].load()
        opts = parse_options(options_cls, bench_items, name)
        cfg = command_config(config_args, f"bench-{name}", __doc__, default_preset=BENCHMARKS[name].preset)
        if cfg is None:
            return 0
        run_benchmark(name, cfg, opts)
    except GpuUnavailable as e:
        print(str(e), file=sys.stderr)
        return UNAVAILABLE_EXIT
    print(f"wrote {os.path.join(cfg.run_dir, name + '.json')} and {name}.md")
    with open(os.path.join(cfg.run_dir, f"{name}.md")) as f:
        print(f.read())
    return 0


def _delegate(name: str, argv: list[str]) -> int:
    module = DELEGATED[name]
    if importlib.util.find_spec(module) is None:
        print(f"prismrl bench {name}: not available in this version (no {module})", file=sys.stderr)
        return UNAVAILABLE_EXIT
    return int(importlib.import_module(module).main(argv) or 0)
