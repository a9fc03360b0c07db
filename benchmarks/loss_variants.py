"""Loss-side settings that gradsnr can measure on the same rollouts and grades (`bench.variants`).

A variant is a `;`-joined list of `key=value` overrides, for example `nft.adv_scale=0.5` or
`rewards.combine=normalize_then_sum;grpo.adv_std=group`. Only settings that act after the samples are
graded qualify: how grades become advantages and how advantages become a gradient. Anything that
changes what is sampled (the sampler, the policy, the group size, the seed) would make the comparison
unpaired, so it is refused by name.
"""
from __future__ import annotations

from omegaconf import OmegaConf

from orchestrator.config.load import ConfigError
from orchestrator.config.schema import PrismConfig

LOSS_SIDE_KEYS = ("nft.", "rewards.combine", "grpo.adv_std", "grpo.adv_eps", "grpo.adv_clip")
"""Config keys (or prefixes ending in '.') a variant may set: they change neither the rollouts nor the grades."""


def variant_overrides(spec: str) -> list[str]:
    """The `key=value` items of one variant spec; raises ConfigError naming the item that is not
    `key=value` or whose key would change the rollouts."""
    items = [part.strip() for part in spec.split(";") if part.strip()]
    if not items:
        raise ConfigError(f"bench.variants: empty variant {spec!r}")
    for item in items:
        if "=" not in item:
            raise ConfigError(f"bench.variants: {item!r} (variant {spec!r}) is not of the form key=value")
        key = item.split("=", 1)[0].strip()
        if not any(key.startswith(k) if k.endswith(".") else key == k for k in LOSS_SIDE_KEYS):
            raise ConfigError(f"bench.variants: '{key}' (variant {spec!r}) would change the rollouts or grades; "
                              f"a variant may set only {', '.join(k + '*' if k.endswith('.') else k for k in LOSS_SIDE_KEYS)}")
    return items


def variant_config(cfg: PrismConfig, spec: str) -> PrismConfig:
    """`cfg` with the variant's overrides applied and validated like a command line (unknown keys and
    bad values raise ConfigError naming the key)."""
    items = variant_overrides(spec)
    base = OmegaConf.structured(cfg)
    for item in items:
        key = item.split("=", 1)[0].strip()
        if OmegaConf.select(base, key, default="__missing__") == "__missing__":
            raise ConfigError(f"bench.variants: unknown config key '{key}' (variant {spec!r})")
    try:
        merged = OmegaConf.merge(base, OmegaConf.from_dotlist(items))
    except Exception as e:  # omegaconf's validation errors name the key
        raise ConfigError(f"bench.variants: variant {spec!r}: {e}") from e
    return OmegaConf.to_object(merged)  # type: ignore[return-value]
