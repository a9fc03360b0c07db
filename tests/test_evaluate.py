"""`prismrl eval`: Fréchet distance maths, ablated plans, the paper's metrics from grades, and a whole
evaluation (checkpoint + baseline) on a tiny pretrained policy."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import scipy.linalg
import torch

from common.types import COT_MODULES, TEACHERS, Clip, Grade
from orchestrator.config.load import load_config
from orchestrator.data.reader import ClipReader
from orchestrator.data.synth import write_synthscenes
from orchestrator.evaluation.evaluate import ablated_plans, eval_overrides, generate_waveforms, paper_metrics, run_eval
from orchestrator.evaluation.fd_logmel import frechet_audio_distance, frechet_distance, gaussian_stats
from orchestrator.evaluation.paired import paired_differences, paired_markdown
from orchestrator.training.pretrain import run_pretrain
from policies.checkpoint import load_policy


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny SynthScenes and a briefly pretrained tiny policy."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evalworld")
    cfg = load_config("tiny", [f"run_dir={root / 'pre'}", f"policy.checkpoint={root / 'policy'}",
                               "pretrain.steps=6", "pretrain.val_every=0", "pretrain.torch_threads=1"])
    cfg.data.manifest = write_synthscenes(str(root / "data"), cfg.data.synth, cfg.data.s3, progress=False)
    run_pretrain(cfg)
    return root, cfg.data.manifest


def test_frechet_distance_is_zero_for_equal_and_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((40, 5))
    b = rng.standard_normal((40, 5)) @ rng.standard_normal((5, 5)) + 2.0
    mu1, c1 = gaussian_stats(a)
    mu2, c2 = gaussian_stats(b)
    assert frechet_distance(mu1, c1, mu1, c1) == pytest.approx(0.0, abs=1e-8)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-6)
    # fewer samples than dimensions (singular covariances) still gives a finite, non-negative number
    assert np.isfinite(frechet_distance(*gaussian_stats(a[:3]), *gaussian_stats(b[:3])))


def test_fad_tells_tones_from_noise():
    rng = np.random.default_rng(1)
    t = np.arange(16000) / 16000
    tones = [np.stack([np.sin(2 * np.pi * f * t)] * 2).astype(np.float32) * 0.3 for f in (300, 320, 340, 360)]
    tones2 = [np.stack([np.sin(2 * np.pi * f * t)] * 2).astype(np.float32) * 0.3 for f in (310, 330, 350, 370)]
    noise = [0.1 * rng.standard_normal((2, 16000)).astype(np.float32) for _ in range(4)]
    assert frechet_audio_distance(tones, tones2, 16000) < 0.2 * frechet_audio_distance(tones, noise, 16000)


def _clip(i: int) -> Clip:
    cot = {m: f"{m} text of clip {i}" for m in COT_MODULES}
    return Clip(f"c{i}", "test", np.zeros((2, 8, 8, 3), np.uint8), 12.5, np.zeros((2, 160), np.float32), 16000, cot)


def test_ablated_plans():
    clips = [_clip(i) for i in range(5)]
    assert ablated_plans(clips, "dataset") == [c.cot for c in clips]
    assert all(not any(p.values()) for p in ablated_plans(clips, "none"))
    mono = ablated_plans(clips, "monolithic")[2]
    assert mono["semantic"] == " ".join(clips[2].cot[m] for m in COT_MODULES) and not any(mono[m] for m in COT_MODULES[1:])
    rand = ablated_plans(clips, "random", seed=3)
    assert rand == ablated_plans(clips, "random", seed=3)  # seeded
    assert all(p != c.cot for p, c in zip(rand, clips))  # every clip gets another clip's plan
    assert sorted(p["semantic"] for p in rand) == sorted(c.cot["semantic"] for c in clips)
    with pytest.raises(ValueError, match="at least 2 clips"):
        ablated_plans(clips[:1], "random")


def test_paper_metrics_from_grades():
    grades = {
        "semantic": [Grade(0.8), Grade(0.4)],
        "timing": [Grade(0.45, {"offset_s": -0.2}), Grade(0.35, {"offset_s": 0.6})],
        "aesthetic": [Grade(0.5, {"CE": 6.0, "CU": 5.0, "PC": 2.0, "PQ": 7.0}), Grade(0.7, {"CE": 4.0, "CU": 5.0, "PC": 4.0, "PQ": 5.0})],
        "spatial": [Grade(-0.1, {"itd_gen_ms": 0.3, "itd_gt_ms": 0.1, "ditd_ms": 0.2}),
                    Grade(-0.4, {"itd_gen_ms": -0.2, "itd_gt_ms": 0.2, "ditd_ms": -0.4})],
    }
    w = {"semantic": 1.0, "timing": 0.6, "aesthetic": 0.1, "spatial": 0.4}
    m = paper_metrics(grades, w)
    assert m["semantic"] == pytest.approx(0.6)
    assert m["desync_s"] == pytest.approx(0.4)
    assert m["aesthetic"] == pytest.approx(0.6) and m["aesthetic/CE"] == pytest.approx(5.0)
    assert m["itd_error_ms"] == pytest.approx(0.3)
    assert m["reward/total"] == pytest.approx(0.6 + 0.6 * 0.4 + 0.1 * 0.6 + 0.4 * -0.25)


def test_paired_differences_average_samples_per_clip_then_compare_clips():
    rows = [{"clip_id": "a", "semantic": 0.5}, {"clip_id": "b", "semantic": 0.2},
            {"clip_id": "a", "semantic": 0.7}, {"clip_id": "b", "semantic": 0.4}]  # clip means a 0.6, b 0.3
    base = [{"clip_id": "b", "semantic": 0.1}, {"clip_id": "a", "semantic": 0.6}]
    p = paired_differences(rows, base, ["semantic"])["semantic"]
    assert p["diff"] == pytest.approx(0.1) and p["clips"] == 2  # per-clip differences 0.0 and 0.2
    assert p["se"] == pytest.approx(np.std([0.0, 0.2], ddof=1) / np.sqrt(2))
    assert (p["higher"], p["lower"]) == (1, 0)
    assert "| semantic | +0.1000 | 0.1000 | +1.0 | 1/2 | 0/2 |" in paired_markdown({"semantic": p})
    with pytest.raises(ValueError, match="clip ids differ.*'c'"):
        paired_differences(rows + [{"clip_id": "c", "semantic": 0.0}], base, ["semantic"])


def test_short_keys_expand_to_eval_section():
    preset, overrides = eval_overrides(["tiny", "checkpoint=/c", "plans=none", "seed=3"])
    assert preset == "tiny" and overrides == ["eval.checkpoint=/c", "eval.plans=none", "seed=3"]


def test_eval_table_with_baseline_and_plan_ablation(world):
    root, manifest = world
    ckpt = str(root / "policy")
    cfg = load_config("tiny", [f"run_dir={root / 'eval'}", f"data.manifest={manifest}", f"eval.checkpoint={ckpt}",
                               f"eval.baseline={ckpt}", "eval.split=val"], command="eval")
    result = run_eval(cfg)
    cols = result["metrics"]
    assert set(cols) == {"checkpoint", "baseline"} and result["clips"] >= 2
    for key in ("semantic", "desync_s", "aesthetic", "itd_error_ms", "fd_logmel", *[f"reward/{t}" for t in TEACHERS]):
        assert np.isfinite(cols["checkpoint"][key]), key
        assert cols["checkpoint"][key] == pytest.approx(cols["baseline"][key]), key  # same weights, noise, plans
    assert 0.0 <= cols["checkpoint"]["desync_s"] <= 2.0 and cols["checkpoint"]["itd_error_ms"] >= 0.0
    saved = json.load(open(root / "eval" / "eval.json"))
    assert saved["metrics"]["checkpoint"]["semantic"] == pytest.approx(cols["checkpoint"]["semantic"])
    md = open(root / "eval" / "eval.md").read()
    assert "| metric | checkpoint | baseline | Δ |" in md and "DeSync (s)" in md and "FD log-mel" in md
    # the same policy against itself: every paired difference is exactly 0
    assert set(saved["paired"]) == set(TEACHERS)
    assert all(p["diff"] == 0.0 and p["higher"] == p["lower"] == 0 for p in saved["paired"].values())
    assert "## Paired per-clip differences" in md
    assert os.path.exists(root / "eval" / "mlflow.db")

    # samples=2: every clip generated twice from different noise, all graded and averaged.
    twice = run_eval(load_config("tiny", [f"run_dir={root / 'eval2'}", f"data.manifest={manifest}",
                                          f"eval.checkpoint={ckpt}", "eval.split=val", "eval.samples=2"],
                                 command="eval"), track=False)
    rows = twice["per_clip"]["checkpoint"]
    assert len(rows) == 2 * twice["clips"] and sorted({r["sample"] for r in rows}) == [0, 1]
    first, second = rows[: twice["clips"]], rows[twice["clips"]:]
    assert [r["clip_id"] for r in first] == [r["clip_id"] for r in second]
    assert any(a["semantic"] != b["semantic"] for a, b in zip(first, second))
    assert twice["metrics"]["checkpoint"]["reward/semantic"] == pytest.approx(np.mean([r["semantic"] for r in rows]))
    assert "2 samples each" in open(root / "eval2" / "eval.md").read()

    # The plan conditions the audio: no plan gives different waveforms from the same noise.
    policy = load_policy(ckpt)
    clips = ClipReader(cfg.data).load_split("val", 2)
    with_plan = generate_waveforms(policy, clips, ablated_plans(clips, "dataset"), cfg.sampler, seed=0)
    again = generate_waveforms(policy, clips, ablated_plans(clips, "dataset"), cfg.sampler, seed=0)
    without = generate_waveforms(policy, clips, ablated_plans(clips, "none"), cfg.sampler, seed=0)
    assert np.array_equal(with_plan[0], again[0])
    assert not np.allclose(with_plan[0], without[0])
