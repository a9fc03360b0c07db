"""Build a typed `PrismConfig` from a preset (or YAML path) and dotted command-line overrides.

Every problem (an unknown key, a value of the wrong type, a bad enum value) stops here, before
any work, with a `ConfigError` naming the key and what is allowed.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
from pathlib import Path
from typing import Any, Iterable

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from orchestrator.config.redact import REDACTED, redact
from orchestrator.config.schema import PrismConfig

PRESET_DIR = Path(__file__).parent / "presets"

CHOICES: dict[str, tuple[str, ...]] = {
    "data.on_bad_clip": ("error", "skip"),
    "data.synth.audio_format": ("wav", "flac"),
    "sampler.schedule": ("fast_grpo", "flow_grpo", "mix_grpo"),
    "rewards.combine": ("sum_then_normalize", "normalize_then_sum"),
    "rewards.on_bad_grade": ("error", "drop"),
    "train.mode": ("sync", "async"),
    "train.algorithm": ("grpo", "nft"),
    "grpo.adv_std": ("batch", "group"),
    "grpo.optimizer": ("adamw", "sgd"),
    "grpo.null_control": ("none", "shuffle", "shuffle_in_group", "zero"),
    "grpo.micro_batches": ("rows", "draws"),
    "learner.backend": ("auto", "gloo", "nccl"),
    "learner.dtype": ("fp32", "bf16"),
    "rollout.dtype": ("fp32", "bf16", "auto"),
    "learner.placement_strategy": ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"),
    "policy.text_encoder.kind": ("builtin", "transformers"),
    "sweep.search": ("grid", "random"),
    "planner.backend": ("synth", "mllm"),
    "eval.split": ("train", "val", "test"),
    "train.val_split": ("train", "val", "test"),
    "eval.plans": ("dataset", "planner", "none", "random", "monolithic"),
}
"""Keys whose value must be one of a fixed set."""


class ConfigError(ValueError):
    """A configuration problem, with the key at fault in the message."""


def preset_names() -> list[str]:
    """Names of the bundled YAML presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _allowed_keys(node: Any, dotted: str) -> str:
    """'allowed under X: ...' for the deepest existing parent of a dotted key."""
    parts = dotted.split(".")[:-1]
    while True:
        parent = ".".join(parts)
        try:
            sub = OmegaConf.select(node, parent) if parent else node
        except OmegaConfBaseException:
            sub = None
        if isinstance(sub, DictConfig):
            return f"allowed under '{parent or '<root>'}': " + ", ".join(str(k) for k in sub.keys())
        if not parts:
            return ""
        parts.pop()


def _merge(base: DictConfig, other: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)
    except ConfigKeyError as e:
        key = getattr(e, "full_key", None) or str(e)
        raise ConfigError(f"{source}: unknown config key '{key}'; {_allowed_keys(base, key)}") from None
    except ValidationError as e:
        key = getattr(e, "full_key", "?")
        expected = ""
        try:
            expected = type(OmegaConf.select(base, key)).__name__
        except OmegaConfBaseException:
            pass
        raise ConfigError(
            f"{source}: config key '{key}' got a value of the wrong type"
            f"{' (expects ' + expected + ')' if expected else ''}: {e.msg.splitlines()[0]}"
        ) from None


EXTENDS_KEY = "extends"
"""Top-level key of a preset or YAML file naming the preset (or file) it changes: that one loads first."""


def _load_preset(name_or_path: str, chain: tuple[str, ...] = ()) -> DictConfig:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise ConfigError(
            f"config '{name_or_path}' is neither a preset ({', '.join(preset_names())}) nor a YAML file"
        )
    loaded = OmegaConf.load(path)
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"config file {path} must hold a mapping at the top")
    base = loaded.pop(EXTENDS_KEY, None)
    if base is None:
        return loaded
    if not isinstance(base, str) or base in (*chain, name_or_path):
        raise ConfigError(f"config file {path}: '{EXTENDS_KEY}: {base}' must name another preset or YAML file "
                          f"(and no cycle: {' -> '.join((*chain, name_or_path))})")
    return OmegaConf.merge(_load_preset(base, (*chain, name_or_path)), loaded)


def _check_choices(cfg: DictConfig) -> None:
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"config key '{key}' is {value!r}; allowed: {', '.join(allowed)}")
    if cfg.grpo.micro_batches == "draws" and cfg.train.algorithm != "nft":
        raise ConfigError("grpo.micro_batches=draws keeps DiffusionNFT's shared forward draws together; "
                          f"train.algorithm is {cfg.train.algorithm!r}: use grpo.micro_batches=rows")
    if cfg.nft.balance_groups and cfg.nft.teacher_channels:
        raise ConfigError("nft.balance_groups balances the single advantage; with nft.teacher_channels each channel's "
                          "r comes from routed teacher parts, which it does not balance: add nft.balance_groups=false")


def default_run_dir(command: str) -> str:
    """runs/<command>-<timestamp> under the current directory."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("runs", f"{command}-{stamp}")


def load_config(
    preset: str | None = "demo",
    overrides: Iterable[str] = (),
    command: str = "run",
) -> PrismConfig:
    """A typed config: defaults, then the preset or YAML file, then `key=value` overrides."""
    cfg: DictConfig = OmegaConf.structured(PrismConfig)
    if preset:
        cfg = _merge(cfg, _load_preset(preset), f"preset '{preset}'")
    overrides = list(overrides)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key = item.split("=", 1)[0]
        if "." in key and not isinstance(OmegaConf.select(cfg, key.rsplit(".", 1)[0]), DictConfig):
            raise ConfigError(f"command line: unknown config key '{key}'; {_allowed_keys(cfg, key)}")
    if overrides:
        cfg = _merge(cfg, OmegaConf.from_dotlist(overrides), "command line")
    _check_choices(cfg)
    if not cfg.run_dir:
        cfg.run_dir = default_run_dir(command)
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def to_dict(cfg: PrismConfig, secrets: bool = False) -> dict[str, Any]:
    """Plain nested dict of a config (for JSON, MLflow params, saved configs). Credentials
    (`orchestrator.config.redact`: data.s3.key, data.s3.secret, URL passwords, ...) read `<redacted>`
    unless secrets=True (an in-memory copy that is never written anywhere)."""
    data = dataclasses.asdict(cfg)
    return data if secrets else redact(data)


def carry_secrets(source: PrismConfig, target: PrismConfig) -> PrismConfig:
    """`target` (loaded from a redacted saved config) with each credential it holds as `<redacted>`
    taken back from `source`, the in-memory config it was saved from. Returns target."""
    for key, value in flatten(dataclasses.asdict(target)).items():
        if value == REDACTED:
            node_src, node_dst = source, target
            *parents, leaf = key.split(".")
            for part in parents:
                node_src = node_src[part] if isinstance(node_src, dict) else getattr(node_src, part)
                node_dst = node_dst[part] if isinstance(node_dst, dict) else getattr(node_dst, part)
            original = node_src[leaf] if isinstance(node_src, dict) else getattr(node_src, leaf)
            if isinstance(node_dst, dict):
                node_dst[leaf] = original
            else:
                setattr(node_dst, leaf, original)
    return target


def from_dict(data: dict[str, Any]) -> PrismConfig:
    """Inverse of `to_dict`, validated like a preset."""
    cfg = _merge(OmegaConf.structured(PrismConfig), OmegaConf.create(data), "saved config")
    _check_choices(cfg)
    return OmegaConf.to_object(cfg)  # type: ignore[return-value]


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted-key view of a nested dict (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
