"""Which weights RL trains (`policy.trainable`): all, the last K blocks, a `+`-joined set of parts:
LoRA adapters and named full-weight module sets (`lora+mlp+ada`: adapters on attention, the MLPs and
adaLN modulations at full weight), or every weight but named sets (`all-cond`: the conditioning
encoders frozen).

A group's gradient noise is summed over every trained parameter while the reward's signal may live
in few of them, so training fewer parameters can raise the gradient's signal-to-noise ratio.

LoRA goes through `peft.inject_adapter_in_model`: the policy keeps its class and methods, each
targeted `nn.Linear` becomes a peft layer holding the frozen `base_layer` and adapters `lora_A`,
`lora_B` (B starts at zero, so the adapted policy starts equal to the pretrained one). Its state
dict then names `<module>.base_layer.weight`, `<module>.lora_A.default.weight`, ...;
`merge_lora_state` turns it back into the plain policy's names with W = W0 + (alpha / r) B A, which
is what rollout workers, the EMA and policy checkpoints hold. `AdaptersDisabled` is the KL
reference of a LoRA policy: the same module with its adapters switched off, no second copy.
"""
from __future__ import annotations

import contextlib
import inspect
import re
from typing import Any, Iterator

import torch
from torch import nn

from policies.config import PolicyConfig

FULL_WEIGHT_SETS = {
    "heads": r"final\..*",
    "attn": r"blocks\.\d+\.(attn|cross)\..*",
    "mlp": r"blocks\.\d+\.mlp\..*",
    "ada": r"(blocks\.\d+|final)\.ada\..*",
    "cond": r"(text|video|sync_proj|pool_proj)\..*|video_segment",
    "inputs": r"(x_in|t_embed)\..*|blocks\.\d+\.norm_x\..*",
}
"""Named full-weight parts of `policy.trainable`: regular expression (full match) on the small DiT's
parameter names. `heads` is the output layer, `attn` every self- and cross-attention projection, `mlp`
every block's MLP, `ada` every adaLN modulation (the blocks' and the output layer's), `cond` the
conditioning encoders (the plan's text embedding, the video encoder and its segment token, and the
projections of the sync and pooled video features), which feed every block, and `inputs` the
latent's input projection, the time embedding and the blocks' input norms."""
KINDS = ("all", "last_blocks:K", "PART[+PART...] with PART in lora, " + ", ".join(FULL_WEIGHT_SETS),
         "all-SET[-SET...] with SET in " + ", ".join(FULL_WEIGHT_SETS))
"""Allowed forms of `policy.trainable`."""
ADAPTER = "default"
"""Name of the one LoRA adapter."""
HEAD_PREFIXES = ("final.",)
"""Parameter-name prefixes of the output layer, trained with the last K blocks by `last_blocks:K`."""


def parse_trainable(spec: str) -> tuple[str, int]:
    """('all', 0), ('last_blocks', K), ('parts', 0) or ('all_but', 0) from `policy.trainable`; a bad value
    raises naming it."""
    if spec == "all":
        return spec, 0
    if (spec or "").startswith("all-"):
        frozen = spec[len("all-"):].split("-")
        if all(p in FULL_WEIGHT_SETS for p in frozen) and len(set(frozen)) == len(frozen):
            return "all_but", 0
    m = re.fullmatch(r"last_blocks:(\d+)", spec or "")
    if m and int(m.group(1)) >= 1:
        return "last_blocks", int(m.group(1))
    parts = (spec or "").split("+")
    if spec and all(p == "lora" or p in FULL_WEIGHT_SETS for p in parts) and len(set(parts)) == len(parts):
        return "parts", 0
    raise ValueError(f"policy.trainable: {spec!r} is not one of {'; '.join(KINDS)} (K >= 1, each part once)")


def trainable_parts(spec: str) -> tuple[bool, tuple[str, ...]]:
    """(LoRA adapters or not, the full-weight set names) of a parts-form `policy.trainable`."""
    if parse_trainable(spec)[0] != "parts":
        raise ValueError(f"policy.trainable: {spec!r} is not a '+'-joined set of parts")
    parts = spec.split("+")
    return "lora" in parts, tuple(p for p in parts if p != "lora")


