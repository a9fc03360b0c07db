"""`prismrl data synth|summary|annotate|features [CONFIG] [key=value ...]`: make a SynthScenes set,
describe a manifest, plan its clips, or cache PrismAudio's per-clip features.

  prismrl data synth [CONFIG] run_dir=DIR_OR_S3_URL n=512 seed=0 [key=value ...]
      Writes DIR/media/* and DIR/manifest.parquet. Short keys (n, seed, sample_rate, fps, size,
      min_duration_s, max_duration_s, duration_s (both), val_fraction, test_fraction,
      audio_format) mean data.synth.<key>; full dotted keys work too. Without run_dir the set
      goes next to data.manifest, so a later `prismrl train` with the same config finds it.
  prismrl data summary [CONFIG] data.manifest=PATH_OR_S3_URL
      Prints clip counts per split and class, durations and event statistics (manifest only).
  prismrl data annotate [CONFIG] data.manifest=PATH planner.backend=mllm planner.mllm_path=DIR
      Plans every clip with the configured planner (a Ray actor pool of planner.replicas) into
      plans.jsonl next to the manifest; a rerun skips the clips already planned.
  prismrl data features [CONFIG=prismaudio] data.manifest=PATH synchformer=synchformer_state_dict.pth
          [out_dir=features] [format=npz|safetensors] [merge_from=DIR] [t5gemma=DIR] [device=cpu]
          [precision=float32] [video_batch=4] [seconds=S] [out_manifest=PATH] [split=train] [recompute=true]
      Per clip, Synchformer's sync_features [216, 768] for 9 s (PrismRL's Synchformer, local checkpoint)
      and, with t5gemma=DIR, T5-Gemma text_features (transformers, local directory); video_features
      (VideoPrism, JAX) and otherwise the text come from the reference extractor's .npz files
      (merge_from=DIR, or the files features_path already names), whose entries are kept. Writes
      out_dir/<clip_id>.npz (or .safetensors) and sets the manifest's features_path column for every
      clip whose file is complete (rewrites the manifest unless out_manifest=...). A rerun reuses
      existing sync features. See orchestrator/data/features_job.py.
"""
from __future__ import annotations

import collections
import sys

import numpy as np

from orchestrator.config.load import load_config
from orchestrator.config.schema import PrismConfig
from orchestrator.data import storage
from orchestrator.data.config import SynthConfig
from orchestrator.data.manifest import ManifestError, from_parquet_bytes, validate_rows, validate_schema

SHORT_KEYS = {f: f"data.synth.{f}" for f in SynthConfig.__dataclass_fields__}
"""Short override keys of `data synth` and the config key each one sets."""
SHORT_KEYS["manifest"] = "data.manifest"


def expand_overrides(args: list[str]) -> tuple[str | None, list[str]]:
    """(preset or None, dotted overrides): short keys expanded, duration_s=X set as min and max."""
    preset, overrides = None, []
    for i, arg in enumerate(args):
        if "=" not in arg:
            if i == 0:
                preset = arg
                continue
            raise SystemExit(f"prismrl data: unexpected argument '{arg}': expected key=value")
        key, value = arg.split("=", 1)
        if key == "duration_s":
            overrides += [f"data.synth.min_duration_s={value}", f"data.synth.max_duration_s={value}"]
        else:
            overrides.append(f"{SHORT_KEYS.get(key, key)}={value}")
    return preset, overrides


def _config(args: list[str]) -> tuple[PrismConfig, bool]:
    """(config, whether run_dir was given)."""
    preset, overrides = expand_overrides(args)
    cfg = load_config(preset or "demo", overrides, command="data")
    return cfg, any(o.startswith("run_dir=") for o in overrides)


def synth(args: list[str]) -> int:
    """Generate a SynthScenes set; prints where the manifest went."""
    from orchestrator.data.synth import write_synthscenes

    cfg, has_run_dir = _config(args)
    out = cfg.run_dir if has_run_dir else storage.parent(cfg.data.manifest)
    try:
        manifest = write_synthscenes(out, cfg.data.synth, cfg.data.s3, progress=cfg.tracking.progress)
    except ValueError as e:
        print(f"prismrl data synth: {e}", file=sys.stderr)
        return 2
    print(f"wrote {cfg.data.synth.n} clips; manifest: {manifest}")
    print(f"use it with: data.manifest={manifest}")
    return 0


