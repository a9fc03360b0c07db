"""policy.kind=prismaudio: the released checkpoint's exact layout, strict loading, refusal of
files that do not match (naming the tensor), and export then load giving identical tensors."""
from __future__ import annotations

import json
from collections import OrderedDict

import pytest
import torch

from policies.config import PolicyConfig
from policies.prismaudio.policy import PrismAudioPolicy
from policies.prismaudio.weights import WeightsError, export_weights, ordered_export
from policies.registry import policy_class
from helpers.prismaudio_world import LAYOUT, reduced_config, replace_prismaudio, save_reference_checkpoint


def test_full_size_on_meta_has_the_released_names_shapes_order_and_counts():
    layout = json.load(open(LAYOUT))
    with torch.device("meta"):
        policy = policy_class("prismaudio")(PolicyConfig(kind="prismaudio", sample_rate=44100))
    ours = [(k, list(v.shape)) for k, v in policy.state_dict().items()]
    assert ours == [(t["name"], t["shape"]) for t in layout["tensors"]]
    assert all(v.dtype == torch.float32 for v in policy.state_dict().values())
    count = lambda prefix: sum(p.numel() for n, p in policy.named_parameters() if n.startswith(prefix))  # noqa: E731
    assert count("model.") == layout["params"]["model.* (DiT, the part RL trains)"] == 511_365_248
    assert count("") - count("pretransform.") == 518_188_160
    assert sum(v.numel() for v in policy.state_dict().values()) == layout["total_numel"]
    trained = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    assert trained == 511_363_200  # all of model.model.* but empty_clip_feat / empty_sync_feat
    assert policy.latent_shape() == (64, 194)


@pytest.fixture(scope="module")
def reference_file(tmp_path_factory):
    """A reduced model with random weights saved the way the reference saves prismaudio.ckpt."""
    torch.manual_seed(0)
    model = PrismAudioPolicy(reduced_config())
    with torch.no_grad():  # the zero-initialised tensors get values, so a wrong copy shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path_factory.mktemp("ref") / "prismaudio.ckpt"
    return model, str(save_reference_checkpoint(model, str(path)))


def _same(a: dict, b: dict) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_reference_checkpoint_loads_strictly_and_export_round_trips(reference_file, tmp_path):
    model, path = reference_file
    loaded = PrismAudioPolicy(replace_prismaudio(reduced_config(), weights=path))
    assert _same(loaded.state_dict(), model.state_dict())
    for name in ("export.ckpt", "export.safetensors"):
        out = export_weights(ordered_export(list(loaded.state_dict()), loaded.state_dict(), "test"), str(tmp_path / name))
        again = PrismAudioPolicy(replace_prismaudio(reduced_config(), weights=out))
        assert _same(again.state_dict(), model.state_dict()), name
    ckpt = torch.load(tmp_path / "export.ckpt", weights_only=True)
    assert isinstance(ckpt, OrderedDict) and list(ckpt) == list(model.state_dict())  # flat, in layout order


@pytest.mark.parametrize("damage, named", [
    ("rename", "model.model.transformer.layers.1.self_attn.to_qkv.weight"),
    ("drop", "conditioner.conditioners.sync_features.proj_out.bias"),
    ("reshape", "model.model.transformer.rotary_pos_emb.inv_freq"),
])
def test_a_file_that_does_not_match_is_refused_naming_the_tensor(reference_file, tmp_path, damage, named):
    model, _ = reference_file
    state = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    if damage == "rename":
        state[named.replace("to_qkv", "qkv")] = state.pop(named)
    elif damage == "drop":
        del state[named]
    else:
        state[named] = torch.zeros(3)
    bad = tmp_path / "bad.ckpt"
    torch.save(state, bad)
    with pytest.raises(WeightsError) as err:
        PrismAudioPolicy(replace_prismaudio(reduced_config(), weights=str(bad)))
    message = str(err.value)
    assert named in message and str(bad) in message
    assert {"rename": "unexpected", "drop": "missing", "reshape": "mis-shaped"}[damage] in message


def test_vae_weights_come_from_a_lightning_vae_ckpt(reference_file, tmp_path):
    model, _ = reference_file
    lightning = {"state_dict": {"autoencoder." + k: v + 1.0 for k, v in model.pretransform.model.state_dict().items()}}
    torch.save(lightning, tmp_path / "vae.ckpt")
    policy = PrismAudioPolicy(replace_prismaudio(reduced_config(), vae_weights=str(tmp_path / "vae.ckpt")))
    for k, v in policy.pretransform.model.state_dict().items():
        assert torch.equal(v, lightning["state_dict"]["autoencoder." + k]), k
