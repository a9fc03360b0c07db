"""The `prismrl` command: one entry point, a subcommand per job.

Every subcommand takes an optional CONFIG (a preset name or a YAML path) and dotted overrides
(`key=value`), including `run_dir=PATH` for where it writes (default runs/<command>-<timestamp>).
"""
from __future__ import annotations

import importlib
import os
import sys

# module:function taking argv (the arguments after the subcommand) and returning an exit code.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("orchestrator.data.cli:main", "SynthScenes generation and manifest tools (synth, summary, annotate, features)"),
    "pretrain": ("orchestrator.training.pretrain:main", "supervised flow-matching pretraining of the policy"),
    "train-planner": ("orchestrator.training.planner_training:main", "train the synth CoT planner (video -> four-module plan)"),
    "train": ("orchestrator.training.train:main", "distributed Fast-GRPO training on Ray"),
    "demo": ("orchestrator.cli.demo:main", "the laptop job: data, pretrain, Fast-GRPO, summary"),
    "sweep": ("orchestrator.sweeps.sweep:main", "Ray Tune sweep over the four reward weights"),
    "eval": ("orchestrator.evaluation.evaluate:main", "the paper's metrics for a checkpoint on a split"),
    "generate": ("orchestrator.evaluation.generate:main", "plan and generate stereo audio for videos"),
    "export": ("orchestrator.training.export:main", "PrismAudio weights (EMA or current) in the released prismaudio.ckpt layout"),
    "bench": ("orchestrator.cli.bench:main", "benchmarks (efficiency, throughput, pools, gpu, gradsnr, ablation)"),
    "size-pools": ("orchestrator.pool_sizing.command:main", "reward-pool sizes from measured throughput"),
}

# Old command names kept for one release: old -> new. Each use prints the new name.
RENAMED: dict[str, str] = {
    "plan": "size-pools",
}

USAGE = """usage: prismrl COMMAND [CONFIG] [key=value ...]

PrismRL: distributed Fast-GRPO on Ray for video-to-audio generators.

commands:
{commands}

CONFIG is a preset ({presets}) or a YAML file; key=value overrides any config field,
e.g. `prismrl train demo rewards.weights.timing=0.6 run_dir=runs/exp1`.
`prismrl COMMAND --help` describes one command.
"""


def _usage() -> str:
    from orchestrator.config.load import preset_names

    width = max(len(c) for c in COMMANDS)
    lines = "\n".join(f"  {name.ljust(width)}  {desc}" for name, (_, desc) in COMMANDS.items())
    return USAGE.format(commands=lines, presets=", ".join(preset_names()))


def _resolve(target: str):
    module_name, func = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name:
            return None
        raise
    return getattr(module, func)


def main(argv: list[str] | None = None) -> int:
    """Dispatch `prismrl COMMAND ...`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from orchestrator.runtime.ray_setup import loopback_for_local_ray

    loopback_for_local_ray()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name in RENAMED:
        print(f"prismrl {name}: renamed to 'prismrl {RENAMED[name]}'; the old name goes in the next release",
              file=sys.stderr)
        name = RENAMED[name]
    if name not in COMMANDS:
        print(f"prismrl: unknown command '{name}'\n\n{_usage()}", file=sys.stderr)
        return 2
    func = _resolve(COMMANDS[name][0])
    if func is None:
        print(f"prismrl {name}: not available in this version", file=sys.stderr)
        return 2
    from orchestrator.config.load import ConfigError

    try:
        return int(func(rest) or 0)
    except ConfigError as e:
        print(f"prismrl {name}: config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
