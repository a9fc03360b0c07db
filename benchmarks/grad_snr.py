"""Gradient signal-to-noise benchmark: how many GRPO groups a policy's gradient needs before it points somewhere.

For a policy checkpoint (policy.checkpoint) and the run's sampler, teachers and advantage rule, at
each SDE window start:
1. `groups` groups of grpo.group_size members are rolled out on train clips (group k on clip
   k mod `clips`, window steps [start, start + sampler.window), shared prefix as in training) and
   graded in-process by the four configured teachers;
2. advantages are taken as training takes them (rewards.combine, grpo.adv_std over all the groups
   of the measurement) for the total reward, and for each teacher alone when `teachers_alone`;
3. each group's gradient G_k = sum_i A_i * grad(sum over window steps of log p(x_next | x)) is
   computed at the checkpoint's weights (what the learner's first micro step follows: ratio 1);
   with train.algorithm=nft it is minus the gradient of the group's DiffusionNFT objective over its
   members and nft.draws shared forward draws (times over nft.time_range, on nft.channels), at
   v_old = v (orchestrator/nft/loss.py);
4. orchestrator/grpo/snr.py turns their Gram matrix into the SNR of one group's gradient, its
   spread under no signal, the groups needed for SNR 1, and the expected cosine between the
   gradient of a whole run (grpo.steps x grpo.prompts_per_step groups) and the true one;
5. the step check (bench.step_check): for a reward whose signal was detected, the weights take one
   step along the measured mean gradient (bench.step_sizes, as fractions of the weights' norm) and
   that reward and the total are graded on `groups` fresh groups before and after, with the same
   noise: a measured signal that is real raises its reward on samples the gradient never saw.

Memory: groups x trainable parameters x 4 bytes per reward measured (at the same time).

    prismrl bench gradsnr demo bench.groups=48 bench.window_starts=[0,1,2,3]
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from common.types import TEACHERS
from orchestrator.config.schema import PrismConfig
from orchestrator.grpo.advantages import group_advantages
from orchestrator.grpo.snr import gradient_snr_from_gram, snr_difference_se

TOTAL = "total"
"""Name of the configured total reward in the report (the teachers keep their own names)."""
FRESH_OFFSET = 1_000_000
"""Added to the window start in the noise seeds of the step check's fresh groups."""


@dataclass
class GradSNROptions:
    """Options of `prismrl bench gradsnr` (set as bench.<field>=value)."""

    groups: int = 48
    """Groups rolled out per window start (K); the SNR estimate's own spread falls as 1/K."""
    window_starts: list[int] = field(default_factory=lambda: [0, 2])
    """SDE window starts measured (step indices of the sampler schedule)."""
    clips: int = 16
    """Train clips the groups cycle through."""
    teachers_alone: bool = True
    """Also measure each teacher's reward on its own (one more gradient per group and teacher)."""
    null_draws: int = 200
    """Sign flips drawn for the no-signal spread of the estimate."""
    torch_threads: int = 0
    """torch intra-op threads; 0 = every core."""
    step_check: str = "detected"
    """Which rewards get the step check (`detected`: those whose signal was detected, `all`, `none`):
    the weights move along the measured mean gradient and that reward and the total are measured
    again on fresh groups, before and after, with the same noise."""
    step_sizes: list[float] = field(default_factory=lambda: [3e-4])
    """Step lengths of the step check, as fractions of the weights' norm."""
    trainables: list[str] = field(default_factory=list)
    """Further `policy.trainable` choices measured on the SAME rollouts and grades as policy.trainable
    (each gets its own group gradients and SNR rows, a paired comparison): LoRA adapters start at
    B = 0 and freezing changes no output, so the samples are what each choice would train on."""
    variants: list[str] = field(default_factory=list)
    """Loss-side settings measured on the SAME rollouts and grades, each a `;`-joined list of overrides
    of how grades become advantages and advantages a gradient (benchmarks/loss_variants.py: nft.*,
    rewards.combine, grpo.adv_std, grpo.adv_eps, grpo.adv_clip), e.g. `nft.adv_scale=0.5`. Each gets
    its own group gradients and SNR rows, paired with the main settings' like `trainables`."""


