"""PrismAudio's Oobleck VAE: the released layout, strict loading from vae.ckpt / prismaudio.ckpt, shapes.

The full-size VAE (156M parameters) is built once per module, saved as a Lightning `vae.ckpt`
and loaded back; that loaded model runs the 1 s encode and the 22-frame decode. Refusals and
round trips of the other file layouts use a reduced configuration of the same code.
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from policies.prismaudio.snake import snake_beta
from policies.prismaudio.vae import OobleckConfig, OobleckVAE, frames_for_samples
from policies.prismaudio.vae_checkpoint import (
    LIGHTNING_PREFIX,
    MODEL_PREFIX,
    VAECheckpointError,
    load_oobleck_vae,
    vae_state_dict,
)
from policies.prismaudio.weight_norm import WNConv1d, WNConvTranspose1d

LAYOUT = Path("/work/shared/checkpoint-layouts/prismaudio_vae.layout.json")
SMALL = OobleckConfig(channels=4, multipliers=(1, 2), strides=(2, 4), latent_channels=3)


def lightning_checkpoint(vae: nn.Module) -> dict:
    """What stable-audio-tools' Lightning training wrapper saves: the VAE beside other modules and trainer state."""
    state = {LIGHTNING_PREFIX + k: v for k, v in vae.state_dict().items()}
    state["discriminator.convs.0.weight"] = torch.zeros(2, 2, 3)
    return {"epoch": 3, "global_step": 1200, "pytorch-lightning_version": "2.1.0", "state_dict": state,
            "optimizer_states": [], "lr_schedulers": []}


@pytest.fixture(scope="module")
def full_vae(tmp_path_factory) -> OobleckVAE:
    """A random-weight full-size VAE written as a Lightning vae.ckpt and loaded back strictly."""
    torch.manual_seed(0)
    vae = OobleckVAE()
    path = tmp_path_factory.mktemp("vae") / "vae.ckpt"
    torch.save(lightning_checkpoint(vae), path)
    loaded = load_oobleck_vae(str(path))
    path.unlink()
    ref = vae.state_dict()
    got = loaded.state_dict()
    assert list(got) == list(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    return loaded


def test_state_dict_matches_release_layout():
    layout = json.loads(LAYOUT.read_text())
    with torch.device("meta"):
        vae = OobleckVAE()
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in vae.state_dict().items()]
    theirs = [(t["name"], t["shape"], t["dtype"]) for t in layout["tensors"]]
    assert ours == theirs  # names, shapes, dtypes and order
    assert sum(v.numel() for v in vae.state_dict().values()) == layout["total_numel"] == 156_112_514
    assert vae.hop == 2048


@pytest.mark.parametrize("transpose", [False, True])
def test_weight_norm_convs_match_torch_weight_norm(transpose):
    """Same tensor names, order and output as torch's (deprecated) weight_norm that trained the VAE."""
    torch.manual_seed(1)
    conv = nn.ConvTranspose1d if transpose else nn.Conv1d
    ours_cls = WNConvTranspose1d if transpose else WNConv1d
    kwargs = dict(stride=4, padding=2) if transpose else dict(stride=1, padding=6, dilation=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        theirs = nn.utils.weight_norm(conv(6, 5, 8 if transpose else 7, **kwargs))
    ours = ours_cls(6, 5, 8 if transpose else 7, **kwargs)
    with torch.no_grad():
        theirs.weight_g.mul_(torch.rand_like(theirs.weight_g) + 0.5)  # g no longer equal to ||v||
    names = [(k, v.shape) for k, v in theirs.state_dict().items()]  # bias, weight_g, weight_v
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == names
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 6, 37)
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-6)


def test_snake_beta_log_scale_parameters():
    x = torch.full((1, 2, 3), math.pi / 4)
    log_alpha = torch.tensor([math.log(2.0), 0.0])
    log_beta = torch.tensor([math.log(0.5), 0.0])
    y = snake_beta(x, log_alpha, log_beta)
    # channel 0: a = 2, b = 0.5 -> pi/4 + sin(pi/2)^2 / 0.5; channel 1: a = b = 1 -> pi/4 + sin(pi/4)^2
    torch.testing.assert_close(y[0, 0], torch.full((3,), math.pi / 4 + 2.0))
    torch.testing.assert_close(y[0, 1], torch.full((3,), math.pi / 4 + 0.5))


