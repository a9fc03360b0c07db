"""Typed config, presets, overrides and the `prismrl` command line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.cli.main import COMMANDS, main
from orchestrator.config import ConfigError, flatten, from_dict, load_config, to_dict
from orchestrator.config.load import preset_names
from rewards.base import TeacherError, check_options


def test_presets_load_and_cluster_carries_prismaudio_hyperparameters():
    assert {"demo", "cluster", "tiny"} <= set(preset_names())
    c = load_config("cluster")
    assert (c.sampler.num_steps, c.sampler.guidance_scale, c.sampler.noise_level, c.sampler.window) == (24, 5.0, 0.7, 2)
    assert (c.grpo.group_size, c.grpo.clip_range, c.grpo.kl_beta, c.grpo.lr, c.grpo.weight_decay) == (16, 1e-4, 0.04, 1e-5, 1e-4)
    assert c.grpo.adv_clip == 5.0 and c.grpo.max_grad_norm == 1.0
    w = c.rewards.weights
    assert (w.semantic, w.timing, w.aesthetic, w.spatial) == (1.0, 0.6, 0.1, 0.4)


def test_dotted_overrides_are_typed():
    c = load_config("demo", ["rewards.weights.timing=0.25", "grpo.steps=7", "train.mode=async", "run_dir=/tmp/x"])
    assert c.rewards.weights.timing == 0.25 and c.grpo.steps == 7 and c.train.mode == "async"
    assert c.run_dir == "/tmp/x"


def test_default_run_dir_is_per_command_and_timestamped():
    c = load_config("demo", [], command="train")
    assert c.run_dir.startswith("runs/train-")


@pytest.mark.parametrize("override, needle", [
    ("rewards.weights.timng=1", "rewards.weights.timng"),
    ("grpo.steps=abc", "grpo.steps"),
    ("sampler.schedule=euler", "sampler.schedule"),
    ("nosuch.key=1", "nosuch.key"),
    ("learner.zero_stage", "key=value"),
])
def test_bad_override_names_the_key(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config("demo", [override])
    assert needle in str(err.value)


def test_unknown_key_error_lists_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config("demo", ["rewards.weights.timng=1"])
    assert "semantic, timing, aesthetic, spatial" in str(err.value)


def test_bad_preset_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("grpo:\n  group_sise: 4\n")
    with pytest.raises(ConfigError, match="grpo.group_sise"):
        load_config(str(bad))
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config("no-such-preset")


def test_a_preset_extends_another_and_changes_only_its_own_keys(tmp_path):
    demo, nft = load_config("demo"), load_config("demo_nft")
    assert (nft.train.algorithm, nft.sampler.noise_level, nft.grpo.prompts_per_step) == ("nft", 0.0, 8)
    assert (nft.nft.draws, nft.nft.channels, nft.train.val_samples) == (4, "params,-gate", 3)
    assert (nft.rollout.dtype, nft.grpo.steps, nft.grpo.ema_decay) == ("auto", 42, 0.5)
    assert demo.rollout.dtype == "fp32"  # Fast-GRPO samples in fp32
    assert nft.nft.time_range == demo.nft.time_range  # inherited from the demo's nft section
    assert (demo.train.algorithm, demo.grpo.prompts_per_step) == ("grpo", 2)  # the demo itself is unchanged
    assert nft.policy == demo.policy and nft.rewards == demo.rewards and nft.train.val_clips == demo.train.val_clips
    child = tmp_path / "child.yaml"
    child.write_text("extends: demo_nft\ngrpo:\n  lr: 2.0e-5\n")  # a file may extend a preset that extends another
    c = load_config(str(child))
    assert (c.grpo.lr, c.train.algorithm, c.policy.codec) == (2.0e-5, "nft", demo.policy.codec)
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"extends: {loop}\n")
    with pytest.raises(ConfigError, match="no cycle"):
        load_config(str(loop))
    (tmp_path / "typo.yaml").write_text("extends: demo\ngrpo:\n  stepz: 3\n")
    with pytest.raises(ConfigError, match="grpo.stepz"):
        load_config(str(tmp_path / "typo.yaml"))


def test_config_round_trips_through_dict():
    c = load_config("cluster")
    assert from_dict(to_dict(c)) == c
    flat = flatten(to_dict(c))
    assert flat["rewards.weights.semantic"] == 1.0 and flat["learner.zero_stage"] == 2


def test_teacher_backend_and_options_are_checked_by_name():
    with pytest.raises(TeacherError, match="rewards.timing.backend: unknown backend 'nope'"):
        check_options("timing", "nope", {})
    with pytest.raises(TeacherError, match="frame_rat"):
        check_options("timing", "onset", {"frame_rat": 10})


def test_cli_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("data", "pretrain", "train", "sweep", "eval", "bench", "size-pools"):
        assert name in COMMANDS and f"  {name}" in out


def test_cli_reports_config_errors_with_exit_code_2(capsys):
    assert main(["train", "demo", "grpo.stepz=3"]) == 2
    assert "grpo.stepz" in capsys.readouterr().err


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "orchestrator.cli.main", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "prismrl COMMAND" in out.stdout