def _rollouts(policy, clips, cfg: PrismConfig, sde_steps: list[int], groups: int, start_seed: int,
              progress) -> list[Any]:
    from orchestrator.training.roles import rollout_config
    from orchestrator.training.trainer import group_seed
    from policies.precision import resolve_sampling_dtype
    from policies.rollout import rollout_group

    network_dtype = resolve_sampling_dtype(rollout_config(cfg).dtype, next(policy.parameters()).device)
    out = []
    for k in range(groups):
        gen = torch.Generator().manual_seed(group_seed(cfg.seed, start_seed, k))
        with torch.no_grad():
            prepared = policy.prepare([clips[k % len(clips)]])
            out.append(rollout_group(policy, prepared, cfg.grpo.group_size, cfg.sampler, sde_steps, gen,
                                     cfg.sampler.guidance_scale, keep_means=False, network_dtype=network_dtype))
        progress.update(1)
    return out


def _grades(teachers: dict, results: list[Any], clips, sample_rate: int) -> dict[str, np.ndarray]:
    from rewards.base import backend_reward_range
    from rewards.validate import check_grades

    g = len(results[0].waveforms)
    waves = [w for r in results for w in r.waveforms]
    flat_clips = [clips[k % len(clips)] for k in range(len(results)) for _ in range(g)]
    per_teacher = {}
    for t, teacher in teachers.items():
        rewards = np.array([x.reward for x in teacher.grade(waves, sample_rate, flat_clips)], dtype=np.float64)
        ids = [f"{c.clip_id}#{i % g}" for i, c in enumerate(flat_clips)]
        check_grades(t, teacher.backend, ids, rewards, backend_reward_range(t, teacher.backend), "error")
        per_teacher[t] = rewards.reshape(len(results), g)
    return per_teacher


