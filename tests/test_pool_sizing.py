"""`prismrl size-pools`: pool sizing arithmetic on made-up throughputs, and the command on a bench JSON."""
from __future__ import annotations

import json

import pytest
import yaml

from orchestrator.pool_sizing.command import main, scaling_from_bench
from orchestrator.pool_sizing.sizing import replicas_needed, size_pools, throughput_at

# samples/s at 1, 2, 4 replicas: semantic scales sub-linearly, timing is fast, spatial is slow
MEASURED = {
    "semantic": {1: 10.0, 2: 18.0, 4: 32.0},
    "timing": {1: 100.0, 2: 190.0},
    "spatial": {2: 6.0},
}


def test_throughput_interpolates_and_extrapolates_per_replica():
    assert throughput_at(MEASURED["semantic"], 3) == pytest.approx(25.0)  # between 18 and 32
    assert throughput_at(MEASURED["semantic"], 8) == pytest.approx(64.0)  # 8 per replica, as at 4
    assert throughput_at(MEASURED["spatial"], 1) == pytest.approx(3.0)  # below the smallest count
    with pytest.raises(ValueError, match="samples/s > 0"):
        throughput_at({1: 0.0}, 2)


def test_every_pool_keeps_up_with_rollouts_times_headroom():
    sizes = size_pools(MEASURED, rollout_samples_per_s=16.0, headroom=1.5,
                       measured_gpus={"semantic": 0.5, "timing": 0.25})
    demand = 24.0
    assert {t: p.replicas for t, p in sizes.items()} == {"semantic": 3, "timing": 1, "spatial": 8}
    for p in sizes.values():
        assert p.demand_samples_per_s == demand
        assert p.capacity_samples_per_s >= demand  # no pool starves the learner
        assert p.replicas == 1 or throughput_at(MEASURED[p.teacher], p.replicas - 1) < demand  # and no more than needed
        assert 0 < p.utilization <= 1
    # semantic: 3 replicas give 25 samples/s for 24 needed: each replica busy 96% of its 0.5 GPU -> 0.5
    assert sizes["semantic"].num_gpus == pytest.approx(0.5)
    # timing: one replica busy 24% of a 0.25 GPU -> 0.06, rounded up to the 0.05 step -> 0.1
    assert sizes["timing"].utilization == pytest.approx(0.24)
    assert sizes["timing"].num_gpus == pytest.approx(0.1)
    assert sizes["spatial"].num_gpus == 0.0  # a CPU teacher


def test_impossible_or_meaningless_sizings_are_refused():
    with pytest.raises(ValueError, match="pool 'spatial'"):
        size_pools({"spatial": {1: 1.0}}, 100.0, max_replicas=4)
    with pytest.raises(ValueError, match="headroom"):
        size_pools(MEASURED, 10.0, headroom=0.5)
    with pytest.raises(ValueError, match="rollout sample rate"):
        size_pools(MEASURED, 0.0)
    assert replicas_needed({1: 5.0}, 5.0) == 1


def test_bench_names_map_to_teachers():
    scaling = scaling_from_bench({"scaling": {"latency": {"1": 9.0}, "timing/onset": {"1": 4.0, "2": 7.5}}})
    assert scaling == {"timing": {1: 4.0, 2: 7.5}}
    with pytest.raises(ValueError, match="none of the teachers"):
        scaling_from_bench({"scaling": {"latency": {"1": 9.0}}})


def test_size_pools_command_writes_sizes_and_pools_snippet(tmp_path, capsys):
    bench = tmp_path / "pools.json"
    bench.write_text(json.dumps({"scaling": {t: {str(r): s for r, s in per.items()} for t, per in MEASURED.items()}}))
    code = main(["tiny", f"run_dir={tmp_path / 'sizing'}", "--bench", str(bench), "--rollout-samples-per-s", "16",
                 "--measured-gpus", "0.5"])
    out = capsys.readouterr().out
    assert code == 0
    assert "| semantic | 3 |" in out and "pools.spatial.replicas=8" in out
    assert "not measured (keep their config): aesthetic" in out
    sizing = json.loads((tmp_path / "sizing" / "pool_sizes.json").read_text())
    assert sizing["pools"]["timing"]["replicas"] == 1 and sizing["unmeasured"] == ["aesthetic"]
    snippet = yaml.safe_load((tmp_path / "sizing" / "pools.yaml").read_text())
    assert snippet == {"pools": {"semantic": {"replicas": 3, "num_gpus": 0.5}, "timing": {"replicas": 1, "num_gpus": 0.15},
                                 "spatial": {"replicas": 8, "num_gpus": 0.5}}}
    # a bench JSON carries no rollout rate: the command says what to pass
    assert main(["tiny", f"run_dir={tmp_path / 'p2'}", "--bench", str(bench)]) == 2
    assert "--rollout-samples-per-s" in capsys.readouterr().err


def test_old_plan_command_is_an_alias_that_names_size_pools(tmp_path, capsys):
    from orchestrator.cli.main import main as prismrl

    bench = tmp_path / "pools.json"
    bench.write_text(json.dumps({"scaling": {t: {str(r): s for r, s in per.items()} for t, per in MEASURED.items()}}))
    code = prismrl(["plan", "tiny", f"run_dir={tmp_path / 'old'}", "--bench", str(bench),
                    "--rollout-samples-per-s", "16"])
    assert code == 0
    assert "renamed to 'prismrl size-pools'" in capsys.readouterr().err
    assert (tmp_path / "old" / "pool_sizes.json").exists()