def test_full_size_encodes_one_second_and_decodes_22_frames(full_vae):
    torch.manual_seed(2)
    audio = 0.1 * torch.randn(1, 2, 44100)
    with torch.inference_mode():
        latent = full_vae.encode(audio)  # 44100 samples are zero-padded to 22 * 2048 = 45056
        wave = full_vae.decode(torch.randn(1, 64, 22))
    assert latent.shape == (1, 64, 22) and torch.isfinite(latent).all()
    assert wave.shape == (1, 2, 45056) and torch.isfinite(wave).all()


def test_small_padding_sampling_and_bad_shapes():
    torch.manual_seed(3)
    vae = OobleckVAE(SMALL).eval()
    assert vae.hop == 8 and frames_for_samples(17, 8) == 3 and frames_for_samples(16, 8) == 2
    audio = torch.randn(2, 2, 17)
    with torch.no_grad():
        mean = vae.encode(audio)
        padded = vae.encode(torch.nn.functional.pad(audio, (0, 7)))
        draw = vae.encode(audio, sample=True, generator=torch.Generator().manual_seed(5))
        again = vae.encode(audio, sample=True, generator=torch.Generator().manual_seed(5))
        mean_std = vae.posterior(audio)
        wave = vae.decode(mean)
    assert mean.shape == (2, 3, 3) and torch.equal(mean, padded)
    assert torch.equal(draw, again) and not torch.equal(draw, mean)
    assert torch.equal(mean_std[0], mean) and (mean_std[1] > 1e-4).all()
    assert wave.shape == (2, 2, 24)
    with pytest.raises(ValueError, match=r"decode: expected \[batch, 3, length>0\], got \[2, 4, 3\]"):
        vae.decode(torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match=r"encode: expected \[batch, 2, length>0\]"):
        vae.encode(torch.zeros(1, 17))


def test_export_under_model_prefix_loads_back_from_safetensors_and_ckpt(tmp_path):
    torch.manual_seed(4)
    vae = OobleckVAE(SMALL)
    state = vae_state_dict(vae)  # prefix 'pretransform.model.'
    assert list(state) == [MODEL_PREFIX + k for k in vae.state_dict()]
    whole = {"model.model.project_in.weight": torch.zeros(8, 3), **state}  # as in prismaudio.ckpt
    save_file(whole, tmp_path / "prismaudio.safetensors")
    torch.save(whole, tmp_path / "prismaudio.ckpt")
    torch.save(vae.state_dict(), tmp_path / "bare.pt")
    for name in ("prismaudio.safetensors", "prismaudio.ckpt", "bare.pt"):
        got = load_oobleck_vae(str(tmp_path / name), cfg=SMALL).state_dict()
        assert all(torch.equal(got[k], v) for k, v in vae.state_dict().items()), name


def _refused(tmp_path, state: dict, match: str) -> None:
    path = tmp_path / "vae.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(VAECheckpointError, match=match):
        load_oobleck_vae(str(path), cfg=SMALL)


def test_refuses_renamed_missing_and_misshaped_tensors_naming_them(tmp_path):
    vae = OobleckVAE(SMALL)
    good = lightning_checkpoint(vae)["state_dict"]
    name = "autoencoder.decoder.layers.1.layers.1.weight_v"

    renamed = dict(good)
    renamed["autoencoder.decoder.layers.1.layers.1.weight_w"] = renamed.pop(name)
    _refused(tmp_path, renamed, r"missing tensors: autoencoder\.decoder\.layers\.1\.layers\.1\.weight_v; "
                                r"unexpected tensors: autoencoder\.decoder\.layers\.1\.layers\.1\.weight_w")

    missing = {k: v for k, v in good.items() if k != "autoencoder.encoder.layers.2.layers.3.beta"}
    _refused(tmp_path, missing, r"vae\.ckpt: does not match OobleckVAE: missing tensors: "
                                r"autoencoder\.encoder\.layers\.2\.layers\.3\.beta$")

    misshaped = dict(good)
    misshaped[name] = torch.zeros(8, 4, 3)
    _refused(tmp_path, misshaped, r"mis-shaped tensors: autoencoder\.decoder\.layers\.1\.layers\.1\.weight_v: "
                                  r"file \[8, 4, 3\] vs model \[8, 4, 8\]")


class _NotPlainData:
    """An object that weights_only=True refuses to unpickle (as a Lightning file with custom hparams would hold)."""


def test_refuses_missing_file_and_pickled_objects(tmp_path):
    with pytest.raises(VAECheckpointError, match="nope.ckpt: checkpoint file not found"):
        load_oobleck_vae(str(tmp_path / "nope.ckpt"))
    path = tmp_path / "objects.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _NotPlainData()}, path)
    with pytest.raises(VAECheckpointError, match="objects.ckpt: cannot read checkpoint with weights_only=True"):
        load_oobleck_vae(str(path))
