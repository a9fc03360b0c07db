"""LAION-CLAP (pip `laion-clap`) built from the package's own classes and a local checkpoint.

The package's `CLAP_Module` is not used: it always fetches the roberta-base tokenizer from the hub
(transformers 5 offline then silently returns an empty 5-token tokenizer), its `load_ckpt` deletes
`text_branch.embeddings.position_ids` unconditionally, and its audio path crops at random. Here the
model comes from `laion_clap.clap_module.create_model` (architecture by name, or a JSON file in the
package's model-config format registered with `add_model_config`), the weights from
`torch.load(weights_only=True)`, and every tokenizer is checked against the model's vocabulary.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from rewards.base import TeacherError
from rewards.models.checkpoint_files import load_strict, load_weights_only, strip_prefix, unwrap_state_dict

log = logging.getLogger(__name__)

TEXT_MODELS: dict[str, str | None] = {
    "transformer": None,
    "roberta": "roberta-base",
    "bert": "bert-base-uncased",
    "bart": "facebook/bart-base",
}
"""laion_clap text branches and the Hugging Face model each one hard-codes (None: bundled CLIP BPE)."""

MIN_TOKENIZER_VOCAB = 1000
"""A tokenizer with fewer tokens than this is the empty stand-in transformers returns offline."""


@dataclass
class LaionClap:
    """A loaded LAION-CLAP model with what is needed to embed text and audio."""

    model: torch.nn.Module
    """laion_clap's `CLAP` module, in eval mode, on its device."""
    model_cfg: dict[str, Any]
    """The architecture config (`audio_cfg`, `text_cfg`, ...) it was built from."""
    tmodel: str
    """Text branch kind: a key of TEXT_MODELS."""
    tokenizer: Any
    """laion_clap's SimpleTokenizer (tmodel=transformer) or a transformers tokenizer."""
    enable_fusion: bool
    """Whether the audio branch is the feature-fusion variant (needs torchaudio for its mel input)."""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def sample_rate(self) -> int:
        """Audio rate the model expects (48 kHz for every released config)."""
        return int(self.model_cfg["audio_cfg"]["sample_rate"])

    @property
    def clip_samples(self) -> int:
        """Samples of one model input (480 000 = 10 s at 48 kHz)."""
        return int(self.model_cfg["audio_cfg"]["clip_samples"])


def import_laion_clap(owner: str):
    """The `laion_clap.clap_module` package; a TeacherError saying why when it cannot be imported."""
    try:
        import huggingface_hub.constants as hub

        if not hub.HF_HUB_OFFLINE:
            log.warning("%s: HF_HUB_OFFLINE is not set; importing laion_clap contacts the Hugging Face hub "
                        "(and hangs where there is no network)", owner)
        import laion_clap  # noqa: F401  (puts clap_module on sys.path, as the package expects)
        from laion_clap import clap_module
    except Exception as err:
        raise TeacherError(f"{owner}: cannot import laion_clap ({type(err).__name__}: {err}); "
                           "pip install laion-clap==1.1.7 (it needs torchvision)") from err
    return clap_module


def load_text_tokenizer(tmodel: str, owner: str):
    """The tokenizer laion_clap pairs with `tmodel`; an empty offline stand-in raises a TeacherError."""
    if tmodel not in TEXT_MODELS:
        raise TeacherError(f"{owner}: option tmodel='{tmodel}' is not one of {', '.join(TEXT_MODELS)}")
    hub_name = TEXT_MODELS[tmodel]
    if hub_name is None:
        from laion_clap.clap_module.tokenizer import SimpleTokenizer

        return SimpleTokenizer()
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(hub_name)
    except Exception as err:
        raise TeacherError(_hub_files_missing(owner, tmodel, hub_name, err)) from err
    check_tokenizer_vocab(tok, hub_name, owner)
    return tok


def check_tokenizer_vocab(tokenizer, name: str, owner: str, expected: int | None = None) -> None:
    """Raise unless `tokenizer` has a real vocabulary (and `expected` tokens, when given)."""
    n = len(tokenizer)
    if n < MIN_TOKENIZER_VOCAB:
        raise TeacherError(
            f"{owner}: tokenizer '{name}' has only {n} tokens: transformers returned an empty tokenizer, "
            f"which happens offline when the '{name}' files are not in the Hugging Face cache. "
            f"Put them there (HF_HOME) before grading; grading with it would compare audio to noise."
        )
    if expected is not None and n != expected:
        raise TeacherError(f"{owner}: tokenizer '{name}' has {n} tokens but the model's text embedding "
                           f"has {expected} rows")


def _hub_files_missing(owner: str, tmodel: str, hub_name: str, err: Exception) -> str:
    return (f"{owner}: tmodel='{tmodel}' needs the Hugging Face model '{hub_name}' (laion_clap builds that text "
            f"branch with from_pretrained('{hub_name}')), and it is not in the local cache: {type(err).__name__}: "
            f"{str(err).rstrip('.')}. On a connected machine run `huggingface-cli download {hub_name}` "
            f"and copy the cache to "
            f"this machine's HF_HOME (HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}).")


