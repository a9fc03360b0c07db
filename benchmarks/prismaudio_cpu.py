"""Full-size PrismAudio on the CPU: parameter counts, one velocity at 9 s shapes, peak memory.

    python -m benchmarks.prismaudio_cpu [--text-rows 77] [--repeats 1] [--vae]

Builds the 518M generator (DiT + conditioners) with random weights (the VAE only with --vae, so its
156M parameters are counted in the memory too), runs `repeats` velocity evaluations of a latent
[1, 64, 194] with video [36, 1024], text [text_rows, 1024] and sync [216, 768] features under
no_grad (with --vae also one VAE encode of 9 s of stereo and one decode of 194 frames), and prints
JSON: parameter counts, build, forward and VAE wall and CPU seconds, peak RSS.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch


def _clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def main(argv: list[str] | None = None) -> dict:
    """Run the measurement; returns (and prints) the figures."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.prismaudio_cpu")
    parser.add_argument("--text-rows", type=int, default=77)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--vae", action="store_true", help="also build the VAE (whole model in memory)")
    args = parser.parse_args(argv)

    from common.types import Clip
    from policies.config import PolicyConfig
    from policies.prismaudio.conditioners import MultiConditioner
    from policies.prismaudio.policy import DiTWrapper, Pretransform, PrismAudioPolicy, oobleck_config
    from policies.prismaudio.vae import OobleckVAE

    cfg = PolicyConfig(kind="prismaudio", sample_rate=44100)
    pa = cfg.prismaudio
    with torch.device("meta"):
        policy = PrismAudioPolicy(cfg)
    counts = {
        "dit_model.model": sum(p.numel() for p in policy.model.parameters()),
        "conditioners": sum(p.numel() for p in policy.conditioner.parameters()),
        "vae": sum(p.numel() for p in policy.pretransform.parameters()),
        "trained": sum(p.numel() for p in policy.parameters() if p.requires_grad),
    }
    counts["generator_without_vae"] = counts["dit_model.model"] + counts["conditioners"]
    counts["whole"] = counts["generator_without_vae"] + counts["vae"]
    torch.manual_seed(0)
    w0, c0 = _clocks()
    policy.model = DiTWrapper(pa)
    policy.conditioner = MultiConditioner(pa.video_dim, pa.text_dim, pa.sync_dim, pa.embed_dim)
    vae = OobleckVAE(oobleck_config(pa)).eval() if args.vae else None
    if vae is not None:
        policy.pretransform = Pretransform(vae)
    policy.eval()
    w1, c1 = _clocks()
    rng = np.random.default_rng(0)
    feats = {"video_features": rng.standard_normal((36, 1024), dtype=np.float32),
             "text_features": rng.standard_normal((args.text_rows, 1024), dtype=np.float32),
             "sync_features": rng.standard_normal((216, 768), dtype=np.float32)}
    clip = Clip("bench", "test", np.zeros((1, 8, 8, 3), np.uint8), 25.0, np.zeros((2, 8), np.float32), 44100, {},
                features=feats)
    times = []
    with torch.no_grad():
        cond = policy.encode_conditions(policy.prepare([clip]))
        x = torch.randn(1, 64, 194)
        for _ in range(max(1, args.repeats)):
            a = _clocks()
            v = policy.velocity(x, torch.tensor([0.5]), cond)
            b = _clocks()
            times.append((b[0] - a[0], b[1] - a[1]))
    vae_times = {}
    if vae is not None:  # 9 s of stereo in, 194 frames out
        with torch.no_grad():
            for name, fn, arg in (("vae_encode_9s", vae.encode, 0.1 * torch.randn(1, 2, 397_297)),
                                  ("vae_decode_194_frames", vae.decode, torch.randn(1, 64, 194))):
                a = _clocks()
                fn(arg)
                b = _clocks()
                vae_times[name] = {"wall_s": round(b[0] - a[0], 2), "cpu_s": round(b[1] - a[1], 2)}
    out = {
        "params": counts,
        "threads": torch.get_num_threads(),
        "build_wall_s": round(w1 - w0, 2), "build_cpu_s": round(c1 - c0, 2),
        "forward_wall_s": [round(t[0], 2) for t in times], "forward_cpu_s": [round(t[1], 2) for t in times],
        "velocity_finite": bool(torch.isfinite(v).all()),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "vae_in_memory": bool(args.vae),
        **vae_times,
    }
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