def frozen_sets(spec: str) -> tuple[str, ...]:
    """The full-weight set names an `all-SET[-SET...]` `policy.trainable` freezes."""
    if parse_trainable(spec)[0] != "all_but":
        raise ValueError(f"policy.trainable: {spec!r} is not of the form all-SET[-SET...]")
    return tuple(spec[len("all-"):].split("-"))


def full_weight_names(names: list[str], sets: tuple[str, ...]) -> set[str]:
    """Parameter names that the full-weight sets (`FULL_WEIGHT_SETS` keys) train."""
    patterns = [FULL_WEIGHT_SETS[s] for s in sets]
    return {n for n in names if any(re.fullmatch(p, n) for p in patterns)}


def trained_by_prefix(names: list[str], kind: str, k: int, num_blocks: int) -> set[str]:
    """Which parameter names stay trainable for `last_blocks:K` (plain name matching)."""
    prefixes = list(HEAD_PREFIXES)
    if kind == "last_blocks":
        if k > num_blocks:
            raise ValueError(f"policy.trainable=last_blocks:{k}: the policy has only {num_blocks} blocks")
        prefixes += [f"blocks.{i}." for i in range(num_blocks - k, num_blocks)]
    return {n for n in names if n.startswith(tuple(prefixes))}


def apply_trainable(model: nn.Module, cfg: PolicyConfig) -> nn.Module:
    """Freeze what `cfg.trainable` leaves out (and inject LoRA adapters for a `lora` part); returns model (in place)."""
    kind, k = parse_trainable(cfg.trainable)
    if kind == "all":
        return model
    names = [n for n, _ in model.named_parameters()]
    if kind == "all_but":
        sets = frozen_sets(cfg.trainable)
        missing = [s for s in sets if not full_weight_names(names, (s,))]
        if missing:
            raise ValueError(f"policy.trainable={cfg.trainable}: set(s) {missing} match no parameter of the policy")
        frozen = full_weight_names(names, sets)
        for name, p in model.named_parameters():
            p.requires_grad_(name not in frozen)
        return model
    if kind == "last_blocks":
        keep = trained_by_prefix(names, kind, k, len(getattr(model, "blocks", [])))
        for name, p in model.named_parameters():
            p.requires_grad_(name in keep)
        return model
    lora, sets = trainable_parts(cfg.trainable)
    full = full_weight_names(names, sets)
    missing = [s for s in sets if not full_weight_names(names, (s,))]
    if missing:
        raise ValueError(f"policy.trainable={cfg.trainable}: part(s) {missing} match no parameter of the policy")
    if lora:
        inject_lora(model, cfg)
        adapted = set(lora_layers(model))
        overlap = sorted(m for m in adapted if any(n.startswith(m + ".") for n in full))
        if overlap:
            raise ValueError(f"policy.trainable={cfg.trainable}: full-weight parts also hold the adapted modules "
                             f"{overlap[:3]}; adapt them or train them at full weight, not both")
    for name, p in model.named_parameters():
        p.requires_grad_(".lora_" in name or name in full)
    return model


def inject_lora(model: nn.Module, cfg: PolicyConfig) -> None:
    """peft LoRA adapters (rank `cfg.lora_rank`, B = 0) on every nn.Linear that `cfg.lora_targets` names."""
    from peft import LoraConfig, inject_adapter_in_model

    if cfg.lora_rank < 1:
        raise ValueError(f"policy.lora_rank must be >= 1, got {cfg.lora_rank}")
    targets = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and re.fullmatch(cfg.lora_targets, n)]
    if not targets:
        raise ValueError(f"policy.lora_targets {cfg.lora_targets!r} matches no nn.Linear module of the policy")
    model.requires_grad_(False)
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, bias="none",
                      target_modules=targets)
    inject_adapter_in_model(lora, model, adapter_name=ADAPTER)


def optimizer_groups(model: nn.Module, lr: float, full_weight_lr_scale: float) -> list[dict]:
    """The trainable parameters as optimizer parameter groups: one group at lr, or, when LoRA adapters
    train beside full weights, the adapters at lr and the full weights at lr * full_weight_lr_scale."""
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    adapters = [p for n, p in trained if ".lora_" in n]
    full = [p for n, p in trained if ".lora_" not in n]
    if not adapters or not full or full_weight_lr_scale == 1.0:
        return [{"params": [p for _, p in trained], "lr": lr}]
    if full_weight_lr_scale <= 0:
        raise ValueError(f"grpo.full_weight_lr_scale must be > 0, got {full_weight_lr_scale}")
    return [{"params": adapters, "lr": lr}, {"params": full, "lr": lr * full_weight_lr_scale}]