def _group_gradients(policy, results: list[Any], advantages: dict[str, np.ndarray], cfg: PrismConfig,
                     progress) -> dict[str, np.ndarray]:
    from policies.rollout import expand_conditions, transition_log_prob

    params = [p for p in policy.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    grads = {name: np.zeros((len(results), n_params), dtype=np.float32) for name in advantages}
    for k, res in enumerate(results):
        rec = res.records
        g = rec.latents.shape[0]
        cond = expand_conditions(policy.encode_conditions(res.prepared), g)
        log_prob, _, _ = transition_log_prob(policy, cond, rec.latents, rec.next_latents, rec.sigmas,
                                             rec.sigmas_next, cfg.sampler.guidance_scale, cfg.sampler.noise_level,
                                             cfg.sampler.noise_channels)
        score = log_prob.sum(dim=1)  # [G]: log-density of the member's whole window
        names = list(advantages)
        for j, name in enumerate(names):
            adv = torch.as_tensor(advantages[name][k], dtype=score.dtype)
            parts = torch.autograd.grad((adv * score).sum(), params, retain_graph=j < len(names) - 1,
                                        allow_unused=True)
            grads[name][k] = torch.cat([(torch.zeros_like(p) if d is None else d).reshape(-1)
                                        for p, d in zip(params, parts)]).numpy()
        progress.update(1)
    return grads


def _nft_group_gradients(policy, results: list[Any], advantages: dict[str, np.ndarray], cfg: PrismConfig,
                         start_seed: int, progress) -> dict[str, np.ndarray]:
    """DiffusionNFT's group gradients (train.algorithm=nft): G_k = -grad of the group's summed NFT
    objective over its members and nft.draws shared forward draws, at v_old = v (the learner's first
    micro step), for each reward's advantages; the direction that raises the reward. With
    nft.teacher_channels each reward's advantages are teacher parts [K, G, T], routed to their channels."""
    from orchestrator.nft.loss import nft_objective
    from orchestrator.nft.optimality import optimality, routed_optimality
    from orchestrator.nft.routing import teacher_routes
    from orchestrator.training.trainer import group_seed
    from policies.forward_draws import forward_draws, noised
    from policies.noise_subspace import policy_noise_mask
    from policies.rollout import expand_conditions

    params = [p for p in policy.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    grads = {name: np.zeros((len(results), n_params), dtype=np.float32) for name in advantages}
    mask = policy_noise_mask(policy, cfg.nft.channels, key="nft.channels")
    routes = teacher_routes(policy, cfg.nft.channels, cfg.nft.teacher_channels, TEACHERS)
    for k, res in enumerate(results):
        x0 = res.latents_final
        g, j, shape = x0.shape[0], cfg.nft.draws, tuple(x0.shape[1:])
        cond = expand_conditions(policy.encode_conditions(res.prepared), g)
        draws = forward_draws(policy, cond, x0, j, torch.Generator().manual_seed(group_seed(cfg.seed, start_seed, k, 7)),
                              cfg.nft.time_range)
        rows_cond = expand_conditions(policy.encode_conditions(res.prepared), g * j)
        clean = x0.repeat_interleave(j, dim=0)
        noise = draws.noise.repeat(g, *([1] * len(shape)))
        times = draws.times.repeat(g)
        v = policy.velocity(noised(clean, noise, times), times, rows_cond)
        old = draws.old_velocity.reshape(g * j, *shape)
        names = list(advantages)
        for i, name in enumerate(names):
            adv = torch.as_tensor(advantages[name][k], dtype=torch.float32).repeat_interleave(j, dim=0)
            r = optimality(adv, cfg.nft.adv_scale) if routes is None else routed_optimality(adv, routes, cfg.nft.adv_scale)
            objective = nft_objective(v, old, noise - clean, r, cfg.nft.beta, mask).sum()
            parts = torch.autograd.grad(-objective, params, retain_graph=i < len(names) - 1, allow_unused=True)
            grads[name][k] = torch.cat([(torch.zeros_like(p) if d is None else d).reshape(-1)
                                        for p, d in zip(params, parts)]).numpy()
        progress.update(1)
    return grads


def routed_advantages(per_teacher: dict[str, np.ndarray], advantages: dict[str, np.ndarray], cfg: PrismConfig
                      ) -> dict[str, np.ndarray]:
    """Advantages as nft.teacher_channels routes them, [K, G, T] per reward: the total's teacher parts
    (orchestrator/grpo/teacher_parts.py, as training splits it), and each teacher alone in its own column."""
    from orchestrator.grpo.teacher_parts import teacher_advantage_parts
    from orchestrator.training.reward_phase import weights_of

    _, parts = teacher_advantage_parts(per_teacher, weights_of(cfg), TEACHERS, cfg.rewards.combine, cfg.grpo.adv_std,
                                       cfg.grpo.adv_eps, cfg.grpo.adv_clip)
    out = {TOTAL: parts}
    for i, t in enumerate(TEACHERS):
        if t in advantages:
            alone = np.zeros(parts.shape)
            alone[..., i] = advantages[t]
            out[t] = alone
    return out


def _advantages(rewards: dict[str, np.ndarray], per_teacher: dict[str, np.ndarray], cfg: PrismConfig
                ) -> dict[str, np.ndarray]:
    """Each reward's advantages as training takes them (grpo.adv_*; routed to teacher parts under
    nft.teacher_channels; balanced under nft.balance_groups)."""
    advantages = {name: group_advantages(r, cfg.grpo.adv_std, cfg.grpo.adv_eps, cfg.grpo.adv_clip)
                  for name, r in rewards.items()}
    if cfg.train.algorithm == "nft" and cfg.nft.teacher_channels:  # routed: each reward as teacher parts
        advantages = routed_advantages(per_teacher, advantages, cfg)
    elif cfg.train.algorithm == "nft" and cfg.nft.balance_groups:  # each group's 2r - 1 sums to 0
        from orchestrator.nft.optimality import balanced_advantages
        advantages = {name: balanced_advantages(a, cfg.nft.adv_scale) for name, a in advantages.items()}
    return advantages


def _gradients(policy, results: list[Any], advantages: dict[str, np.ndarray], cfg: PrismConfig, start: int,
               progress) -> dict[str, np.ndarray]:
    """Group gradients of the configured algorithm (DiffusionNFT or Fast-GRPO)."""
    if cfg.train.algorithm == "nft":
        return _nft_group_gradients(policy, results, advantages, cfg, start, progress)
    return _group_gradients(policy, results, advantages, cfg, progress)


@contextlib.contextmanager
def stepped_along(policy: torch.nn.Module, direction: np.ndarray, size: float):
    """Inside the block the trainable weights are theta + size * |theta| * direction / |direction|;
    afterwards they are theta again, bit for bit."""
    params = [p for p in policy.parameters() if p.requires_grad]
    saved = [p.detach().clone() for p in params]
    norm_theta = float(torch.sqrt(sum((p.double() ** 2).sum() for p in saved)))
    unit = np.asarray(direction, dtype=np.float64)
    unit = unit / (np.linalg.norm(unit) or 1.0)
    try:
        with torch.no_grad():
            off = 0
            for p in params:
                chunk = torch.from_numpy(unit[off: off + p.numel()]).reshape(p.shape).to(p.dtype)
                p.add_(chunk * (size * norm_theta))
                off += p.numel()
        yield
    finally:
        with torch.no_grad():
            for p, old in zip(params, saved):
                p.copy_(old)


def _paired(after: np.ndarray, before: np.ndarray) -> tuple[float, float]:
    d = (after - before).mean(axis=1)  # per group: same clip, same noise
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(d.size))


def _gram(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) @ x.T.astype(np.float64)


def run(cfg: PrismConfig, opts: GradSNROptions | None = None) -> dict[str, Any]:
    """SNR of the GRPO gradient per window start and reward (see the module docstring)."""
    from tqdm import tqdm

    from benchmarks.loss_variants import variant_config
    from benchmarks.sequential import load_train_clips
    from orchestrator.training.reward_phase import weights_of
    from policies.build import build_policy
    from policies.trainable import apply_trainable
    from rewards.base import build_teacher
    from rewards.combine import combine_grades

    opts = opts or GradSNROptions()
    if opts.groups < 2:
        raise ValueError(f"bench.groups must be >= 2, got {opts.groups}")
    if cfg.grpo.group_size < 2:
        raise ValueError(f"grpo.group_size must be >= 2 for group-relative advantages, got {cfg.grpo.group_size}")
    n, w = cfg.sampler.num_steps, cfg.sampler.window
    bad = [s for s in opts.window_starts if not 0 <= s <= n - w]
    if bad or not opts.window_starts:
        raise ValueError(f"bench.window_starts {list(opts.window_starts)}: each must be in [0, sampler.num_steps - "
                         f"sampler.window] = [0, {n - w}]")
    if opts.step_check not in ("detected", "all", "none"):
        raise ValueError(f"bench.step_check must be detected, all or none, got {opts.step_check!r}")
    if not cfg.policy.checkpoint:
        raise ValueError("policy.checkpoint: the gradient SNR is measured at a trained policy's weights; none set")
    torch.set_num_threads(opts.torch_threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    clips = list(load_train_clips(cfg).values())[: max(1, opts.clips)]
    base = build_policy(cfg.policy).eval()
    policy = apply_trainable(copy.deepcopy(base) if opts.trainables else base, cfg.policy).eval()
    variant_cfgs = {spec: variant_config(cfg, spec) for spec in opts.variants}  # bad specs fail before any rollout
    teachers = {t: build_teacher(t, getattr(cfg.rewards, t).backend, dict(getattr(cfg.rewards, t).options))
                for t in TEACHERS}
    weights = weights_of(cfg)
    budget = cfg.grpo.steps * cfg.grpo.prompts_per_step
    out: dict[str, Any] = {
        "checkpoint": cfg.policy.checkpoint,
        "algorithm": cfg.train.algorithm, "trainable": cfg.policy.trainable, "noise_channels": cfg.sampler.noise_channels,
        "guidance_scale": cfg.sampler.guidance_scale,
        **({"nft": {"draws": cfg.nft.draws, "channels": cfg.nft.channels, "time_range": list(cfg.nft.time_range),
                    "balance_groups": cfg.nft.balance_groups,
                    **({"teacher_channels": dict(cfg.nft.teacher_channels)} if cfg.nft.teacher_channels else {})}}
           if cfg.train.algorithm == "nft" else {}),
        "trainable_params": sum(p.numel() for p in policy.parameters() if p.requires_grad),
        "group_size": cfg.grpo.group_size, "groups": opts.groups, "clips": len(clips),
        "window": w, "num_steps": n, "noise_level": cfg.sampler.noise_level, "weights": weights,
        "combine": cfg.rewards.combine, "adv_std": cfg.grpo.adv_std, "run_groups": budget, "starts": {},
    }
    progress = tqdm(total=2 * opts.groups * len(opts.window_starts), desc="gradsnr", unit="group",
                    disable=not cfg.tracking.progress)
    for start in opts.window_starts:
        t0 = time.perf_counter()
        sde = list(range(start, start + w))
        results = _rollouts(policy, clips, cfg, sde, opts.groups, start, progress)
        per_teacher = _grades(teachers, results, clips, policy.sample_rate)
        rewards = {TOTAL: combine_grades(per_teacher, weights, cfg.rewards.combine)}
        if opts.teachers_alone:
            rewards.update(per_teacher)
        advantages = _advantages(rewards, per_teacher, cfg)
        grads = _gradients(policy, results, advantages, cfg, start, progress)

        def snr_rows(gradients: dict[str, np.ndarray], base_grams: dict[str, np.ndarray] | None = None,
                     graded_rewards: dict[str, np.ndarray] | None = None
                     ) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
            rows, grams = {}, {}
            for name, r in (rewards if graded_rewards is None else graded_rewards).items():
                grams[name] = _gram(gradients[name])
                snr = gradient_snr_from_gram(grams[name], opts.null_draws, seed=cfg.seed)
                rows[name] = {**snr.to_dict(), "within_group_std": float(r.std(axis=1).mean()),
                              "between_group_std": float(r.mean(axis=1).std()), "run_cosine": snr.cosine_at(budget)}
                if base_grams is not None:  # paired against policy.trainable on the same groups
                    diff, se = snr_difference_se(grams[name], base_grams[name])
                    rows[name].update(snr_minus_base=diff, snr_minus_base_se=se)
            return rows, grams

        rows, base_grams = snr_rows(grads)
        by_trainable = {}
        for spec in opts.trainables:
            variant = apply_trainable(copy.deepcopy(base), dataclasses.replace(cfg.policy, trainable=spec)).eval()
            progress.total += opts.groups
            variant_grads = _gradients(variant, results, advantages, cfg, start, progress)
            by_trainable[spec] = {"trainable_params": sum(p.numel() for p in variant.parameters() if p.requires_grad),
                                  "rewards": snr_rows(variant_grads, base_grams)[0]}
            del variant_grads, variant
        by_variant = {}
        for spec, vcfg in variant_cfgs.items():
            progress.total += opts.groups
            v_rewards = {TOTAL: combine_grades(per_teacher, weights, vcfg.rewards.combine),
                         **(per_teacher if opts.teachers_alone else {})}
            variant_grads = _gradients(policy, results, _advantages(v_rewards, per_teacher, vcfg), vcfg, start, progress)
            by_variant[spec] = {"rewards": snr_rows(variant_grads, base_grams, v_rewards)[0]}
            del variant_grads
        checked = [name for name, row in rows.items()
                   if opts.step_check == "all" or (opts.step_check == "detected" and row["detected"])]
        if checked and opts.step_sizes:
            def graded() -> dict[str, np.ndarray]:
                fresh = _rollouts(policy, clips, cfg, sde, opts.groups, FRESH_OFFSET + start, progress)
                g = _grades(teachers, fresh, clips, policy.sample_rate)
                return {**g, TOTAL: combine_grades(g, weights)}  # the raw weighted sum, as validation reports
            progress.total += opts.groups * (1 + len(checked) * len(opts.step_sizes))
            progress.refresh()
            before = graded()
            for name in checked:
                rows[name]["steps"] = []
                for size in opts.step_sizes:
                    with stepped_along(policy, grads[name].astype(np.float64).mean(axis=0), size):
                        after = graded()
                    diff, se = _paired(after[name], before[name])
                    total_diff, total_se = _paired(after[TOTAL], before[TOTAL])
                    rows[name]["steps"].append({"step_size": size, "diff": diff, "se": se,
                                                "total_diff": total_diff, "total_se": total_se})
        del grads
        out["starts"][str(start)] = {"sde_steps": sde, "seconds": time.perf_counter() - t0, "rewards": rows,
                                     **({"by_trainable": by_trainable} if by_trainable else {}),
                                     **({"by_variant": by_variant} if by_variant else {})}
    progress.close()
    out["groups_needed"] = groups_needed(out)
    return out


def _at_least(row: dict[str, Any]) -> str:
    bound = row.get("groups_for_snr1_at_least", float("inf"))
    return "not detected" + (f" (> {bound:.0f})" if np.isfinite(bound) else "")


def groups_needed(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per reward (the total and each teacher): the window start whose SNR per group is highest, its
    SNR and no-signal sd, and the groups needed for SNR 1 there (the estimate when detected, else the
    3-sd lower bound, with detected False)."""
    best: dict[str, dict[str, Any]] = {}
    for start, block in result["starts"].items():
        for name, row in block["rewards"].items():
            if name not in best or row["snr_per_group"] > best[name]["snr_per_group"]:
                best[name] = {"window_start": int(start), "snr_per_group": row["snr_per_group"],
                              "null_sd": row["null_sd"], "detected": row["detected"],
                              "groups_for_snr1": row["groups_for_snr1"] if row["detected"]
                              else row.get("groups_for_snr1_at_least", float("inf"))}
    return best


def _paired_table(result: dict[str, Any], key: str, intro: str, header: str, align: str, extra_cells) -> list[str]:
    """Markdown rows of the `key` blocks (by_trainable, by_variant) of every window start: each variant's
    SNR rows and its paired difference from the main settings (empty when there are none)."""
    items = [(start, spec, v) for start, block in result["starts"].items() for spec, v in block.get(key, {}).items()]
    if not items:
        return []
    lines = ["", intro, "", header, align]
    for start, spec, v in items:
        for name, row in v["rewards"].items():
            need = f"{row['groups_for_snr1']:.0f}" if row["detected"] else _at_least(row)
            paired = f"{row['snr_minus_base']:+.5f} ± {row['snr_minus_base_se']:.5f}" if "snr_minus_base" in row else ""
            cells = [str(start), spec, *extra_cells(v), name, f"{row['snr_per_group']:+.5f} ({row['null_sd']:.5f})",
                     need, paired]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    """One row per window start and reward: spreads, SNR per group, groups for SNR 1, the run's cosine."""
    settings = ", ".join(f"{k} {result[k]}" for k in ("algorithm", "nft", "trainable", "noise_channels", "guidance_scale")
                         if k in result)
    lines = [
        (f"Settings: {settings}. " if settings else "") +
        f"{result['trainable_params']:,} trainable parameters; {result['groups']} groups of {result['group_size']} per "
        f"window start on {result['clips']} train clips; window of {result['window']} of {result['num_steps']} steps, "
        f"noise level {result['noise_level']}. A run of this config sees {result['run_groups']} groups.", "",
        "| window start | reward | within-group std | between-group std | SNR per group (no-signal sd) | "
        "groups for SNR 1 | run gradient cosine |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for start, block in result["starts"].items():
        for name, row in block["rewards"].items():
            need = f"{row['groups_for_snr1']:.0f}" if row["detected"] else _at_least(row)
            lines.append(f"| {start} | {name} | {row['within_group_std']:.4f} | {row['between_group_std']:.4f} | "
                         f"{row['snr_per_group']:+.5f} ({row['null_sd']:.5f}) | {need} | {row['run_cosine']:.2f} |")
    lines += ["", "Groups for SNR 1 per reward, at its best window start (`>`: not detected, 3-sd lower bound; "
              f"a run of this config sees {result['run_groups']}):", "",
              "| reward | best start | SNR per group (no-signal sd) | groups for SNR 1 |", "|---|---:|---:|---:|"]
    for name, b in groups_needed(result).items():
        need = f"{b['groups_for_snr1']:.0f}" if b["detected"] else (
            f"> {b['groups_for_snr1']:.0f}" if np.isfinite(b["groups_for_snr1"]) else "not detected")
        lines.append(f"| {name} | {b['window_start']} | {b['snr_per_group']:+.5f} ({b['null_sd']:.5f}) | {need} |")
    lines += _paired_table(
        result, "by_trainable",
        f"Other trainable sets on the same rollouts and grades (policy.trainable={result.get('trainable')} above; its "
        "minus: the paired difference with its jackknife s.e.):",
        "| window start | trainable | parameters | reward | SNR per group (no-signal sd) | groups for SNR 1 | "
        "minus policy.trainable's ± s.e. |", "|---:|---|---:|---|---:|---:|---:|", lambda v: [f"{v['trainable_params']:,}"])
    lines += _paired_table(
        result, "by_variant",
        "Other loss settings (`bench.variants`) on the same rollouts and grades (minus: the paired difference "
        "from the settings above, with its jackknife s.e.):",
        "| window start | variant | reward | SNR per group (no-signal sd) | groups for SNR 1 | "
        "minus the settings above ± s.e. |", "|---:|---|---|---:|---:|---:|", lambda v: [])
    steps = [(start, name, st) for start, block in result["starts"].items()
             for name, row in block["rewards"].items() for st in row.get("steps", [])]
    if steps:
        lines += ["", "Step check: one step along the measured mean gradient, graded on fresh groups with the same "
                  "noise before and after (per-group paired differences):", "",
                  "| window start | reward stepped on | step (x weight norm) | Δ that reward ± s.e. | Δ total ± s.e. |",
                  "|---:|---|---:|---:|---:|"]
        for start, name, st in steps:
            lines.append(f"| {start} | {name} | {st['step_size']:g} | {st['diff']:+.4f} ± {st['se']:.4f} | "
                         f"{st['total_diff']:+.4f} ± {st['total_se']:.4f} |")
    return "\n".join(lines)
