"""The root configuration of every `prismrl` command: typed dataclasses, one docstring per field.

Sections live next to the code they configure (policies/config.py, rewards/config.py,
actors/config.py, orchestrator/data/config.py); this module composes them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from actors.config import LearnerConfig, PoolsConfig, RolloutConfig
from orchestrator.data.config import DataConfig
from policies.config import PolicyConfig, SamplerConfig
from policies.planner.config import PlannerConfig
from rewards.config import RewardsConfig


@dataclass
class GRPOConfig:
    """Fast-GRPO optimisation (PrismAudio's values are the `cluster` preset's defaults)."""

    steps: int = 200
    """Learner steps (one step = one batch of prompts, all groups, all window transitions)."""
    prompts_per_step: int = 8
    """Distinct clips per step."""
    group_size: int = 16
    """G: samples per prompt; advantages are relative within a group."""
    lr: float = 1e-5
    """Learning rate of `optimizer`."""
    full_weight_lr_scale: float = 1.0
    """Where `policy.trainable` trains LoRA adapters beside full-weight parts (`lora+mlp+ada`): the
    full-weight parameters' learning rate is lr times this (the adapters keep lr). Ignored otherwise."""
    optimizer: str = "adamw"
    """`adamw` (PrismAudio's) or `sgd` (heavy-ball momentum `momentum`). Where the gradient is mostly noise,
    AdamW moves every coordinate by about lr a step whatever its gradient (a random walk in all of
    them); SGD moves each in proportion to its gradient. With SGD, lr is on the gradient's own scale
    (set it from the learner's `grad_norm`)."""
    momentum: float = 0.9
    """SGD's momentum (optimizer=sgd only)."""
    weight_decay: float = 1e-4
    """Weight decay: decoupled for AdamW, L2 for SGD."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    clip_range: float = 1e-4
    """PPO clip range on the ratio exp(logp - logp_old)."""
    adv_clip: float = 5.0
    """Advantages are clipped to +-adv_clip."""
    adv_eps: float = 1e-4
    """Added to the std in the advantage denominator."""
    adv_std: str = "batch"
    """Advantage denominator: `batch` (PrismAudio: std over the whole batch) or `group`."""
    kl_beta: float = 0.04
    """Weight of the KL penalty to the frozen reference policy."""
    minibatch_size: int = 16
    """Transitions per learner micro-batch (per rank)."""
    micro_batches: str = "rows"
    """How a rank cuts its rows into micro-batches: `rows` (rows shuffled one by one) or `draws`
    (DiffusionNFT only: the rows of one group at one shared forward draw stay together, so each
    optimizer step sees every member of a group at that draw, and the part of their gradients that
    the shared draw makes common cancels within the step, as it does in the whole step's gradient)."""
    inner_epochs: int = 1
    """Passes over each step's experience."""
    ema_decay: float = 0.99
    """EMA of the weights, used for evaluation and `val_*`."""
    null_control: str = "none"
    """Null control of the update mechanics: `none` (train on the advantages), `shuffle` (each step's
    advantages permuted across all its groups, so updates keep their size but follow no reward),
    `shuffle_in_group` (each group's advantages permuted among its own members: the permutation null of
    a group-relative estimator, whose groups keep their advantage sums as a trained run's do) or
    `zero` (all advantages 0: only the KL term, weight decay and numerics move the weights). A run
    whose teachers move beyond their noise under a null control drifts for reasons no reward asked for."""


@dataclass
class NFTConfig:
    """DiffusionNFT (arXiv 2509.16117), `train.algorithm=nft`: likelihood-free RL on the forward process.

    Each finished sample x0 of a group is noised again at `draws` (noise, time) pairs shared by the
    group's members, x_t = (1 - t) x0 + t noise, and the policy's conditional velocity v is trained
    with flow matching towards u = noise - x0 through two implicit policies around the rollout
    policy's own velocity v_old: v+ = (1 - beta) v_old + beta v and v- = (1 + beta) v_old - beta v;
    loss = r |v+ - u|^2 + (1 - r) |v- - u|^2 (mean per element), with the optimality probability
    r = 0.5 + 0.5 clip(A / adv_scale, -1, 1) of the sample's group advantage A. At v = v_old its
    gradient is 2 beta (2r - 1) (v - u) dv: towards the samples that beat their group, away from
    the others. grpo.steps, prompts_per_step, group_size, lr, weight_decay, max_grad_norm, the
    advantage settings, minibatch_size (rows here are (sample, draw) pairs), inner_epochs, ema_decay
    and null_control apply unchanged; clip_range and grpo.kl_beta do not (no ratio; the reference
    term is `nft.kl_beta`)."""

    beta: float = 1.0
    """Step of the implicit positive and negative policies away from the rollout policy."""
    draws: int = 8
    """(noise, time) pairs per finished sample, drawn once per group and shared by its members (common
    random numbers: the part of each member's gradient that all members share cancels in the
    advantage-weighted sum). More draws = less noise per sample, one learner forward each."""
    adv_scale: float = 2.0
    """Advantage at which the optimality probability reaches 0 or 1 (r = 0.5 + 0.5 clip(A / adv_scale, -1, 1))."""
    balance_groups: bool = True
    """Make each group's optimality probabilities average exactly 0.5: after clipping at adv_scale, the
    larger of a group's positive and negative advantage sums is shrunk to the smaller
    (orchestrator/nft/optimality.py, `balanced_advantages`). Clipping trims one tail, so without this a
    group's sum of 2r - 1 is not 0 (the demo's averaged +0.0045 a sample) and every step also trains
    flow matching on the policy's own samples, whatever the rewards: in `demo_nft`'s in-group null
    that push alone moved aesthetic by -0.009 (6 s.e.) on held-out clips (docs/learning/). Applies to
    the single advantage; set false with nft.teacher_channels, which it does not balance."""
    channels: str = "all"
    """Latent channels the objective trains, in `sampler.noise_channels`' syntax (`all`, `params`, `pca:K`,
    parameter channel names, comma-separated, `-NAME` to remove channels: `params,-ITD,-ILD`); the rest of the velocity gets no gradient from it. Each
    member's pull towards its own sample carries all of that sample's differences from its group, and
    the teachers read few of them: with the `parametric_envelope` latent they grade the 27 parameter
    channels (ITD, ILD, 24 band energies, gate) and not the 101 source channels (docs/learning/)."""
    time_range: list[float] = field(default_factory=lambda: [0.0, 1.0])
    """[lo, hi] of the draws' times t (x_t = (1 - t) x0 + t noise, t = 1 is pure noise), 0 <= lo < hi <= 1.
    The `draws` times are stratified over it: draw j has t = lo + (hi - lo) (j + U_j) / draws."""
    kl_beta: float = 0.0
    """Weight of the velocity KL to the frozen pretrained policy, |v - v_ref|^2 (mean per element over
    `kl_channels`, at the draws' x_t; one reference forward each). 0 = off. It pulls the policy back towards
    the reference wherever it has moved, so a noise-driven random walk of the weights stays bounded
    while a steady reward-driven pull persists."""
    kl_channels: str = "all"
    """Latent channels the velocity KL covers, in `nft.channels`' syntax (`all`, `gate`, `ITD,ILD`, ...):
    the channels held near the pretrained policy while the rest move freely."""
    teacher_channels: Dict[str, str] = field(default_factory=dict)
    """Teacher -> the channels of `nft.channels` its share of the advantage trains, in `nft.channels`' syntax
    (`spatial: ITD,ILD`). The group advantage splits exactly into one part per teacher
    (orchestrator/grpo/teacher_parts.py); each channel's optimality probability is taken from the sum of
    the parts of the teachers routed to it, so a teacher's advantage moves only the channels it reads and
    adds no noise to the others. A teacher not listed drives every channel of `nft.channels`; a channel no
    teacher drives stays at v_old (r = 0.5). Empty (the default) = one advantage for every channel."""


ALGORITHMS = ("grpo", "nft")
"""Allowed `train.algorithm` values."""


@dataclass
class TrainConfig:
    """The controller loop."""

    algorithm: str = "grpo"
    """`grpo`: Fast-GRPO, Flow-GRPO or MixGRPO by `sampler.schedule` (the paper's, default): PPO-clip
    on the log-probs of recorded SDE transitions. `nft`: DiffusionNFT (see `nft`): flow matching on
    the finished samples, no log-probs, any sampler (noise_level 0 = ODE rollouts)."""
    mode: str = "sync"
    """`sync` (on-policy) or `async` (rollout of step n+1 overlaps training of step n)."""
    max_staleness: int = 1
    """async: most weight versions an experience may lag behind the learner."""
    checkpoint_every: int = 50
    """Steps between full-state checkpoints (0 = only at the end)."""
    checkpoint_dir: Optional[str] = None
    """Where checkpoints go (local or s3://); None = <run_dir>/checkpoints."""
    keep_checkpoints: int = 2
    """Complete checkpoints kept; older ones are deleted."""
    resume: str = "none"
    """`none`, `auto` (newest complete, intact checkpoint in checkpoint_dir, if any; a damaged one is
    skipped with a warning naming it) or a checkpoint path."""
    max_failures: int = 3
    """Faults a run survives in the job: a learner rank lost (the group is rebuilt and resumes from
    the newest complete checkpoint) or a checkpoint that could not be written (the run goes on
    without it). One more stops the run; 0 = stop at the first, naming the rank or checkpoint and cause."""
    val_every: int = 0
    """Steps between validation passes logged to MLflow (0 = only before and after)."""
    val_manifest: Optional[str] = None
    """Manifest (local or s3://, read with `data.s3`) whose `val_split` clips validate the run; None =
    `data.manifest`. A separate set (another SynthScenes seed: `prismrl data synth`) can hold many more
    validation clips than the training manifest's val split without taking any from training. A clip
    that is also a training clip (same clip id, video or audio file) is an error naming it."""
    val_split: str = "val"
    """Split of the validation manifest that is validated (`train`, `val` or `test`)."""
    val_clips: int = 16
    """Validation clips graded per validation pass: the first of the split, in manifest order."""
    val_samples: int = 1
    """ODE samples per validation clip, each from its own fixed noise (more = a less noisy mean)."""
    media_clips: int = 2
    """Validation clips whose audio, spectrogram and CoT are logged to MLflow."""


@dataclass
class PretrainConfig:
    """Supervised flow-matching pretraining of the policy (`prismrl pretrain`)."""

    steps: int = 2000
    """Optimizer steps."""
    batch_size: int = 16
    """Clips per step."""
    lr: float = 1e-3
    """AdamW learning rate (cosine decay with warm-up)."""
    warmup: int = 100
    """Warm-up steps."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    val_every: int = 250
    """Steps between validation-loss measurements and checkpoints."""
    time_budget_s: float = 0.0
    """Stop after this many seconds (0 = no limit); a checkpoint is written at the stop."""
    torch_threads: int = 2
    """torch intra-op threads."""
    mirror: bool = False
    """Left-right mirror augmentation (policies/mirror.py): each training clip is mirrored with
    probability 1/2 (video flipped, audio channels and the plan's left/right swapped), and the
    latent codec is fitted on both versions."""
    param_loss_weight: float = 16.0
    """Loss weight of each per-frame parameter channel of the latent (ITD and ILD of the parametric
    codecs, and the gate of parametric_gated, divided by the square of its spread in latent units)
    relative to a source channel; 1 = plain MSE. Where a sound sits is two numbers a frame against the
    source's many, so unweighted it barely moves the loss."""
    band_loss_weight: float = 16.0
    """Loss weight of each band-energy channel of the `parametric_envelope` latent (the timbre: 24
    numbers a frame) relative to a source channel. At 1 the demo policy's sounds did not follow the
    classes its plan names (plan following +0.03 +- 0.07); at 16, +0.23 +- 0.05."""


@dataclass
class TrackingConfig:
    """Where metrics and artifacts go."""

    tracking_uri: Optional[str] = None
    """MLflow tracking URI; None = sqlite:///<run_dir>/mlflow.db."""
    experiment: str = "prismrl"
    """MLflow experiment name."""
    run_name: Optional[str] = None
    """MLflow run name; None = the run dir's name."""
    progress: bool = True
    """Show a progress bar in the terminal."""


@dataclass
class RayConfig:
    """How the controller reaches Ray."""

    address: Optional[str] = None
    """Cluster address; None = RAY_ADDRESS if set, else a local Ray started on 127.0.0.1."""
    num_cpus: Optional[float] = None
    """CPUs of a local Ray (None = all)."""
    object_store_mb: int = 1024
    """Object store size of a local Ray, in MiB."""


@dataclass
class EvalConfig:
    """`prismrl eval`: the paper's metrics for a policy checkpoint on a split."""

    split: str = "test"
    """Manifest split to evaluate on: `train`, `val` or `test`."""
    checkpoint: Optional[str] = None
    """Policy checkpoint directory (<run_dir>/policy_ema of `prismrl train`, or a pretrained one);
    None = policy.checkpoint."""
    baseline: Optional[str] = None
    """A second policy checkpoint evaluated on the same clips, noise and plans (second column set)."""
    plans: str = "dataset"
    """Plans the policy generates from: `dataset` (the manifest's CoT), `planner` (planner.* run on
    the video), `none` (empty modules), `random` (another clip's plan), `monolithic` (the four modules
    as one undivided text in the first module)."""
    limit: int = 0
    """Most clips evaluated (0 = the whole split)."""
    samples: int = 1
    """Samples generated per clip, each from its own noise; metrics average over all of them."""
    batch_size: int = 8
    """Clips generated per sampler call."""
    change_scale: float = 1.0
    """With `baseline`: evaluate baseline + change_scale x (checkpoint - baseline), weight by weight,
    instead of the checkpoint (0 = the baseline, 1 = the checkpoint, -1 = the change reversed). A teacher
    whose paired change scales with it responds linearly to the weights' change, and its paired s.e.
    shrinks with it: see docs/learning/24-null-direction-not-size.md."""


@dataclass
class SweepWeightsConfig:
    """Reward weights a sweep explores, per teacher.

    `search: grid`: the values to try. `search: random`: `[low, high]`, drawn uniformly.
    An empty list keeps the config's own weight (`rewards.weights.<teacher>`). Advantages are
    normalized, so scaling every weight by one factor changes nothing: keep one teacher fixed.
    """

    semantic: List[float] = field(default_factory=list)
    """Semantic weights (empty: fixed at rewards.weights.semantic, the anchor)."""
    timing: List[float] = field(default_factory=lambda: [0.3, 1.2])
    """Timing weights."""
    aesthetic: List[float] = field(default_factory=lambda: [0.0, 0.3])
    """Aesthetic weights."""
    spatial: List[float] = field(default_factory=lambda: [0.2, 0.8])
    """Spatial weights."""


@dataclass
class SweepConfig:
    """`prismrl sweep`: a Ray Tune search over the four reward weights, each trial a training run."""

    search: str = "random"
    """`grid` (every combination of the listed weights) or `random` (uniform in each [low, high])."""
    num_samples: int = 4
    """random: number of trials; grid: repeats of the whole grid."""
    weights: SweepWeightsConfig = field(default_factory=SweepWeightsConfig)
    """Weights explored per teacher."""
    trial_overrides: List[str] = field(default_factory=list)
    """Dotted `key=value` overrides applied to every trial (a reduced budget, e.g. `grpo.steps=20`)."""
    asha: bool = False
    """Early-stop weak trials with ASHA on the validation total (needs train.val_every > 0)."""
    asha_grace_steps: int = 0
    """ASHA: steps a trial runs before it may be stopped (0 = one validation interval, train.val_every)."""
    asha_reduction_factor: float = 2.0
    """ASHA: 1/fraction of trials kept at each rung."""
    trial_cpu_fraction: float = 1.0
    """Scale on the CPUs of every role inside a trial (rollout workers, pool replicas, learner ranks):
    below 1, several trials (or one on a small machine) fit in the cluster's CPUs."""
    head_cpus: float = 0.25
    """CPUs of a trial's controller (the Tune function actor)."""
    task_cpus: float = 0.2
    """CPUs reserved in each trial for its short Ray tasks (experience building)."""
    max_concurrent: int = 1
    """Trials running at once."""
    pareto_z: float = 2.0
    """The report's noise margin: a trial dominates another (and the other is not Pareto-optimal) only
    when it is nowhere worse by more than this many standard errors of their paired per-clip
    difference and on some teacher better by more than this many."""


@dataclass
class PrismConfig:
    """Everything a PrismRL command reads."""

    run_dir: str = ""
    """Where the command writes; empty = runs/<command>-<timestamp>."""
    seed: int = 0
    """Seed of the run's generators (data order, windows, noise)."""
    data: DataConfig = field(default_factory=DataConfig)
    """The data set."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """The generator."""
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    """Sampling and exploration schedule."""
    rewards: RewardsConfig = field(default_factory=RewardsConfig)
    """Teachers and combination."""
    pools: PoolsConfig = field(default_factory=PoolsConfig)
    """Reward pool sizing."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """Rollout workers."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    """DeepSpeed learner group."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """Fast-GRPO optimisation."""
    nft: NFTConfig = field(default_factory=NFTConfig)
    """DiffusionNFT optimisation (train.algorithm=nft)."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Controller loop."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """Supervised pretraining."""
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    """MLflow."""
    ray: RayConfig = field(default_factory=RayConfig)
    """Ray connection."""
    sweep: SweepConfig = field(default_factory=SweepConfig)
    """Reward-weight sweeps (`prismrl sweep`)."""
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    """CoT planner (video -> four-module plan) for generate, eval and data annotate."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """`prismrl eval` settings."""
