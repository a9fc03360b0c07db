"""Shared parsing of `[CONFIG] [key=value ...]` for every subcommand."""
from __future__ import annotations

from orchestrator.config.load import load_config
from orchestrator.config.schema import PrismConfig


def split_args(argv: list[str], default_preset: str = "demo") -> tuple[str, list[str]]:
    """(preset or YAML path, overrides) from a subcommand's arguments."""
    preset, overrides = default_preset, []
    for i, arg in enumerate(argv):
        if "=" in arg:
            overrides.append(arg)
        elif i == 0:
            preset = arg
        else:
            raise SystemExit(f"unexpected argument '{arg}': expected key=value")
    return preset, overrides


def config_from_argv(argv: list[str], command: str, default_preset: str = "demo") -> PrismConfig:
    """Typed config from `[CONFIG] [key=value ...]`; fails before any work on a bad key or value."""
    preset, overrides = split_args(argv, default_preset)
    return load_config(preset, overrides, command=command)


def wants_help(argv: list[str], doc: str | None) -> bool:
    """Print a subcommand's docstring for -h/--help."""
    if any(a in ("-h", "--help") for a in argv):
        print((doc or "").strip())
        return True
    return False
