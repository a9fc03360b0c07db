"""Shared start of every subcommand: parsing `[CONFIG] [key=value ...]`, `--help`, logging, and the
credentials of the config masked in every log line."""
from __future__ import annotations

import logging
from typing import Iterable, Optional

from orchestrator.config.load import load_config, to_dict
from orchestrator.config.redact import mask_secrets_in_logs
from orchestrator.config.schema import PrismConfig

LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
"""Log line format of every `prismrl` command."""


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


def split_own(argv: list[str], keys: Iterable[str]) -> tuple[list[str], dict[str, str]]:
    """(argv without them, {key: value}) for a command's own `key=value` arguments (not config keys)."""
    keys = set(keys)
    own = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in argv if "=" in a and a.split("=", 1)[0] in keys}
    return [a for a in argv if not ("=" in a and a.split("=", 1)[0] in own)], own


def command_config(argv: list[str], command: str, doc: Optional[str], default_preset: str = "demo",
                   level: int = logging.INFO) -> Optional[PrismConfig]:
    """The start of a subcommand taking `[CONFIG] [key=value ...]`: None after printing `doc` for
    -h/--help; else logging on stderr at `level`, the typed config (a bad key or value fails before
    any work), and the config's credentials masked in every log line from here on."""
    if wants_help(argv, doc):
        return None
    logging.basicConfig(level=level, format=LOG_FORMAT)
    cfg = config_from_argv(argv, command, default_preset)
    mask_secrets_in_logs(to_dict(cfg, secrets=True))
    return cfg
