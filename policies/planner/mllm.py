"""The `mllm` planner: a transformers causal language model from a local directory writes the plan.

The model reads a text prompt (template.py) holding a per-frame visual summary of the video
(frame_text.py), so any text-only causal LM works (a fine-tuned one writes useful plans; a random
one exercises the plumbing). Generation is greedy and batched with left padding; the prompt is cut
from the left when it would not leave `max_new_tokens` of context. Nothing is downloaded: the
directory must hold the model and tokenizer (`save_pretrained` layout).
"""
from __future__ import annotations

import os
from typing import Sequence

import torch

from policies.planner.base import Planner, Video, check_video, complete_plan, resolve_device
from policies.planner.config import PlannerConfig
from policies.planner.frame_text import summarize_frames
from policies.planner.template import DEFAULT_TEMPLATE, open_module, parse_modules, render_prompt


class MllmPlanner(Planner):
    """Prompted causal LM (`planner.backend=mllm`)."""

    name = "mllm"

    def __init__(self, cfg: PlannerConfig):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = cfg.mllm_path
        if not path:
            raise ValueError("planner.mllm_path: the mllm planner needs a local model directory")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"planner.mllm_path: {path} is not a directory (nothing is downloaded)")
        self.cfg = cfg
        self.template = cfg.prompt_template or DEFAULT_TEMPLATE
        render_prompt(self.template, "")  # fail now on a template without {frames}
        self.first_module = open_module(self.template)
        self.device = resolve_device(cfg.device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).to(self.device).eval()
        except OSError as e:
            raise FileNotFoundError(f"planner.mllm_path: cannot load a causal LM and tokenizer from {path}: {e}") from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            if self.tokenizer.eos_token_id is None:
                raise ValueError(f"planner.mllm_path: the tokenizer in {path} has neither a pad nor an eos token")
            self.tokenizer.pad_token = self.tokenizer.eos_token
        limit = getattr(self.model.config, "max_position_embeddings", None) or getattr(
            self.model.config, "n_positions", None) or 2048
        self.max_prompt_tokens = int(limit) - cfg.max_new_tokens
        if self.max_prompt_tokens < 16:
            raise ValueError(
                f"planner.max_new_tokens={cfg.max_new_tokens} leaves {self.max_prompt_tokens} prompt tokens "
                f"of the model's {limit}-token context")

    def prompt(self, frames, fps: float) -> str:
        """The full prompt for one video."""
        return render_prompt(self.template, summarize_frames(frames, fps, self.cfg.max_frames))

    @torch.no_grad()
    def generate_text(self, prompts: Sequence[str]) -> list[str]:
        """Greedy continuations (new tokens only, decoded) of a batch of prompts."""
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        ids, mask = enc["input_ids"], enc["attention_mask"]
        if ids.shape[1] > self.max_prompt_tokens:  # left padding: the prompt tails are aligned at the right
            ids, mask = ids[:, -self.max_prompt_tokens :], mask[:, -self.max_prompt_tokens :]
        out = self.model.generate(
            input_ids=ids.to(self.device), attention_mask=mask.to(self.device), max_new_tokens=self.cfg.max_new_tokens,
            do_sample=False, pad_token_id=self.tokenizer.pad_token_id,
        )
        return self.tokenizer.batch_decode(out[:, ids.shape[1] :], skip_special_tokens=True)

    def plan_with_text(self, videos: Sequence[Video]) -> list[tuple[dict[str, str], str]]:
        """(plan, raw generated text) per video."""
        for i, (frames, fps) in enumerate(videos):
            check_video(frames, fps, f"video {i}")
        results = []
        for s in range(0, len(videos), max(1, self.cfg.batch_size)):
            chunk = videos[s : s + max(1, self.cfg.batch_size)]
            texts = self.generate_text([self.prompt(f, fps) for f, fps in chunk])
            results += [(complete_plan(parse_modules(t, self.first_module)), t) for t in texts]
        return results

    def plan_batch(self, videos: Sequence[Video]) -> list[dict[str, str]]:
        return [plan for plan, _ in self.plan_with_text(videos)]
