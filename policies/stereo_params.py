"""Per-frame stereo parameters of a waveform and their rendering (pure torch, no learning).

Used by the parametric-stereo latent (`policies.parametric_latent`):
- `frame_stereo_params`: the inter-channel time delay (ITD, by a regularised GCC-PHAT over a
  window centred on each latent frame) and level difference (ILD, dB) of a stereo waveform,
  frame by frame; frames far below the loudest one get ITD 0 and ILD 0.
- `shift_by_frames`: x(n + s(n)) for per-frame, sub-sample shifts s (short-time phase ramps,
  cross-faded), the time-varying fractional delay that both encoding and decoding use;
- `render_stereo` / `align_to_mid`: a mono source placed by per-frame ITD/ILD, and back;
- `frame_curve`: per-frame values -> a per-sample curve (linear between frame centres).

Sign convention as `rewards.dsp.gcc_phat_itd`: a positive ITD means the right channel lags the
left (the source is on the left); a positive ILD means the left channel is louder.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

def frame_curve(values: torch.Tensor, hop: int) -> torch.Tensor:
    """Per-frame values [B, F] (frame f centred at (f + 0.5) * hop) -> per-sample curve [B, F * hop],
    linear between centres and held flat before the first and after the last."""
    b, frames = values.shape
    pos = (torch.arange(frames * hop, dtype=values.dtype, device=values.device) + 0.5) / hop - 0.5
    pos = pos.clamp(0, frames - 1)
    lo = pos.floor().long().clamp(max=frames - 1)
    hi = (lo + 1).clamp(max=frames - 1)
    w = (pos - lo.to(pos.dtype))[None]
    return values[:, lo] * (1 - w) + values[:, hi] * w


def shift_by_frames(x: torch.Tensor, shift: torch.Tensor, hop: int) -> torch.Tensor:
    """y(n) ~= x(n + s(n)) for x [B, F * hop] and per-frame shifts [B, F] in samples (any real value,
    |shift| well below hop), s(n) following the frames' values smoothly.

    Short-time processing: sine-windowed blocks of 2 * hop (hop apart, circular like the MDCT) are
    each advanced by the mean shift of the two frames they span, by a phase ramp on a zero-padded
    FFT, windowed again and overlap-added (the squared sine window sums to 1). A constant shift is
    exact up to the block edges; frames shifting by different amounts are cross-faded.
    """
    b, n = x.shape
    frames = shift.shape[-1]
    if n != frames * hop:
        raise ValueError(f"shift_by_frames: {n} samples is not {frames} frames of {hop}")
    if torch.all(shift == 0):
        return x.clone()
    window = torch.sin(torch.pi * (torch.arange(2 * hop, dtype=x.dtype, device=x.device) + 0.5) / (2 * hop))
    blocks = torch.cat([x, x[:, :hop]], -1).unfold(-1, 2 * hop, hop)[:, :frames] * window  # block k: [k*hop, k*hop+2hop)
    block_shift = 0.5 * (shift + torch.roll(shift, -1, dims=-1))  # block k is centred between frames k and k+1
    margin = int(math.ceil(float(shift.abs().max()))) + 2
    n_fft = 2 * hop + 2 * margin
    spec = torch.fft.rfft(F.pad(blocks, (margin, margin)), n_fft)
    freqs = torch.fft.rfftfreq(n_fft, device=x.device).to(x.dtype)
    spec = spec * torch.exp(2j * torch.pi * freqs * block_shift[..., None].to(x.dtype))
    moved = torch.fft.irfft(spec, n_fft)[..., margin : margin + 2 * hop] * window
    out = moved[..., :hop] + torch.roll(moved[..., hop:], 1, dims=-2)  # frame f: block f's 1st half + block f-1's 2nd
    return out.reshape(b, n)


def frame_stereo_params(
    audio: torch.Tensor, hop: int, max_delay_samples: float, interp: int = 2, window_hops: int = 4,
    phat_floor_db: float = 30.0, gate_db: float = 40.0, max_ild_db: float = 12.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(itd [B, F] in samples, ild [B, F] in dB) of stereo audio [B, 2, F * hop].

    Each frame's window is `window_hops * hop` samples (Hann) centred on the frame. ITD: argmax of
    the regularised-PHAT cross-correlation within +-`max_delay_samples`, at 1/`interp` sample
    resolution plus a parabolic peak fit. Frames whose window energy is more than `gate_db` below
    the clip's loudest frame get ITD 0 and ILD 0 (silence has no direction). ILD is clipped to
    +-`max_ild_db`.
    """
    if audio.dim() != 3 or audio.shape[1] != 2:
        raise ValueError(f"expected stereo waveforms [B, 2, N], got shape {tuple(audio.shape)}")
    b, _, n = audio.shape
    frames = n // hop
    win = window_hops * hop
    x = audio.float()
    pad_left = (win - hop) // 2
    padded = F.pad(x, (pad_left, win - hop - pad_left))
    blocks = padded.unfold(-1, win, hop)[..., :frames, :]  # [B, 2, F, win]
    blocks = blocks * torch.hann_window(win, periodic=False, dtype=x.dtype, device=x.device)
    n_fft = win + 2 * int(math.ceil(max_delay_samples)) + 2  # no circular wrap within the lags searched
    spec = torch.fft.rfft(blocks, n_fft)
    cross = torch.conj(spec[:, 0]) * spec[:, 1]  # [B, F, bins]
    mag = cross.abs()
    floor = 10.0 ** (-phat_floor_db / 20.0) * mag.amax(-1, keepdim=True)
    cross = cross / torch.maximum(mag, floor + 1e-30)
    corr = torch.fft.irfft(cross, n_fft * interp)  # lag k / interp samples at index k (circular)
    max_shift = int(round(max_delay_samples * interp))
    lags = torch.cat([corr[..., -max_shift:], corr[..., : max_shift + 1]], -1)  # -max..+max
    k = lags.argmax(-1)
    inner = (k > 0) & (k < lags.shape[-1] - 1)
    kc = k.clamp(1, lags.shape[-1] - 2)
    a = lags.gather(-1, (kc - 1)[..., None])[..., 0]
    c0 = lags.gather(-1, kc[..., None])[..., 0]
    c = lags.gather(-1, (kc + 1)[..., None])[..., 0]
    denom = a - 2 * c0 + c
    offset = torch.where(inner & (denom < 0), (0.5 * (a - c) / denom.clamp(max=-1e-30)).clamp(-0.5, 0.5),
                         torch.zeros_like(denom))
    itd = ((k - max_shift).to(x.dtype) + offset) / interp
    energy = blocks.pow(2).sum(-1)  # [B, 2, F]
    ild = 10.0 * torch.log10((energy[:, 0] + 1e-12) / (energy[:, 1] + 1e-12))
    total = energy.sum(1)
    loud = total >= total.amax(-1, keepdim=True) * 10.0 ** (-gate_db / 10.0)
    loud = loud & (total > 1e-12)
    itd = torch.where(loud, itd, torch.zeros_like(itd))
    ild = torch.where(loud, ild.clamp(-max_ild_db, max_ild_db), torch.zeros_like(ild))
    return itd.to(audio.dtype), ild.to(audio.dtype)