def summarize(table) -> str:
    """Counts per split and class, durations, events of a manifest table, as text."""
    rows = table.select(["split", "duration_s", "classes", "event_classes", "num_events"]).to_pylist()
    lines = [f"clips: {len(rows)}"]
    per_split = collections.Counter(r["split"] for r in rows)
    lines.append("per split: " + ", ".join(f"{s}={per_split[s]}" for s in ("train", "val", "test") if per_split[s]))
    dur = np.array([r["duration_s"] for r in rows]) if rows else np.zeros(1)
    lines.append(
        f"duration s: min {dur.min():.2f}, mean {dur.mean():.2f}, max {dur.max():.2f}, total {dur.sum() / 60:.1f} min"
    )
    events = np.array([r["num_events"] for r in rows]) if rows else np.zeros(1)
    lines.append(f"events per clip: mean {events.mean():.2f}, min {events.min()}, max {events.max()}, total {events.sum()}")
    clips_with = collections.Counter(c for r in rows for c in r["classes"])
    events_of = collections.Counter(c for r in rows for c in r["event_classes"])
    lines.append("class          clips  events")
    for name in sorted(clips_with):
        lines.append(f"  {name:<12} {clips_with[name]:>5}  {events_of[name]:>6}")
    return "\n".join(lines)


def summary(args: list[str]) -> int:
    """Print a manifest's summary."""
    cfg, _ = _config(args)
    path = cfg.data.manifest
    try:
        table = from_parquet_bytes(storage.read_bytes(path, cfg.data.s3), path)
        validate_schema(table, path)
        validate_rows(table, path)
    except FileNotFoundError:
        print(f"prismrl data summary: manifest {path} does not exist", file=sys.stderr)
        return 2
    except ManifestError as e:
        print(f"prismrl data summary: {e}", file=sys.stderr)
        return 2
    print(f"manifest: {path}")
    print(summarize(table))
    return 0


def annotate(args: list[str]) -> int:
    """Write plans for a manifest (see orchestrator.data.annotate_plans)."""
    from orchestrator.data.annotate_plans import annotate_manifest

    cfg, _ = _config(args)
    try:
        result = annotate_manifest(cfg)
    except (FileNotFoundError, ValueError) as e:
        print(f"prismrl data annotate: {e}", file=sys.stderr)
        return 2
    print(f"planned {result['planned']} clip(s), {result['already_done']} already done; plans: {result['plans']}")
    return 0


def features(args: list[str]) -> int:
    """Compute and merge cached PrismAudio features (see orchestrator.data.features_job)."""
    from orchestrator.data.features_job import option_fields, parse_options, run_feature_job
    from orchestrator.data.text_features import REFERENCE_HINT

    fields = option_fields()
    mine = [a for a in args if "=" in a and a.split("=", 1)[0] in fields]
    try:
        opts = parse_options(mine)
        preset, overrides = expand_overrides([a for a in args if a not in mine])
        cfg = load_config(preset or "prismaudio", overrides, command="data")
        result = run_feature_job(cfg, opts)
    except (ValueError, FileNotFoundError, RuntimeError) as e:  # bad clip, manifest, option, checkpoint
        print(f"prismrl data features: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(result.written)} feature file(s) ({result.rows} sync rows each; "
          f"{len(result.reused_sync)} reused existing sync features); manifest: {result.manifest}")
    if result.skipped:
        print(f"skipped {len(result.skipped)} bad clip(s): " + "; ".join(result.skipped.values()), file=sys.stderr)
    if result.incomplete:
        first = ", ".join(f"{c} ({'/'.join(k)})" for c, k in list(result.incomplete.items())[:5])
        print(f"{len(result.incomplete)} clip(s) still lack features, features_path left unset for them: {first}"
              f"{' ...' if len(result.incomplete) > 5 else ''}. video_features (VideoPrism) and, without "
              f"t5gemma=DIR, {REFERENCE_HINT}", file=sys.stderr)
    return 0


SUBCOMMANDS = {"synth": synth, "summary": summary, "annotate": annotate, "features": features}


def main(argv: list[str]) -> int:
    """Entry point of `prismrl data`."""
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print(__doc__.strip(), file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if any(a in ("-h", "--help") for a in argv[1:]):
        print(__doc__.strip())
        return 0
    return SUBCOMMANDS[argv[0]](argv[1:])