def build_trainable_policy(cfg: PolicyConfig) -> nn.Module:
    """`policies.build.build_policy(cfg)` with `cfg.trainable` applied (the learner's model factory)."""
    from policies.build import build_policy

    return apply_trainable(build_policy(cfg), cfg)


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Module name -> peft LoRA layer, for every adapted module of model (empty when none)."""
    out = {}
    for name, m in model.named_modules():
        if hasattr(m, "base_layer") and hasattr(m, "lora_A") and ADAPTER in getattr(m, "lora_A", {}):
            out[name] = m
    return out


def lora_scalings(model: nn.Module) -> dict[str, float]:
    """Module name -> alpha / r of its adapter."""
    return {name: float(m.scaling[ADAPTER]) for name, m in lora_layers(model).items()}


def merge_lora_weight(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """W0 + scaling * B @ A (W0 [out, in], A [r, in], B [out, r])."""
    return w + scaling * (b @ a)


def unmerge_lora_weight(w: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scaling: float) -> torch.Tensor:
    """The inverse of `merge_lora_weight`: W - scaling * B @ A."""
    return w - scaling * (b @ a)


def merge_lora_state(state: dict[str, torch.Tensor], scalings: dict[str, float]) -> dict[str, torch.Tensor]:
    """A LoRA-injected state dict in the plain model's names, adapters merged into their base weights.

    scalings: module name -> alpha / r (`lora_scalings`). Keys of modules without adapters pass through.
    A module named in scalings whose base weight or adapters are missing raises, naming the key.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if ".lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value
    for module, scaling in scalings.items():
        keys = [f"{module}.base_layer.weight", f"{module}.lora_A.{ADAPTER}.weight", f"{module}.lora_B.{ADAPTER}.weight"]
        missing = [k for k in keys if k not in state]
        if missing:
            raise KeyError(f"merge_lora_state: adapted module '{module}' lacks {missing}")
        w, a, b = (state[k] for k in keys)
        out[f"{module}.weight"] = merge_lora_weight(w.float(), a.float(), b.float(), scaling).to(w.dtype)
    return out


def plain_state_dict(model: nn.Module, state: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The state dict (model's own, or `state` of it) in the plain policy's names: adapters merged."""
    state = model.state_dict() if state is None else state
    scalings = lora_scalings(model)
    return merge_lora_state(state, scalings) if scalings else state


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[None]:
    """Inside the block every LoRA layer of model computes its base layer alone."""
    layers = list(lora_layers(model).values())
    before = [m.disable_adapters for m in layers]
    try:
        for m in layers:
            m.enable_adapters(False)
        yield
    finally:
        for m, was_disabled in zip(layers, before):
            m.enable_adapters(not was_disabled)


class AdaptersDisabled:
    """The KL reference of a LoRA policy: every method call runs on the same module with its adapters
    disabled (the frozen base weights are the pretrained policy). Not an nn.Module, so nothing trains,
    partitions or saves it; gradients never flow through it (the loss calls it under no_grad)."""

    def __init__(self, model: nn.Module):
        self._model = model

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._model, name)
        if not inspect.ismethod(attr):  # attributes and sub-modules as they are
            return attr

        def call(*args, **kwargs):
            with adapters_disabled(self._model):
                return attr(*args, **kwargs)

        return call

    def __call__(self, *args, **kwargs):
        with adapters_disabled(self._model):
            return self._model(*args, **kwargs)


def reference_of(model: nn.Module) -> AdaptersDisabled | None:
    """The adapters-disabled view when model trains LoRA adapters alone, else None (the caller copies the
    model: with full weights training beside the adapters, disabling the adapters is no longer the reference)."""
    full_trained = any(p.requires_grad and ".lora_" not in n for n, p in model.named_parameters())
    return AdaptersDisabled(model) if lora_layers(model) and not full_trained else None
