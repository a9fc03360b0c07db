"""StereoCRW's audio encoder (Chen et al., NeurIPS 2022): a ResNet-9 over STFT patches.

The `stereocrw_binaural` network: a complex STFT (n_fft 256, Hann window of 256, hop = patch
length // 128, centred, reflect-padded) of each patch of one channel, real and imaginary parts as
2 input channels, last frequency bin and last frame dropped -> `[2, 128 frames, 128 bins]`; a
torchvision ResNet with one BasicBlock per stage ("resnet9"), conv1 replaced by a 2-channel 7x7
stride-2 conv without bias, fc replaced by Linear(512, 128). Module names match
`FreeMusic-StereoCRW-1024.pth.tar` after its `module.` prefix is stripped: `trans.window`, `net.*`
(75 tensors, 4,968,320 parameters). Facts from IFICL/stereocrw models/audio_encoder.py:22-106.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

N_FFT = 256
WIN_LENGTH = 256
FEAT_DIM = 128
SPEC_SIZE = 128


class StftTransform(nn.Module):
    """Complex STFT with a stored Hann window (the checkpoint's `trans.window` buffer)."""

    def __init__(self, hop_length: int):
        super().__init__()
        self.hop_length = hop_length
        self.register_buffer("window", torch.hann_window(WIN_LENGTH))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """`[N, L]` -> `[N, 2, frames - 1, N_FFT // 2]` (re/im, time, frequency), last frame and bin dropped."""
        spec = torch.stft(
            wave, N_FFT, hop_length=self.hop_length, win_length=WIN_LENGTH, window=self.window,
            center=True, pad_mode="reflect", normalized=False, onesided=True, return_complex=True,
        )  # [N, 129, frames]
        spec = torch.view_as_real(spec).permute(0, 3, 2, 1)  # [N, 2, frames, 129]
        return spec[..., :-1, :-1]


def resnet9(in_channels: int = 2, feat_dim: int = FEAT_DIM) -> ResNet:
    """torchvision ResNet, BasicBlock x [1, 1, 1, 1], 2-channel conv1, 128-d fc."""
    net = ResNet(BasicBlock, [1, 1, 1, 1])
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Linear(net.fc.in_features, feat_dim)
    return net


def hop_for_patch(patch_samples: int) -> int:
    """STFT hop giving 128 frames per patch, as StereoCRW sets it: patch_samples // 128."""
    if patch_samples < 128:
        raise ValueError(f"StereoCRW: a patch needs at least 128 samples, got {patch_samples}")
    return patch_samples // 128


class StereoCRW(nn.Module):
    """Embeds overlapping patches of one audio channel: `[B, L]` -> `[B, P, 128]`."""

    def __init__(self, patch_samples: int = 1024):
        super().__init__()
        self.patch_samples = patch_samples
        self.trans = StftTransform(hop_for_patch(patch_samples))
        self.net = resnet9()

    def set_patch_samples(self, patch_samples: int) -> None:
        """Use another patch length (and its hop); the weights do not depend on it."""
        self.patch_samples = patch_samples
        self.trans.hop_length = hop_for_patch(patch_samples)

    @torch.no_grad()
    def patch_features(self, wave: torch.Tensor, patch_stride: int, batch: int = 64) -> torch.Tensor:
        """Features of every patch `wave[:, k*stride : k*stride + patch_samples]`: `[B, P, 128]`."""
        if wave.ndim != 2 or wave.shape[-1] < self.patch_samples:
            raise ValueError(f"StereoCRW: expected [B, L >= {self.patch_samples}] audio, got {tuple(wave.shape)}")
        patches = wave.unfold(-1, self.patch_samples, patch_stride)  # [B, P, patch] (a view)
        b, p, _ = patches.shape
        flat = patches.reshape(b * p, self.patch_samples) if patches.is_contiguous() else None
        feats = []
        for start in range(0, b * p, batch):
            rows = flat[start : start + batch] if flat is not None else self._rows(patches, start, batch)
            feats.append(self.net(self.trans(rows.contiguous())))
        return torch.cat(feats).reshape(b, p, -1)

    @staticmethod
    def _rows(patches: torch.Tensor, start: int, count: int) -> torch.Tensor:
        b, p, _ = patches.shape
        idx = torch.arange(start, min(start + count, b * p))
        return patches[idx // p, idx % p]
