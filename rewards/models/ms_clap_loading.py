"""MS-CLAP (pip `msclap`, Microsoft CLAP 2022/2023) from a local weights file.

msclap imports torchaudio at module level and pins transformers<5, so it usually lives in its own
environment (a Ray runtime_env for the semantic pool). Everything here imports it lazily and turns
each way it can be missing into a TeacherError that says what to install.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from rewards.base import TeacherError

MSCLAP_INSTALL = ('pip install "msclap==1.3.4" torchaudio  (torchaudio built for the installed torch; msclap '
                  'pins transformers<5, pandas<3, librosa<0.11, so give the semantic pool its own environment)')
"""What to install for the ms_clap backend."""

MSCLAP_VERSIONS: tuple[str, ...] = ("2022", "2023")
"""msclap model versions with an audio-text CLAP (clapcap is a captioner)."""


def import_msclap(owner: str):
    """msclap's `CLAP` wrapper class; a TeacherError naming every missing piece when it cannot be imported."""
    problems = []
    if importlib.util.find_spec("msclap") is None:
        problems.append("the msclap package is not installed")
    try:
        import torchaudio  # noqa: F401
    except Exception as err:
        problems.append(f"msclap needs torchaudio, which failed to import: {type(err).__name__}: {err}")
    if not problems:
        try:
            from msclap import CLAP

            return CLAP
        except Exception as err:
            problems.append(f"msclap failed to import: {type(err).__name__}: {err}")
    raise TeacherError(f"{owner}: cannot use MS-CLAP: {'; '.join(problems)}. Install: {MSCLAP_INSTALL}")


@dataclass
class MsClap:
    """A loaded msclap wrapper and the audio format its config asks for."""

    wrapper: Any
    """msclap's CLAPWrapper (`.clap` is the torch module, `.args` the config)."""
    device: torch.device
    """Where the model runs."""

    @property
    def sample_rate(self) -> int:
        """Audio rate of the config (44 100 Hz for 2023)."""
        return int(self.wrapper.args.sampling_rate)

    @property
    def clip_samples(self) -> int:
        """Samples of one model input (7 s at 44.1 kHz for 2023)."""
        return int(self.wrapper.args.duration * self.wrapper.args.sampling_rate)

    @property
    def logit_scale(self) -> float:
        """The learned log temperature (the score multiplies the cosine by exp of it)."""
        return float(self.wrapper.clap.logit_scale.detach().float().cpu())


def load_ms_clap(path: str, version: str, device: torch.device, owner: str) -> MsClap:
    """msclap's CLAP for `version` with weights from the local file `path` (nothing is downloaded)."""
    if version not in MSCLAP_VERSIONS:
        raise TeacherError(f"{owner}: option version='{version}' is not one of {', '.join(MSCLAP_VERSIONS)}")
    clap_cls = import_msclap(owner)
    try:
        wrapper = clap_cls(model_fp=path, version=version, use_cuda=device.type == "cuda")
    except OSError as err:  # the text encoder (gpt2 / bert) is fetched by name from the HF cache
        raise TeacherError(f"{owner}: msclap could not build its text encoder from the Hugging Face cache: {err}. "
                           "On a connected machine run `huggingface-cli download gpt2` (2023; bert-base-uncased "
                           "for 2022) and copy the cache to this machine's HF_HOME.") from err
    n = len(wrapper.tokenizer)
    if n < 1000:
        raise TeacherError(f"{owner}: msclap's tokenizer '{wrapper.args.text_model}' has only {n} tokens "
                           "(an empty offline stand-in); put its files in the Hugging Face cache first")
    wrapper.clap.to(device).eval()
    return MsClap(wrapper=wrapper, device=device)


@torch.no_grad()
def embed_texts(ms: MsClap, texts: Sequence[str]) -> np.ndarray:
    """Text embeddings `[B, D]` (not normalised) through msclap's own tokenizer and caption encoder."""
    return ms.wrapper.get_text_embeddings(list(texts)).float().cpu().numpy()


@torch.no_grad()
def embed_audio(ms: MsClap, waves: Sequence[np.ndarray]) -> np.ndarray:
    """Audio embeddings `[B, D]` (not normalised) of mono waveforms of exactly `clip_samples` samples."""
    x = torch.from_numpy(np.stack([np.asarray(w, dtype=np.float32) for w in waves])).to(ms.device)
    return ms.wrapper.clap.audio_encoder(x)[0].float().cpu().numpy()
