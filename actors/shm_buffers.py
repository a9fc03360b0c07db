"""DeepSpeed's CPU all-reduce buffers in /dev/shm, and their removal.

On CPU, DeepSpeed's shared-memory comm op gives every rank a POSIX shared-memory buffer
(`/dev/shm/deepspeed_allreduce_buffer_<uid>_<master addr>_<master port>_<local rank>`, 66 MB each
for the demo policy) and never unlinks it. /dev/shm is RAM: on this project's 2-core machine a day
of runs left 15 GB there and Ray's memory monitor began killing workers. Each rank removes its own
buffer when it leaves the process group; the learner group sweeps whatever a killed rank left.
"""
from __future__ import annotations

import glob
import os

SHM_DIR = "/dev/shm"
"""Where POSIX shared memory lives on Linux."""
PREFIX = "deepspeed_allreduce_buffer"
"""DeepSpeed's name for the buffers (deepspeed/csrc/cpu/comm/shm.cpp)."""


def shm_buffers(master_addr: str, master_port: int, local_rank: int | None = None, shm_dir: str = SHM_DIR) -> list[str]:
    """Paths of the buffers of one process group (one local rank's, or all of them)."""
    rank = "*" if local_rank is None else str(int(local_rank))
    return sorted(glob.glob(os.path.join(shm_dir, f"{PREFIX}_*_{master_addr}_{int(master_port)}_{rank}")))


def remove_shm_buffers(master_addr: str, master_port: int, local_rank: int | None = None,
                       shm_dir: str = SHM_DIR) -> int:
    """Unlink the group's buffers on this node (mapped ones stay valid until unmapped). Returns how many."""
    removed = 0
    for path in shm_buffers(master_addr, master_port, local_rank, shm_dir):
        try:
            os.unlink(path)
            removed += 1
        except FileNotFoundError:
            pass
    return removed
