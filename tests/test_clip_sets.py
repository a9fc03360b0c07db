"""A run's training and validation clips: a separate validation manifest, and the checks that name
an empty validation split or a validation clip that is also a training clip."""
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.config import ConfigError, load_config
from orchestrator.data.config import SynthConfig
from orchestrator.data.synth import write_synthscenes
from orchestrator.training.clip_sets import training_clip_sets

TINY = dict(n=8, min_duration_s=1.0, max_duration_s=1.0, fps=12.5, size=32, val_fraction=0.25, test_fraction=0.25)


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clip_sets")
    train = write_synthscenes(str(root / "train"), SynthConfig(seed=4, **TINY), progress=False)
    other = write_synthscenes(str(root / "other"), SynthConfig(seed=5, **TINY), progress=False)
    return Path(train), Path(other)


def _cfg(manifest: Path, *overrides: str):
    return load_config("tiny", [f"data.manifest={manifest}", *overrides])


def _split(manifest: Path, split: str) -> list[str]:
    table = pq.read_table(manifest)
    return [c for c, s in zip(table.column("clip_id").to_pylist(), table.column("split").to_pylist()) if s == split]


def test_default_validates_the_training_manifests_val_split(sets):
    train, _ = sets
    got = training_clip_sets(_cfg(train, "train.val_clips=10"))
    assert got.train_ids == _split(train, "train") and got.val_ids == _split(train, "val")
    assert got.val_reader is got.train_reader and not set(got.val_ids) & set(got.train_ids)


def test_a_separate_manifest_gives_the_chosen_split_up_to_val_clips(sets):
    train, other = sets
    cfg = _cfg(train, f"train.val_manifest={other}", "train.val_split=test", "train.val_clips=1")
    got = training_clip_sets(cfg)
    assert got.train_ids == _split(train, "train")
    assert got.val_ids == _split(other, "test")[:1] and got.val_ids[0].startswith("ss5-")
    assert got.val_reader.load(got.val_ids[0]).clip_id == got.val_ids[0]
    everything = training_clip_sets(_cfg(train, f"train.val_manifest={other}", "train.val_split=train",
                                         "train.val_clips=100"))
    assert everything.val_ids == _split(other, "train") and len(everything.val_ids) > 1


def test_validating_on_training_clips_is_an_error_naming_them(sets):
    train, _ = sets
    with pytest.raises(ValueError, match=r"also training clips.*ss4-0000\d\d") as err:
        training_clip_sets(_cfg(train, "train.val_split=train"))
    assert str(train) in str(err.value)


def test_a_training_clips_media_under_another_id_is_an_error_naming_the_file(sets, tmp_path):
    train, _ = sets
    table = pq.read_table(train)
    first = table.slice(_index_of(table, _split(train, "train")[0]), 1)
    alias = first.set_column(0, "clip_id", pa.array(["alias-000000"]))
    alias = alias.set_column(alias.schema.get_field_index("split"), "split", pa.array(["val"]))
    root = train.parent
    for key in ("video_path", "audio_path"):
        alias = alias.set_column(alias.schema.get_field_index(key), key,
                                 pa.array([str(root / first.column(key)[0].as_py())]))
    aliased = tmp_path / "aliased.parquet"
    pq.write_table(alias, aliased)
    with pytest.raises(ValueError, match=r"alias-000000 \(.*\.mp4 is also training clip ss4-") as err:
        training_clip_sets(_cfg(train, f"train.val_manifest={aliased}"))
    assert "aliased.parquet" in str(err.value)


def _index_of(table: pa.Table, clip_id: str) -> int:
    return table.column("clip_id").to_pylist().index(clip_id)


def test_an_empty_validation_split_names_the_manifest_and_split(sets, tmp_path):
    train, _ = sets
    shutil.copytree(train.parent, tmp_path / "set")
    table = pq.read_table(tmp_path / "set" / "manifest.parquet")
    no_val = table.filter(pa.compute.not_equal(table.column("split"), "val"))
    pq.write_table(no_val, tmp_path / "set" / "manifest.parquet")
    with pytest.raises(ValueError, match=r"manifest.parquet: the 'val' split is empty"):
        training_clip_sets(_cfg(tmp_path / "set" / "manifest.parquet"))


def test_the_validation_split_key_takes_only_a_split_name():
    with pytest.raises(ConfigError, match="train.val_split"):
        load_config("tiny", ["train.val_split=holdout"])


def test_the_demo_writes_a_separate_validation_set_once(tmp_path):
    from orchestrator.cli.demo import ensure_demo_data

    small = dict(n=6, min_duration_s=1.0, max_duration_s=1.0, fps=12.5, size=32)
    cfg = _cfg(tmp_path / "train" / "manifest.parquet", f"train.val_manifest={tmp_path / 'val' / 'manifest.parquet'}",
               "train.val_clips=100", *[f"data.synth.{k}={v}" for k, v in small.items()],
               *[f"data.val_synth.{k}={v}" for k, v in {**small, "n": 4, "seed": 9}.items()])
    said = []
    lines = ensure_demo_data(cfg, progress=False, say=said.append)
    assert said == lines and len(lines) == 2 and "generating the validation set (4 clips, seed 9)" in lines[1]
    got = training_clip_sets(cfg)
    assert got.val_ids == [f"ss9-{i:06d}" for i in range(4)] and got.train_ids == _split(tmp_path / "train" / "manifest.parquet", "train")
    assert all(line.startswith("[1/3] reusing") for line in ensure_demo_data(cfg, progress=False, say=said.append))
    same_seed = _cfg(tmp_path / "t2" / "manifest.parquet", f"train.val_manifest={tmp_path / 'v2' / 'manifest.parquet'}",
                     "data.synth.seed=3", "data.val_synth.seed=3")
    with pytest.raises(ValueError, match="data.val_synth.seed = 3 is data.synth.seed"):
        ensure_demo_data(same_seed, progress=False, say=said.append)
    assert not (tmp_path / "t2").exists()
