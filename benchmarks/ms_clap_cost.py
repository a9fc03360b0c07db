"""CPU cost of the ms_clap semantic teacher at full size, random weights (a real checkpoint costs the same).

Run: HF_HUB_OFFLINE=1 .venv/bin/python -m benchmarks.ms_clap_cost [threads] [batch]
Times one grading batch the way the backend does it: fit each stereo 10 s clip (given at 44.1 kHz and
at 16 kHz) to 7 s mono at 44.1 kHz, HTS-AT + projection on the batch; GPT-2 + projection on one
77-token caption. Reports wall and process CPU seconds per clip (median of 3 runs after a warm-up).
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np
import torch

from rewards.models.ms_clap import MsClapArch, MsClapModel, fit_clip_audio


def timed(fn, runs=3):
    fn()  # warm-up
    walls, cpus = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main():
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    arch = MsClapArch()
    model = MsClapModel(arch).eval()
    build_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    print(f"load avg {os.getloadavg()[0]:.1f}; torch threads {threads}; batch {batch}; build {build_s:.1f} s "
          f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M params)")
    for rate in (44100, 16000):
        clips = [(0.1 * rng.standard_normal((2, 10 * rate))).astype(np.float32) for _ in range(batch)]

        def grade_audio():
            waves = [fit_clip_audio(c, rate, arch.sample_rate, arch.clip_samples, "mono", "x", "m") for c in clips]
            with torch.no_grad():
                model.audio_encoder(torch.from_numpy(np.stack(waves)))

        wall, cpu = timed(grade_audio)
        print(f"audio, 10 s stereo at {rate} Hz -> 7 s mono 44.1 kHz: {wall / batch:.3f} s wall, "
              f"{cpu / batch:.3f} s CPU per clip")
    ids = torch.randint(1, arch.text_vocab, (1, arch.text_len))
    mask = torch.ones_like(ids)

    def text():
        with torch.no_grad():
            model.caption_encoder(ids, mask)

    wall, cpu = timed(text)
    print(f"text, one 77-token caption: {wall:.3f} s wall, {cpu:.3f} s CPU")


if __name__ == "__main__":
    main()
