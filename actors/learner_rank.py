"""One data-parallel rank of the learner group: a Ray actor holding a DeepSpeed ZeRO engine.

Every rank builds the same model (same seed, same initial state), a frozen reference copy of it,
and a DeepSpeed engine with a torch optimizer, AdamW or SGD (DeepSpeed's own optimizers JIT-compile for ~35 s).
Rank 0 also keeps the EMA of the weights. Methods marked *collective* must be called on every
rank at once (the group handle does that); the others are local.
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
import socket
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import ray
import torch
from ray.exceptions import GetTimeoutError
from torch import nn

from actors.config import LearnerConfig
from actors.ema import EMA
from actors.experience import TransitionBatch, concat, draw_blocks, micro_batch_plan
from actors.experience_builder import GroupExperience
from actors.lost_objects import InputsLost, first_line, is_lost
from actors.optimizer import build_optimizer
from actors.shm_buffers import remove_shm_buffers
from policies.trainable import optimizer_groups, plain_state_dict, reference_of

LossFn = Callable[[nn.Module, nn.Module, TransitionBatch], tuple[torch.Tensor, dict[str, float]]]
"""(model, ref_model, batch) -> (scalar loss, metrics of python floats)."""

CHECKPOINT_TAG = "learner"
CURRENT_WEIGHTS = "weights.safetensors"
"""File (rank 0, in a learner checkpoint) of the full fp32 weights in the plain policy's names."""
CLIENT_STATE_KEY = "prismrl_client_state"
"""Key under which the caller's client_state rides in DeepSpeed's checkpoint."""
"""DeepSpeed tag (sub-directory) of the engine's files inside a learner checkpoint."""
SUMMED_LOSS_TIMINGS = ("ref_forward_s",)
"""Loss metrics that are seconds: summed over the step's micro steps and reported as `time/<name>`
(not averaged over rows like the other loss metrics)."""


def deepspeed_config(cfg: LearnerConfig, max_grad_norm: float, micro_batch: int, num_params: int) -> dict:
    """The DeepSpeed config of a learner: ZeRO stage, gradient clipping, bf16 or fp32.

    One optimizer step per micro-batch (gradient_accumulation_steps=1). Bucket sizes are capped
    by the model size so a small model on the CPU does not allocate DeepSpeed's 500M-element
    default buffers."""
    bucket = int(min(5e8, max(1 << 20, num_params)))
    zero: dict[str, Any] = {
        "stage": cfg.zero_stage,
        "reduce_bucket_size": bucket,
        "allgather_bucket_size": bucket,
        "overlap_comm": False,
        "contiguous_gradients": True,
    }
    if cfg.zero_stage == 3:
        zero.update(
            stage3_param_persistence_threshold=cfg.zero3_param_persistence_threshold,
            stage3_prefetch_bucket_size=bucket,
            stage3_max_live_parameters=max(bucket, 1 << 24),
            stage3_max_reuse_distance=max(bucket, 1 << 24),
        )
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        "gradient_clipping": float(max_grad_norm),
        "zero_optimization": zero,
        "zero_allow_untested_optimizer": True,  # ZeRO partitions any torch optimizer's state (grpo.optimizer=sgd)
        "bf16": {"enabled": cfg.dtype == "bf16"},
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }


def import_deepspeed():
    """`import deepspeed`, without the MLflow import it would otherwise make: DeepSpeed's autotuner
    (imported with the package) probes for `mlflow` at import time, which costs every learner rank
    ~1.5 s of CPU at start-up, and the ranks never autotune (nor log to MLflow: the controller does).
    A process that already imported MLflow, or imports it later, gets it as usual."""
    if "deepspeed" in sys.modules or "mlflow" in sys.modules:
        import deepspeed

        return deepspeed
    sys.modules["mlflow"] = None  # the autotuner's `import mlflow` fails: it runs without MLflow
    try:
        import deepspeed
    finally:
        if sys.modules.get("mlflow", 0) is None:
            del sys.modules["mlflow"]
    return deepspeed


