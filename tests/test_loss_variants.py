"""gradsnr's loss-side variants (benchmarks/loss_variants.py): what they may set and how they apply."""
import pytest

from benchmarks.loss_variants import variant_config, variant_overrides
from orchestrator.config.load import ConfigError, load_config


def test_a_variant_sets_its_loss_side_fields_and_leaves_the_rest():
    cfg = load_config("demo_nft")
    v = variant_config(cfg, "nft.adv_scale=0.5; rewards.combine=normalize_then_sum;grpo.adv_clip=3")
    assert (v.nft.adv_scale, v.rewards.combine, v.grpo.adv_clip) == (0.5, "normalize_then_sum", 3.0)
    assert (cfg.nft.adv_scale, cfg.rewards.combine) == (2.0, "sum_then_normalize")  # the main config is untouched
    assert v.sampler == cfg.sampler and v.policy == cfg.policy and v.grpo.group_size == cfg.grpo.group_size


@pytest.mark.parametrize("spec, named", [
    ("sampler.guidance_scale=1.0", "sampler.guidance_scale"),  # changes the samples: unpaired
    ("grpo.group_size=16", "grpo.group_size"),
    ("nft.adv_scale=0.5;seed=3", "seed"),
    ("rewards.weights.semantic=2", "rewards.weights.semantic"),  # changes the grades
])
def test_a_variant_that_would_change_rollouts_or_grades_is_refused_by_name(spec, named):
    with pytest.raises(ConfigError, match=rf"'{named}'.*would change the rollouts or grades"):
        variant_overrides(spec)


def test_bad_variants_name_what_is_wrong():
    cfg = load_config("demo_nft")
    with pytest.raises(ConfigError, match="unknown config key 'nft.adv_scal'"):
        variant_config(cfg, "nft.adv_scal=0.5")
    with pytest.raises(ConfigError, match="'nft.adv_scale' .*not of the form key=value|not of the form key=value"):
        variant_config(cfg, "nft.adv_scale")
    with pytest.raises(ConfigError, match="nft.adv_scale=half"):
        variant_config(cfg, "nft.adv_scale=half")
    with pytest.raises(ConfigError, match="empty variant"):
        variant_overrides(" ; ")
