"""`build_policy(cfg)`: the policy `policy.kind` names, with its checkpoint's weights when one is set."""
from __future__ import annotations

from policies.base import Policy
from policies.checkpoint import load_policy
from policies.config import PolicyConfig
from policies.registry import policy_class


def build_policy(cfg: PolicyConfig, load_checkpoint: bool = True) -> Policy:
    """A policy of `cfg.kind`: weights from `cfg.checkpoint` when set (and load_checkpoint), else random.

    The checkpoint's architecture must match cfg (a mismatch raises, naming the fields);
    run-time fields (duration, video fps, dropout, text encoder path) come from cfg.
    """
    cls = policy_class(cfg.kind)
    if cfg.checkpoint and load_checkpoint:
        return load_policy(cfg.checkpoint, expect=cfg)
    return cls(cfg)
