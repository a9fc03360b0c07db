"""MS-CLAP 2023 in PrismRL: the release's tensor layout, strict loading, parity of the parts with their
references (laion_clap's HTS-AT, a numpy STFT + slaney mel, msclap's pooling rule) and the backend.

A small random-weight model is saved in the release format (`{'model': ...}`, all float32, with the
legacy GPT-2 buffers) next to a tiny GPT-2-style BPE tokenizer; nothing is downloaded.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from common.types import Clip, join_cot
from helpers.ms_clap_files import TINY_ARCH, randomize_buffers, upstream_state, write_tiny_tokenizer
from rewards.base import TeacherError, build_teacher, check_options
from rewards.models.ms_clap import (
    CheckpointError,
    MsClapArch,
    MsClapModel,
    caption_ids,
    channels_to_one,
    fit_clip_audio,
    legacy_gpt2_buffers,
    load_caption_tokenizer,
    load_ms_clap_state,
    pooled_index,
    tokenize_captions,
)

LAYOUT = Path("/work/shared/checkpoint-layouts/msclap_2023.layout.json")
SR = 16000
COT = {"semantic": "a dog barks", "temporal": "at 1 s", "aesthetic": "clean", "spatial": "left"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small random-weight MS-CLAP saved as the release is, and a tiny tokenizer directory."""
    root = tmp_path_factory.mktemp("msclap")
    vocab = write_tiny_tokenizer(root / "gpt2")
    arch = MsClapArch(**TINY_ARCH, text_vocab=len(vocab))
    torch.manual_seed(0)
    model = MsClapModel(arch).eval()
    randomize_buffers(model)
    state = upstream_state(model, arch.text_layers, arch.text_positions)
    assert all(v.dtype == torch.float32 for v in state.values())
    path = root / "CLAP_weights_2023.pth"
    torch.save({"model": state}, path)
    return {"root": root, "arch": arch, "model": model, "state": state, "ckpt": str(path),
            "tok": str(root / "gpt2"), "vocab": vocab}


def _options(tiny, **kw):
    arch = {**TINY_ARCH, "text_vocab": tiny["arch"].text_vocab}
    return {"checkpoint": tiny["ckpt"], "tokenizer": tiny["tok"], "device": "cpu", "arch": arch, **kw}


# ---------------------------------------------------------------- layout and strict loading