class _LossHead(nn.Module):
    """What the DeepSpeed engine wraps: forward(batch) = loss_fn(model, reference, batch).

    Going through the engine's forward lets ZeRO-3 gather parameters with its module hooks even
    when loss_fn calls model methods other than forward. The reference is kept out of the module
    tree so DeepSpeed neither trains nor partitions it."""

    def __init__(self, model: nn.Module, reference: nn.Module, loss_fn: LossFn):
        super().__init__()
        self.model = model
        self._reference = [reference]
        self._loss_fn = loss_fn

    def forward(self, batch: TransitionBatch):
        return self._loss_fn(self.model, self._reference[0], batch)


def shuffle_seed(seed: int, step: int, rank: int, epoch: int) -> int:
    """Seed of the minibatch shuffle of one rank, step and inner epoch (so a resumed run shuffles
    exactly as the original would have)."""
    return (seed * 1_000_003 + step * 10_007 + rank * 101 + epoch) % (2**63 - 1)


class LearnerRank:
    """One rank; created by `LearnerGroup` inside its placement group (see learner_group.py)."""

    def __init__(self, rank: int, world_size: int, cfg: LearnerConfig, grpo, model_factory, loss_fn: LossFn, seed: int):
        self.rank, self.world_size, self.cfg, self.grpo = rank, world_size, cfg, grpo
        self.model_factory, self.loss_fn, self.seed = model_factory, loss_fn, seed
        self.engine = None
        self.version = 0
        torch.set_num_threads(cfg.torch_threads)

    # ----- set-up (local, then collective) -------------------------------------------------
    def node_address(self) -> str:
        """This rank's node IP (rank 0's is the rendezvous address)."""
        return ray.util.get_node_ip_address()

    def free_port(self) -> int:
        """A TCP port free on this node right now (rank 0 picks MASTER_PORT with it)."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("", 0))
            return int(s.getsockname()[1])

    def setup(self, master_addr: str, master_port: int, local_rank: int, local_size: int, initial_state) -> dict:
        """*Collective.* Join the process group, build model, reference, engine (and EMA on rank 0)."""
        clock = time.perf_counter()
        deepspeed = import_deepspeed()

        timings = {"import_deepspeed_s": time.perf_counter() - clock}
        use_gpu = self.cfg.num_gpus > 0
        backend = resolve_backend(self.cfg.backend, use_gpu)
        os.environ.update(
            MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size), LOCAL_SIZE=str(local_size),
            # Ray gives each GPU rank only its own device(s), so its device index is 0.
            LOCAL_RANK="0" if use_gpu else str(local_rank),
        )
        clock = time.perf_counter()
        deepspeed.init_distributed(dist_backend=backend, auto_mpi_discovery=False, rank=self.rank, world_size=self.world_size)
        timings["init_distributed_s"] = time.perf_counter() - clock

        torch.manual_seed(self.seed)
        model = self.model_factory()
        if initial_state is not None:
            model.load_state_dict(initial_state)
        self.device = torch.device("cuda", torch.cuda.current_device()) if use_gpu else torch.device("cpu")
        self.dtype = torch.bfloat16 if self.cfg.dtype == "bf16" else torch.float32
        # A LoRA policy's reference is itself with the adapters disabled (no second copy); others get a frozen copy.
        reference = reference_of(model)
        if reference is None:
            reference = copy.deepcopy(model).to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self.reference = reference
        self._state_keys = list(model.state_dict().keys())
        num_params = sum(p.numel() for p in model.parameters())

        head = _LossHead(model, reference, self.loss_fn)
        if self.cfg.zero_stage == 3:
            for p in model.parameters(recurse=False):
                deepspeed.zero.register_external_parameter(head, p)
        # model's trainable parameters are head's (the reference sits outside the module tree)
        groups = optimizer_groups(model, self.grpo.lr, self.grpo.full_weight_lr_scale)
        optimizer = build_optimizer(groups, self.grpo.optimizer, self.grpo.lr, self.grpo.weight_decay, self.grpo.momentum)
        ds_cfg = deepspeed_config(self.cfg, self.grpo.max_grad_norm, self.grpo.minibatch_size, num_params)
        clock = time.perf_counter()
        self.engine, *_ = deepspeed.initialize(model=head, optimizer=optimizer, config=ds_cfg)
        timings["initialize_s"] = time.perf_counter() - clock
        self.model = self.engine.module.model
        torch.manual_seed(self.seed + 7919 * (self.rank + 1))  # per-rank stream for model-internal noise
        full = self.full_state_dict()  # collective
        self.ema = EMA(full, self.grpo.ema_decay) if self.rank == 0 else None
        return {"rank": self.rank, "backend": backend, "device": str(self.device), "num_params": num_params,
                "timings": timings}

    # ----- training (collective) -----------------------------------------------------------
    def train_step(self, refs: list, step: int) -> dict[str, float]:
        """*Collective.* Fetch this rank's experience (`GroupExperience` items, or refs of row batches), run inner_epochs passes of
        micro-batches (one optimizer step each), update the EMA; return this rank's mean metrics and
        the seconds spent over all micro steps (padding ones included) in `time/forward_s` (the
        engine's forward: the loss, with the reference forward, itself also in `time/ref_forward_s`),
        `time/backward_s` (with the gradient reduction across ranks) and `time/step_s` (optimizer), and the
        seconds of fetching the rows (`time/fetch_s`), of the EMA update (`time/ema_s`) and of the whole
        call (`time/rank_step_s`).

        All ranks take the same number of micro steps: ceil(max rows over ranks / minibatch_size),
        agreed with an all-reduce; each rank cuts its rows into that many near-equal chunks, and a
        rank short of rows pads with zero-weight chunks (see `micro_batch_plan`). Gradients are
        averaged over ranks, so in a padded micro step the real gradient counts (real ranks / N).
        The shuffle is seeded by (seed, step, rank, epoch): a resumed run repeats it exactly."""
        import torch.distributed as dist

        if not refs:
            raise ValueError(f"learner rank {self.rank}: train_step {step} got no experience refs")
        started = clock = time.perf_counter()
        batch, lost = self._fetch(refs, step)
        fetch_s = time.perf_counter() - clock
        # One all-reduce agrees on the rows and on whether any rank lost its experience: then every
        # rank gives the step up before touching the engine, so none is left waiting in a collective.
        agreed = torch.tensor([len(batch) if batch is not None else 0, int(lost is not None)], dtype=torch.long,
                              device=self._comm_device())
        dist.all_reduce(agreed, op=dist.ReduceOp.MAX)
        if int(agreed[1].item()):
            raise InputsLost(lost or f"learner rank {self.rank}: another rank lost its experience of step {step}")
        count = max(1, math.ceil(int(agreed[0].item()) / self.grpo.minibatch_size))
        sums: dict[str, float] = {}
        seconds = {"forward_s": 0.0, "backward_s": 0.0, "step_s": 0.0, **{k: 0.0 for k in SUMMED_LOSS_TIMINGS}}
        weight_total = 0.0
        grad_norms = []
        self.engine.train()
        blocks = draw_blocks(batch) if self.grpo.micro_batches == "draws" else None
        for epoch in range(self.grpo.inner_epochs):
            gen = torch.Generator().manual_seed(shuffle_seed(self.seed, step, self.rank, epoch))
            for micro, weight in micro_batch_plan(batch, count, gen, blocks):
                clock = self._clock()
                loss, metrics = self.engine(micro)
                seconds["forward_s"] += self._clock() - clock
                clock = self._clock()
                self.engine.backward(loss * weight)
                seconds["backward_s"] += self._clock() - clock
                clock = self._clock()
                self.engine.step()
                seconds["step_s"] += self._clock() - clock
                for k in SUMMED_LOSS_TIMINGS:
                    seconds[k] += float(metrics.pop(k, 0.0))
                grad_norms.append(_as_float(self.engine.get_global_grad_norm()))
                if weight > 0:
                    for k, v in metrics.items():
                        sums[k] = sums.get(k, 0.0) + float(v) * len(micro)
                    weight_total += len(micro)
        clock = self._clock()
        self.ema_update()
        ema_s = self._clock() - clock
        self.version += 1
        out = {k: v / weight_total for k, v in sums.items()}
        out.update(rows=float(len(batch)), micro_steps=float(count * self.grpo.inner_epochs),
                   grad_norm=float(np.nanmean(grad_norms)) if grad_norms else float("nan"))
        out.update({f"time/{k}": v for k, v in seconds.items()})
        out.update({"time/fetch_s": fetch_s, "time/ema_s": ema_s, "time/rank_step_s": time.perf_counter() - started})
        return out

    def _clock(self) -> float:
        """time.perf_counter(), after the GPU's queued work has finished (so it is counted where it was launched)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _fetch(self, refs: list, step: int) -> tuple[Optional[TransitionBatch], Optional[str]]:
        """This rank's experience (`fetch_rows`), or (None, why) when Ray lost it (its node died) or it did not arrive
        within `learner.experience_timeout_s`. Any other error (a bad row) is raised as it is."""
        try:
            return concat(fetch_rows(list(refs), self.cfg.experience_timeout_s)).to(self.device, self.dtype), None
        except GetTimeoutError as e:
            return None, (f"learner rank {self.rank}: experience of step {step} not fetched within "
                          f"learner.experience_timeout_s={self.cfg.experience_timeout_s:g} s ({first_line(e)})")
        except Exception as e:
            if not is_lost(e):
                raise
            return None, f"learner rank {self.rank}: experience of step {step} lost ({first_line(e)})"

    def ema_update(self) -> None:
        """*Collective* (the fp32 weights are assembled from all ranks): fold them into rank 0's EMA."""
        full = self.full_state_dict()
        if self.ema is not None:
            self.ema.update(full)

    # ----- weights ---------------------------------------------------------------------------
    def full_state_dict(self) -> dict[str, torch.Tensor]:
        """*Collective.* The whole model as a float32 CPU state_dict on every rank: the optimizer's
        fp32 master weights (ZeRO-1/2/3: assembled from the partitions), buffers as they are; a LoRA
        model's adapters merged into their base weights, under the plain policy's names."""
        from deepspeed.utils import safe_get_full_fp32_param
        import deepspeed

        out: dict[str, torch.Tensor] = {}
        keys = set(self._state_keys)
        for name, p in self.model.named_parameters():
            full = safe_get_full_fp32_param(p) if p.requires_grad else None
            if full is None:  # frozen parameter: not in the optimizer
                with deepspeed.zero.GatheredParameters([p], enabled=hasattr(p, "ds_id")):
                    full = p.detach().clone()
            if name in keys:
                out[name] = full.detach().float().cpu().clone()
        for name, b in self.model.named_buffers():
            if name in keys:
                out[name] = b.detach().cpu().clone()
        return plain_state_dict(self.model, out)  # LoRA adapters merged: the plain policy's names

    def publish_weights(self) -> Optional[dict[str, torch.Tensor]]:
        """*Collective.* Rank 0 returns the full fp32 state_dict (its return value goes to the
        object store, owned by the caller); the other ranks only help assemble it and return None."""
        full = self.full_state_dict()
        return full if self.rank == 0 else None

    def ema_state_dict(self) -> dict[str, torch.Tensor]:
        """Rank 0 only: the EMA weights (float32 CPU)."""
        if self.ema is None:
            raise RuntimeError(f"learner rank {self.rank} holds no EMA (only rank 0 does)")
        return self.ema.state_dict()

    def local_view(self) -> dict[str, Any]:
        """For inspection: this rank's module weights as it holds them (ZeRO-3: its partitions),
        and the number of optimizer-state elements it holds."""
        params = {}
        for name, p in self.model.named_parameters():
            local = getattr(p, "ds_tensor", p)
            params[name] = local.detach().float().cpu().clone()
        opt = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        state_numel = sum(t.numel() for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.ndim > 0)
        return {"params": params, "optimizer_state_numel": int(state_numel), "version": self.version}

    # ----- checkpoints (collective) ------------------------------------------------------------
    def save_checkpoint(self, directory: str, client_state: dict) -> None:
        """*Collective.* Write the engine (model, optimizer, ZeRO partitions of every rank), this
        rank's RNG states, and on rank 0 the EMA, the current full weights (`CURRENT_WEIGHTS`), the
        reference and learner metadata."""
        import torch.distributed as dist
        from safetensors.torch import save_file

        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        self.engine.save_checkpoint(str(path), tag=CHECKPOINT_TAG, client_state={CLIENT_STATE_KEY: dict(client_state)}, save_latest=False)
        torch.save(_rng_state(), path / f"rng_rank{self.rank}.pt")
        current = self.full_state_dict()  # collective; the plain fp32 weights, for `prismrl export --weights current`
        if self.rank == 0:
            save_file(_contiguous(self.ema.state_dict()), str(path / "ema.safetensors"))
            save_file(_contiguous(current), str(path / CURRENT_WEIGHTS))
            if isinstance(self.reference, nn.Module):  # a LoRA reference is the engine's own base weights
                save_file(_contiguous(self.reference.state_dict()), str(path / "reference.safetensors"))
            meta = {"version": self.version, "num_ranks": self.world_size, "zero_stage": self.cfg.zero_stage,
                    "ema_updates": self.ema.num_updates, "seed": self.seed}
            (path / "learner.json").write_text(json.dumps(meta, indent=1))
        dist.barrier()

    def load_checkpoint(self, directory: str) -> dict:
        """*Collective.* Restore everything `save_checkpoint` wrote; returns the client_state."""
        from safetensors.torch import load_file

        path = Path(directory)
        meta_file = path / "learner.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"learner checkpoint {path}: missing {meta_file.name}")
        meta = json.loads(meta_file.read_text())
        if meta["num_ranks"] != self.world_size or meta["zero_stage"] != self.cfg.zero_stage:
            raise ValueError(
                f"learner checkpoint {path} was written by {meta['num_ranks']} ranks at ZeRO-{meta['zero_stage']}; "
                f"this group has {self.world_size} ranks at ZeRO-{self.cfg.zero_stage}"
            )
        loaded, client_state = self.engine.load_checkpoint(
            str(path), tag=CHECKPOINT_TAG, load_optimizer_states=True, load_lr_scheduler_states=True
        )
        if loaded is None:
            raise FileNotFoundError(f"learner checkpoint {path}: DeepSpeed found no engine files under '{CHECKPOINT_TAG}'")
        if isinstance(self.reference, nn.Module):
            reference = load_file(str(path / "reference.safetensors"))
            self.reference.load_state_dict({k: v.to(self.device) for k, v in reference.items()})
        if self.rank == 0:
            self.ema.load_state_dict(load_file(str(path / "ema.safetensors")), meta["ema_updates"])
        _set_rng_state(torch.load(path / f"rng_rank{self.rank}.pt", weights_only=True))
        self.version = int(meta["version"])
        self.seed = int(meta["seed"])  # minibatch shuffles continue the saved run's sequence
        return (client_state or {}).get(CLIENT_STATE_KEY, {})

    def close(self) -> None:
        """*Collective.* Barrier, then leave the process group (so no rank aborts at exit), and
        remove this rank's DeepSpeed shared-memory buffer (actors/shm_buffers.py)."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
        env = os.environ
        if "MASTER_ADDR" in env and "MASTER_PORT" in env and "LOCAL_RANK" in env:
            remove_shm_buffers(env["MASTER_ADDR"], int(env["MASTER_PORT"]), int(env["LOCAL_RANK"]))

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")


def fetch_rows(items: list, timeout_s: float) -> list:
    """The row batches of `items`, each a `GroupExperience` (its payload fetched, its rows assembled
    here) or an ObjectRef of an assembled row batch; one `ray.get` for all of them."""
    refs = [it.payload if isinstance(it, GroupExperience) else it for it in items]
    values = ray.get(refs, timeout=timeout_s)
    return [it.rows(v) if isinstance(it, GroupExperience) else v for it, v in zip(items, values)]


def resolve_backend(backend: str, use_gpu: bool) -> str:
    """`auto` -> nccl when the rank has GPUs, else gloo; refuses nccl without GPUs."""
    if backend == "auto":
        return "nccl" if use_gpu else "gloo"
    if backend == "nccl" and not use_gpu:
        raise ValueError("learner.backend=nccl needs GPUs (learner.num_gpus > 0); use gloo or auto on the CPU")
    if backend not in ("gloo", "nccl"):
        raise ValueError(f"learner.backend must be auto, gloo or nccl, got {backend!r}")
    return backend


def _as_float(x) -> float:
    if x is None:
        return float("nan")
    return float(x.item() if torch.is_tensor(x) else x)


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}


def _rng_state() -> dict:
    """torch (CPU and CUDA), numpy and python RNG states as tensors and plain values
    (loadable with torch.load(weights_only=True))."""
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy_keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
        "numpy_meta": [np_kind, int(np_pos), int(np_has_gauss), float(np_gauss)],
        "python": list(random.getstate()[1]),
        "python_meta": [random.getstate()[0], random.getstate()[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, pos, has_gauss, gauss = state["numpy_meta"]
    np.random.set_state((kind, state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, gauss_next = state["python_meta"]
    random.setstate((version, tuple(state["python"]), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
