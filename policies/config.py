"""Typed configuration of the policy (the video-to-audio generator) and its sampler."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from policies.prismaudio.config import PrismAudioConfig


@dataclass
class TextEncoderConfig:
    """How CoT text becomes tokens for the generator."""

    kind: str = "builtin"
    """`builtin`: a word-level tokenizer and embedding trained with the model (laptop, tests);
    `transformers`: a T5-family encoder loaded from `path` (clusters), kept frozen."""
    path: Optional[str] = None
    """Local directory of a transformers encoder (required when kind=transformers)."""
    max_tokens_per_module: int = 24
    """Tokens kept per CoT module; longer text is truncated."""
    vocab_size: int = 512
    """Size of the builtin tokenizer's vocabulary (hashed words)."""


@dataclass
class PolicyConfig:
    """The built-in DiT generator; sizes of the `demo` preset run on 2 CPU cores."""

    kind: str = "small_dit"
    """Registered policy class name."""
    checkpoint: Optional[str] = None
    """Pretrained checkpoint directory (from `prismrl pretrain`) to start from; None = random init."""
    sample_rate: int = 16000
    """Audio sample rate the policy generates, in Hz."""
    duration_s: float = 2.0
    """Length of generated audio in seconds."""
    patch: int = 160
    """Samples per channel in one latent frame (the latent frame rate is sample_rate/patch)."""
    codec: str = "parametric_gated"
    """Audio latent: `parametric_envelope` (`parametric_gated` plus the energy of each of 24 mel
    bands per frame, which decoding imposes on the source, so the timbre is a first-order target;
    `policies/envelope_latent.py`), `parametric_gated` (`parametric_stereo` plus a per-frame gate
    channel that silences a frame; `policies/gated_latent.py`), `parametric_stereo` (a mono source's PCA-projected
    MDCT plus a per-frame ITD and ILD channel; `policies/parametric_latent.py`) or `stereo_band`
    (mid/side PCA of both ears' MDCT; `policies/latent.py`). Checkpoints written before this field
    existed load as `stereo_band`."""
    latent_channels: int = 64
    """Channels of the audio latent per frame (parametric_stereo: source coefficients + 2; parametric_gated: + 3)."""
    width: int = 192
    """Transformer width."""
    depth: int = 4
    """Number of DiT blocks."""
    heads: int = 4
    """Attention heads per block."""
    video_size: int = 32
    """Frames are resized to video_size x video_size before the visual encoder."""
    video_fps: float = 12.5
    """Frames per second given to the visual encoder (resampled from the clip)."""
    video_motion: bool = True
    """Also feed the visual encoder each frame's difference from the previous frame (a flash or an
    impact is then a large input from initialisation). Checkpoints written before this field
    existed load with False."""
    sync_stream: bool = True
    """Also add each video frame's features, projected, to the audio tokens of the same time span
    (frame-aligned conditioning, as MMAudio does with Synchformer features), so when a thing happens
    on screen reaches the audio frames directly instead of only through cross-attention.
    Checkpoints written before this field existed load with False."""
    stereo_guidance_scale: Optional[float] = 1.0
    """Classifier-free guidance scale of the codec's stereo-image channels (ITD and ILD of the
    parametric codecs) whenever the sampler guides; the other channels get `sampler.guidance_scale`.
    None = the sampler's scale for every channel. Guidance extrapolates away from the unconditional
    prediction, whose delay is near 0, so at scale 3 it exaggerated every delay (mean |ITD| 0.34 ms
    against ground truth's 0.25 ms on the demo's val and test clips) and doubled the squared error
    the spatial teacher grades. Not an architecture field: a checkpoint samples with either."""
    cond_dropout: float = 0.1
    """Probability of dropping all conditions in training (for classifier-free guidance)."""
    text_encoder: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    """How the CoT plan is tokenized and embedded."""
    prismaudio: PrismAudioConfig = field(default_factory=PrismAudioConfig)
    """kind=prismaudio: PrismAudio's own DiT, conditioners and VAE (`policies/prismaudio/`); the
    fields above other than sample_rate, duration_s and trainable do not apply to it."""
    trainable: str = "all"
    """Which weights RL trains (policies/trainable.py): `all`; `lora` (low-rank adapters through
    `peft` on the modules `lora_targets` names, the rest frozen; the KL reference is the same model
    with its adapters disabled, and the weights sent to rollout workers, the EMA and policy
    checkpoints are the merged ones); `last_blocks:K` (the last K DiT blocks and the output layer);
    `heads` (the output layer only); or parts joined by `+`, each once: `lora` and the full-weight
    sets `heads`, `attn`, `mlp`, `ada`, `cond`, `inputs` (policies/trainable.py FULL_WEIGHT_SETS), e.g. `lora+mlp+ada`
    (adapters on attention, MLPs and adaLN at full weight, their rate `grpo.full_weight_lr_scale`
    times lr; the KL reference is then a frozen copy); or `all-SET[-SET...]`, every weight but those
    sets (`all-cond-inputs`: the conditioning encoders and the input layers frozen). Frozen weights get no update.
    Not an architecture field: pretraining ignores it and a checkpoint trains with any choice."""
    lora_rank: int = 32
    """trainable=lora: rank r of each adapter (Flow-GRPO: 32)."""
    lora_alpha: float = 32.0
    """trainable=lora: adapter scale alpha; the update is (alpha / r) * B @ A."""
    lora_targets: str = r"blocks\.\d+\.(attn|cross)\.(q|kv|out)"
    """trainable=lora: regular expression (full match) on module names that get adapters; the default
    is every self- and cross-attention projection of the DiT blocks."""


@dataclass
class SamplerConfig:
    """Flow-matching sampling and the GRPO exploration schedule (PrismAudio's values by default)."""

    num_steps: int = 24
    """Euler steps from t=1 (noise) to t=0 (data)."""
    guidance_scale: float = 5.0
    """Classifier-free guidance scale at sampling."""
    shift: float = 1.0
    """Timestep shift: sigma' = shift*s/(1+(shift-1)*s); 1.0 = uniform schedule."""
    noise_level: float = 0.7
    """`a` in sigma_t = a*sqrt(s/(1-s)); 0 makes the SDE step the Euler ODE step."""
    schedule: str = "fast_grpo"
    """`fast_grpo` (SDE window of `window` steps, start drawn per training step in the first half),
    `flow_grpo` (SDE at every step), `mix_grpo` (window sliding from noisy to clean)."""
    window: int = 2
    """Number of consecutive SDE steps in the window (fast_grpo, mix_grpo)."""
    window_range: float = 0.5
    """fast_grpo: the window starts within the first `window_range` fraction of the schedule."""
    mix_slide_every: int = 25
    """mix_grpo: training steps between one-step slides of the window."""
    flow_train_steps: int = 0
    """flow_grpo: number of SDE steps trained per sample (random subset); 0 = all."""
    noise_channels: str = "all"
    """Latent channels the SDE window explores (policies/noise_subspace.py): `all`, or a comma list
    of codec parameter channels by name (`ITD`, `ILD`, `gate`, or `params` for all of them) and
    `pca:K` (the first K source channels, which hold the most energy); `-NAME` removes what the tokens
    before it named (`params,-ITD`). Elsewhere the window's steps
    are the deterministic Euler step, and the transition log-prob is the exact Gaussian density over
    the chosen channels only (mean per element, as with all channels)."""