def test_state_dict_has_the_release_layout():
    layout = json.loads(LAYOUT.read_text())
    model = MsClapModel(MsClapArch(), meta_text=True)  # full size; GPT-2 on the meta device (shapes only)
    ours = [(k, list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in model.state_dict().items()]
    theirs = [(t["name"], t["shape"], t["dtype"]) for t in layout["tensors"]]
    assert ours == theirs  # names, shapes, dtypes and order
    assert len(ours) == layout["num_tensors"] == 357
    legacy = legacy_gpt2_buffers(12)
    assert legacy == layout["non_persistent_buffers_not_in_state_dict"]
    assert legacy == [t["name"] for t in layout["inferred_extra_keys_in_CLAP_weights_2023"]["tensors"]]
    assert MsClapArch().clip_samples == 308700


def test_release_format_loads_strictly_and_casts_integer_buffers(tiny, tmp_path):
    fresh = MsClapModel(tiny["arch"])
    load_ms_clap_state(fresh, tiny["ckpt"])
    want = tiny["model"].state_dict()
    got = fresh.state_dict()
    assert list(got) == list(want)
    assert all(torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype for k in want)
    assert got["audio_encoder.base.htsat.bn0.num_batches_tracked"].dtype == torch.int64
    assert int(got["audio_encoder.base.htsat.bn0.num_batches_tracked"]) == 1234
    # a file saved by a current transformers (no legacy buffers) loads as well
    plain = {k: v for k, v in tiny["state"].items() if k not in legacy_gpt2_buffers(tiny["arch"].text_layers)}
    torch.save({"model": plain}, tmp_path / "plain.pth")
    load_ms_clap_state(fresh, str(tmp_path / "plain.pth"))


BAD_FILES = {
    "renamed": (lambda s: s.__setitem__("audio_encoder.projection.linear_1.weight",
                                        s.pop("audio_encoder.projection.linear1.weight")),
                r"missing keys: audio_encoder\.projection\.linear1\.weight; "
                r"unexpected keys: audio_encoder\.projection\.linear_1\.weight"),
    "missing": (lambda s: s.pop("caption_encoder.base.ln_f.bias"), r"missing keys: caption_encoder\.base\.ln_f\.bias"),
    "misshaped": (lambda s: s.__setitem__("logit_scale", torch.ones(1)),
                  r"shape mismatches: logit_scale: file \(1,\) vs model \(\)"),
    "masked_bias": (lambda s: s.__setitem__("caption_encoder.base.h.1.attn.masked_bias", torch.tensor(-1e9)),
                    r"legacy buffer caption_encoder\.base\.h\.1\.attn\.masked_bias does not hold -10000"),
    "causal_mask": (lambda s: s["caption_encoder.base.h.0.attn.bias"].fill_(1.0),
                    r"legacy buffer caption_encoder\.base\.h\.0\.attn\.bias does not hold the lower-triangular"),
    "some_legacy": (lambda s: s.pop("caption_encoder.base.h.1.attn.bias"),
                    r"3 of the 4 legacy GPT-2 attention buffers; missing: caption_encoder\.base\.h\.1\.attn\.bias"),
    "fractional": (lambda s: s.__setitem__("audio_encoder.base.htsat.bn0.num_batches_tracked", torch.tensor(1.5)),
                   r"audio_encoder\.base\.htsat\.bn0\.num_batches_tracked must hold whole numbers"),
    "rel_index": (lambda s: s["audio_encoder.base.htsat.layers.0.blocks.0.attn.relative_position_index"].add_(1),
                  r"layers\.0\.blocks\.0\.attn\.relative_position_index differs"),
}


def test_renamed_missing_misshaped_or_altered_tensors_are_refused_by_name(tiny, tmp_path):
    model = tiny["model"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, (edit, message) in BAD_FILES.items():
        state = {k: v.clone() for k, v in tiny["state"].items()}
        edit(state)
        path = tmp_path / f"{name}.pth"
        torch.save({"model": state}, path)
        with pytest.raises(CheckpointError, match=rf"{name}\.pth: .*{message}"):
            load_ms_clap_state(model, str(path))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing half-loaded


# ---------------------------------------------------------------- parity of the parts


def test_htsat_gives_laion_clap_htsat_output_with_the_same_weights(tiny):
    from laion_clap.clap_module.htsat import HTSAT_Swin_Transformer

    from rewards.models.ms_clap.model import htsat_front_end_config

    arch, model = tiny["arch"], tiny["model"]
    laion = HTSAT_Swin_Transformer(spec_size=256, patch_size=4, patch_stride=(4, 4), num_classes=arch.num_classes,
                                   embed_dim=arch.htsat_embed_dim, depths=list(arch.htsat_depths),
                                   num_heads=list(arch.htsat_heads), window_size=8,
                                   config=htsat_front_end_config(arch)).eval()
    prefix = "audio_encoder.base.htsat."
    laion.load_state_dict({k[len(prefix):]: v for k, v in model.state_dict().items() if k.startswith(prefix)},
                          strict=True)
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, (2, arch.clip_samples)).astype(np.float32))
    with torch.no_grad():
        theirs = laion({"waveform": x})["embedding"]
        ours = model.audio_encoder.base(x)
        projected = model.audio_encoder(x)
    assert ours.shape == (2, arch.audio_width)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(projected, model.audio_encoder.projection(theirs), rtol=0, atol=0)


