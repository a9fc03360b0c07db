"""PrismAudio's `text_features`: the T5-Gemma encoder's last hidden state on the clip's CoT text.

As the reference's `FeaturesUtils.encode_t5_text`: `AutoTokenizer` and
`AutoModelForSeq2SeqLM(...).get_encoder()` of `google/t5gemma-l-l-ul2-it`, the tokenizer's own
special tokens, no truncation, one text at a time (so no padding), float32: `[L, 1024]`. Only a
local directory is read (`local_files_only`); nothing is downloaded. When the installed
`transformers` has no T5-Gemma, `t5gemma_unavailable()` says so and the text features must come
from the reference's extractor.
"""
from __future__ import annotations

import os

import numpy as np

REFERENCE_HINT = (
    "text_features must come from the reference's extractor (FunAudioLLM/ThinkSound, branch prismaudio, "
    "data_utils/prismaudio_data_process.py); merge its .npz files with merge_from=DIR"
)


def t5gemma_unavailable() -> str | None:
    """Why T5-Gemma cannot run here (None when the installed transformers has it)."""
    try:
        import transformers
    except ImportError:
        return "the transformers package is not installed"
    if not hasattr(transformers, "T5GemmaForConditionalGeneration"):
        return f"transformers {transformers.__version__} has no T5-Gemma (T5GemmaForConditionalGeneration)"
    return None


class T5GemmaText:
    """The T5-Gemma encoder of a local checkpoint directory, text -> `[L, D]` float32."""

    def __init__(self, path: str, device: str = "cpu"):
        reason = t5gemma_unavailable()
        if reason:
            raise RuntimeError(f"t5gemma={path}: {reason}; {REFERENCE_HINT}")
        if not os.path.isdir(path):
            raise FileNotFoundError(f"t5gemma={path}: not a local directory (a T5-Gemma checkpoint saved by transformers)")
        import torch
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        if type(model).__name__ != "T5GemmaForConditionalGeneration":
            raise ValueError(f"t5gemma={path}: holds a {type(model).__name__}, not a T5-Gemma checkpoint")
        self.encoder = model.get_encoder().to(device).eval()
        self.device = torch.device(device)
        self._torch = torch

    def __call__(self, text: str) -> np.ndarray:
        """Encoder features `[L, D]` of one text."""
        inputs = self.tokenizer([text], padding=True, truncation=False, return_tensors="pt").to(self.device)
        with self._torch.inference_mode():
            hidden = self.encoder(**inputs).last_hidden_state
        return hidden[0].float().cpu().numpy()