def build_clap(amodel: str, tmodel: str, enable_fusion: bool, device: torch.device, owner: str):
    """(random-weight CLAP module, its config) from an architecture name or a JSON config path."""
    clap_module = import_laion_clap(owner)
    name = amodel
    if amodel.endswith(".json"):
        if not os.path.isfile(amodel):
            raise TeacherError(f"{owner}: option amodel: model config file '{os.path.abspath(amodel)}' does not exist")
        clap_module.add_model_config(amodel)
        name = os.path.splitext(os.path.basename(amodel))[0]
    if name not in clap_module.list_models():
        raise TeacherError(f"{owner}: option amodel='{amodel}' is not a laion_clap model config; "
                           f"available: {', '.join(clap_module.list_models())} (or a path to a .json config)")
    try:
        model, cfg = clap_module.create_model(name, tmodel, precision="fp32", device=device,
                                              enable_fusion=enable_fusion,
                                              fusion_type="aff_2d" if enable_fusion else "None")
    except OSError as err:
        raise TeacherError(_hub_files_missing(owner, tmodel, str(TEXT_MODELS.get(tmodel)), err)) from err
    if cfg["audio_cfg"].get("model_type") != "HTSAT":
        raise TeacherError(f"{owner}: option amodel='{amodel}': only HTSAT audio encoders are supported (every "
                           "released LAION-CLAP checkpoint uses one; laion_clap's PANN path does not embed batches)")
    return model, cfg


def load_clap_checkpoint(model: torch.nn.Module, path: str, owner: str) -> None:
    """Load a LAION-CLAP checkpoint (`{"state_dict": {"module.<key>": ...}}` as released, or a plain state dict).

    A `...position_ids` buffer that this transformers version does not persist is dropped; every
    other key must match the model exactly.
    """
    state = strip_prefix(unwrap_state_dict(load_weights_only(path, owner), path, owner), "module.")
    expected = set(model.state_dict())
    state = {k: v for k, v in state.items() if k in expected or not k.endswith("position_ids")}
    load_strict(model, state, path, owner)


def load_laion_clap(path: str, amodel: str, tmodel: str, enable_fusion: bool, device: torch.device,
                    owner: str) -> LaionClap:
    """Build, load and check a LAION-CLAP model from a local checkpoint file."""
    if enable_fusion:
        try:
            import torchaudio  # noqa: F401  (laion_clap computes the fusion mel input with it)
        except Exception as err:
            raise TeacherError(f"{owner}: enable_fusion=True needs torchaudio, which failed to import: "
                               f"{type(err).__name__}: {err}; pip install torchaudio matching torch") from err
    tokenizer = load_text_tokenizer(tmodel, owner)
    model, cfg = build_clap(amodel, tmodel, enable_fusion, device, owner)
    load_clap_checkpoint(model, path, owner)
    rows = _text_vocab_rows(model, tmodel)
    if tmodel != "transformer":
        check_tokenizer_vocab(tokenizer, str(TEXT_MODELS[tmodel]), owner, expected=rows)
    model.to(device).eval()
    return LaionClap(model=model, model_cfg=cfg, tmodel=tmodel, tokenizer=tokenizer, enable_fusion=enable_fusion)


def _text_vocab_rows(model: torch.nn.Module, tmodel: str) -> int:
    if tmodel == "transformer":
        return model.token_embedding.num_embeddings
    return model.text_branch.get_input_embeddings().num_embeddings


def clip_bpe_tokens(tokenizer, texts: Sequence[str], context_length: int) -> torch.Tensor:
    """CLIP BPE ids `[B, context_length]`: start, text (truncated), end token, zeros.

    Unlike laion_clap's `tokenize`, truncation keeps the end token, which the text branch pools at.
    """
    sot, eot = tokenizer.encoder["<start_of_text>"], tokenizer.encoder["<end_of_text>"]
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot] + tokenizer.encode(text)[: context_length - 2] + [eot]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


@torch.no_grad()
def embed_texts(clap: LaionClap, texts: Sequence[str]) -> torch.Tensor:
    """Unit-norm text embeddings `[B, D]`."""
    ctx = clap.model.context_length
    if clap.tmodel == "transformer":
        tokens: Any = clip_bpe_tokens(clap.tokenizer, texts, ctx)
    else:
        tokens = dict(clap.tokenizer(list(texts), padding="max_length", truncation=True, max_length=ctx,
                                     return_tensors="pt"))
        tokens = {k: v.to(clap.device) for k, v in tokens.items()}
    return F.normalize(clap.model.encode_text(tokens, device=clap.device), dim=-1)


@torch.no_grad()
def embed_audio(clap: LaionClap, waves: Sequence[np.ndarray]) -> torch.Tensor:
    """Unit-norm audio embeddings `[B, D]` of mono waveforms at `clap.sample_rate`, each at most `clip_samples` long.

    As laion_clap does: int16 quantisation, then its `get_audio_features` (shorter audio is
    repeated and zero-padded to 10 s).
    """
    from laion_clap.training.data import float32_to_int16, get_audio_features, int16_to_float32

    feats = []
    for w in waves:
        if w.shape[-1] > clap.clip_samples:
            raise ValueError(f"embed_audio: waveform of {w.shape[-1]} samples exceeds {clap.clip_samples}; crop first")
        x = torch.from_numpy(int16_to_float32(float32_to_int16(np.asarray(w, dtype=np.float32)))).float()
        feats.append(get_audio_features({}, x, clap.clip_samples,
                                        data_truncating="fusion" if clap.enable_fusion else "rand_trunc",
                                        data_filling="repeatpad", audio_cfg=clap.model_cfg["audio_cfg"]))
    return clap.model.get_audio_embedding(feats)