def _slaney_mel(sr, n_fft, n_mels, fmin, fmax):
    """Slaney-scale, slaney-normalised triangular filters `[n_mels, n_fft // 2 + 1]` (librosa's default)."""
    f_sp, min_log_hz, logstep = 200.0 / 3, 1000.0, math.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        log_part = min_log_hz / f_sp + np.log(np.maximum(f, 1e-9) / min_log_hz) / logstep
        return np.where(f < min_log_hz, f / f_sp, log_part)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m < min_log_hz / f_sp, m * f_sp, min_log_hz * np.exp(logstep * (m - min_log_hz / f_sp)))

    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lower = (freqs[None, :] - edges[:-2, None]) / (edges[1:-1] - edges[:-2])[:, None]
    upper = (edges[2:, None] - freqs[None, :]) / (edges[2:] - edges[1:-1])[:, None]
    return np.maximum(0, np.minimum(lower, upper)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def test_log_mel_front_end_matches_a_numpy_stft_and_slaney_mel(tiny):
    arch, model = tiny["arch"], tiny["model"]
    rng = np.random.default_rng(1)
    t = np.arange(arch.clip_samples) / arch.sample_rate
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    with torch.no_grad():
        ours = model.audio_encoder.base.log_mel(torch.from_numpy(x)[None])[0, 0].double().numpy()
    # direct: centred reflect-padded frames, periodic Hann, |rfft|^2, mel for 32 kHz / 50-14000 Hz, 10 log10
    padded = np.pad(x.astype(np.float64), arch.n_fft // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, arch.n_fft)[:: arch.hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(arch.n_fft) / arch.n_fft)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    mel = power @ _slaney_mel(arch.mel_sample_rate, arch.n_fft, arch.mel_bins, arch.fmin, arch.fmax).T
    direct = 10 * np.log10(np.maximum(mel, 1e-10))
    assert ours.shape == direct.shape == (965, 64)  # 7 s at 44.1 kHz, hop 320
    np.testing.assert_allclose(ours, direct, rtol=0, atol=2e-3)  # stated tolerance: 0.002 dB (float32 conv STFT)


def test_caption_tokens_and_the_pooled_index_rule(tiny, caplog):
    tok = load_caption_tokenizer(tiny["tok"])
    v = tiny["vocab"]
    eot = v["<|endoftext|>"]
    assert tok.ids("a dog barks") == [v["a"], v["Ġdog"], v["Ġbar"], v["ks"], v["Ġ"], eot]
    assert tok.ids("bell!") == [v["b"], v["el"], v["l"], v["!"], v["Ġ"], eot] and v["!"] == 0
    long_text = "dog " * 100
    with caplog.at_level(logging.WARNING):
        ids, mask = tokenize_captions(tok, ["a dog barks", "bell!", long_text], 77)
    assert "truncated to 77" in caplog.text
    assert ids.shape == mask.shape == (3, 77) and ids.dtype == torch.long
    assert ids[0, :6].tolist() == tok.ids("a dog barks") and ids[0, 6:].eq(0).all() and mask[0].sum() == 6
    assert ids[2, -1] == eot and mask[2].sum() == 77
    assert caption_ids([5, 6, 7, 8], 3, 9) == ([5, 6, 9], True)
    # rule: (number of non-zero ids) - 1: the end-of-text token, one step earlier per '!' in the text
    assert pooled_index(ids).tolist() == [5, 4, 76]
    model = tiny["model"]
    with torch.no_grad():
        hidden = model.caption_encoder.base(input_ids=ids, attention_mask=mask).last_hidden_state
        want = model.caption_encoder.projection(hidden[torch.arange(3), torch.tensor([5, 4, 76])])
        torch.testing.assert_close(model.caption_encoder(ids, mask), want)


def test_audio_is_resampled_joined_and_fitted_to_seven_seconds():
    stereo = np.stack([np.full(16000, 0.5, np.float32), np.full(16000, -0.25, np.float32)])
    assert channels_to_one(stereo, "concat").tolist() == [0.5] * 16000 + [-0.25] * 16000
    np.testing.assert_allclose(channels_to_one(stereo, "mono"), 0.125)
    mono = fit_clip_audio(stereo, 16000, 44100, 308700, "mono", "c", "o")
    concat = fit_clip_audio(stereo, 16000, 44100, 308700, "concat", "c", "o")
    assert mono.shape == concat.shape == (308700,) and mono.dtype == np.float32
    assert abs(float(np.median(mono)) - 0.125) < 1e-3
    # 1 s of each channel at 44.1 kHz, end to end, then tiled: left, right, left...
    assert np.median(concat[1000:40000]) == pytest.approx(0.5, abs=1e-3)
    assert np.median(concat[45000:85000]) == pytest.approx(-0.25, abs=1e-3)
    assert np.median(concat[90000:130000]) == pytest.approx(0.5, abs=1e-3)
    long = np.arange(10 * 44100, dtype=np.float32)[None].repeat(2, 0)
    np.testing.assert_array_equal(fit_clip_audio(long, 44100, 44100, 308700, "concat", "c", "o"), long[0, :308700])


# ---------------------------------------------------------------- the backend


def _clip(clip_id, cot=COT):
    return Clip(clip_id, "train", np.zeros((1, 4, 4, 3), np.uint8), 25.0, np.zeros((2, 10), np.float32), SR, dict(cot))


def test_backend_grades_with_the_saved_weights(tiny):
    teacher = build_teacher("semantic", "ms_clap", _options(tiny))
    rng = np.random.default_rng(2)
    audio = [(0.2 * rng.standard_normal((2, int(s * SR)))).astype(np.float32) for s in (1.5, 8.0)]
    clips = [_clip("a"), _clip("b", {**COT, "semantic": "a bell"})]
    grades = teacher.grade(audio, SR, clips)
    # the same numbers from the model that was saved, by msclap's formula
    model, arch = tiny["model"], tiny["arch"]
    tok = load_caption_tokenizer(tiny["tok"])
    waves = torch.from_numpy(np.stack([fit_clip_audio(a, SR, 44100, arch.clip_samples, "mono", "x", "o")
                                       for a in audio]))
    with torch.no_grad():
        a_emb = model.audio_encoder(waves)
        t_emb = model.caption_encoder(*tokenize_captions(tok, ["a dog barks", "a bell"], 77))
        from rewards.models.ms_clap import similarity

        expected = torch.diagonal(similarity(a_emb, t_emb, model.logit_scale)).numpy() / 80
    np.testing.assert_allclose([g.reward for g in grades], expected, rtol=1e-4, atol=1e-6)
    bound = math.exp(3.1) / 80
    assert teacher.reward_range == pytest.approx((-bound, bound))
    assert all(abs(g.reward) <= bound and g.diagnostics["logit_scale_exp"] == pytest.approx(math.exp(3.1))
               for g in grades)
    # PrismAudio's choices: channels end to end, the whole CoT: other grades
    teacher.options.channels, teacher.options.text = "concat", "full"
    other = teacher.grade(audio, SR, clips)
    assert all(abs(g.reward - o.reward) > 1e-6 for g, o in zip(grades, other))
    assert join_cot(COT) != COT["semantic"]


def test_backend_refuses_missing_files_and_bad_options_by_name(tiny, tmp_path):
    broken = tmp_path / "gpt2"
    shutil.copytree(tiny["tok"], broken)
    (broken / "merges.txt").unlink()
    with pytest.raises(TeacherError, match=rf"semantic/ms_clap: tokenizer file\(s\) missing: {broken / 'merges.txt'}"):
        build_teacher("semantic", "ms_clap", _options(tiny, tokenizer=str(broken)))
    with pytest.raises(TeacherError, match="semantic/ms_clap: option 'tokenizer' is required"):
        build_teacher("semantic", "ms_clap", _options(tiny, tokenizer=""))
    with pytest.raises(TeacherError, match=rf"semantic/ms_clap: checkpoint '{tmp_path / 'none.pth'}' does not exist"):
        build_teacher("semantic", "ms_clap", _options(tiny, checkpoint=str(tmp_path / "none.pth")))
    with pytest.raises(TeacherError, match=r"semantic/ms_clap: checkpoint .*CLAP_weights_2023\.pth: .*"
                       r"shape mismatches: audio_encoder\.projection\.linear1\.weight: "
                       r"file \(16, 64\) vs model \(8, 64\)"):
        build_teacher("semantic", "ms_clap", _options(tiny, arch={**TINY_ARCH, "text_vocab": tiny["arch"].text_vocab,
                                                                  "proj_dim": 8}))
    with pytest.raises(TeacherError, match=r"has \d+ tokens but the model's text embedding has 50257 rows"):
        build_teacher("semantic", "ms_clap", _options(tiny, arch={}))
    with pytest.raises(TeacherError, match=r"option arch: unknown fields \['layers'\]"):
        build_teacher("semantic", "ms_clap", _options(tiny, arch={"layers": 2}))
    with pytest.raises(TeacherError, match="version='2022' is not supported"):
        check_options("semantic", "ms_clap", {"checkpoint": "w.pth", "version": "2022"})
    with pytest.raises(TeacherError, match="channels='left'"):
        check_options("semantic", "ms_clap", {"checkpoint": "w.pth", "channels": "left"})