def ear_gains(ild_db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(left, right) gains whose ratio is `ild_db` dB and whose squares sum to 2 (constant power: a
    source moved to one side never gets louder than sqrt(2) times itself in the near ear)."""
    ratio = torch.pow(10.0, -ild_db / 20.0)  # right / left
    left = torch.sqrt(2.0 / (1.0 + ratio * ratio))
    return left, left * ratio


def render_stereo(mid: torch.Tensor, itd: torch.Tensor, ild: torch.Tensor, hop: int) -> torch.Tensor:
    """Stereo [B, 2, F * hop] from a mono source [B, F * hop] and per-frame ITD (samples) and ILD (dB)
    [B, F]: left(n) = g_l * mid(n + itd/2), right(n) = g_r * mid(n - itd/2)."""
    g_l, g_r = ear_gains(frame_curve(ild, hop))
    return torch.stack([g_l * shift_by_frames(mid, itd / 2, hop), g_r * shift_by_frames(mid, -itd / 2, hop)], 1)


def align_to_mid(audio: torch.Tensor, itd: torch.Tensor, ild: torch.Tensor, hop: int) -> torch.Tensor:
    """The mono source [B, N] that `render_stereo` would turn into `audio` [B, 2, N] (the mean of
    both ears after undoing their per-frame delay and gain); exact for a single steady source."""
    g_l, g_r = ear_gains(frame_curve(ild, hop))
    left = shift_by_frames(audio[:, 0] / g_l, -itd / 2, hop)
    right = shift_by_frames(audio[:, 1] / g_r, itd / 2, hop)
    return 0.5 * (left + right)
