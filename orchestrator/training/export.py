"""`prismrl export SOURCE OUT [--weights ema|current]`: trained PrismAudio weights as one flat
state_dict in the released `prismaudio.ckpt` layout, so the reference's `predict.py` loads them
unchanged (`.ckpt` via torch.save, or `.safetensors`).

SOURCE is one of
- a policy checkpoint directory (`<run_dir>/policy_ema` of `prismrl train`, policy.json +
  model.safetensors): its weights are written (`--weights` does not apply);
- a training checkpoint (`<run_dir>/checkpoints/ckpt-NNNNNNNN`): `--weights ema` (default) takes
  the learner's EMA, `--weights current` the optimizer's fp32 weights (assembled from every rank's
  ZeRO partitions when the checkpoint was written, `weights.safetensors`).
Names and order come from the model the checkpoint's config builds (on the meta device, so nothing
is allocated); a state that misses or adds a name is refused, naming it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import torch

from actors.learner_rank import CURRENT_WEIGHTS
from policies.checkpoint import CONFIG, WEIGHTS, config_from_dict
from policies.config import PolicyConfig
from policies.prismaudio.weights import export_weights, ordered_export



def _policy_config(cfg: PolicyConfig) -> PolicyConfig:
    if cfg.kind != "prismaudio":
        raise ValueError(f"export writes PrismAudio's layout; this checkpoint's policy.kind is '{cfg.kind}'")
    return dataclasses.replace(cfg, checkpoint=None,
                               prismaudio=dataclasses.replace(cfg.prismaudio, weights=None, vae_weights=None))


def _layout_keys(cfg: PolicyConfig) -> list[str]:
    from policies.prismaudio.policy import PrismAudioPolicy

    with torch.device("meta"):
        return list(PrismAudioPolicy(cfg).state_dict())


def read_source(source: str, weights: str = "ema") -> tuple[PolicyConfig, dict[str, torch.Tensor]]:
    """(policy config, state) of a policy directory or a training checkpoint (see the module doc)."""
    from safetensors.torch import load_file

    if os.path.isfile(os.path.join(source, CONFIG)):
        with open(os.path.join(source, CONFIG)) as f:
            cfg = config_from_dict(json.load(f))
        return _policy_config(cfg), load_file(os.path.join(source, WEIGHTS))
    controller = os.path.join(source, "controller.json")
    if not os.path.isfile(controller):
        raise FileNotFoundError(f"{source} is neither a policy checkpoint ({CONFIG}) nor a training "
                                f"checkpoint (controller.json)")
    with open(controller) as f:
        cfg = config_from_dict(json.load(f)["config"]["policy"])
    if weights == "ema":
        return _policy_config(cfg), load_file(os.path.join(source, "ema.safetensors"))
    if weights != "current":
        raise ValueError(f"--weights must be ema or current, got {weights!r}")
    current = os.path.join(source, CURRENT_WEIGHTS)
    if not os.path.isfile(current):
        raise FileNotFoundError(f"{source}: no {CURRENT_WEIGHTS} (a checkpoint written before it existed); "
                                f"export its EMA instead")
    return _policy_config(cfg), load_file(current)


def export_prismaudio(source: str, out: str, weights: str = "ema") -> str:
    """Write SOURCE's weights to OUT in the released layout; returns OUT."""
    cfg, state = read_source(source, weights)
    return export_weights(ordered_export(_layout_keys(cfg), state, source), out)


def main(argv: list[str]) -> int:
    """Entry point of `prismrl export`."""
    parser = argparse.ArgumentParser(prog="prismrl export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="policy checkpoint directory or training checkpoint ckpt-NNNNNNNN")
    parser.add_argument("out", help="file to write: NAME.ckpt (torch.save) or NAME.safetensors")
    parser.add_argument("--weights", choices=("ema", "current"), default="ema",
                        help="from a training checkpoint: the EMA (default) or the current weights")
    args = parser.parse_args(argv)
    try:
        path = export_prismaudio(args.source, args.out, args.weights)
    except (FileNotFoundError, ValueError) as e:
        print(f"prismrl export: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0
