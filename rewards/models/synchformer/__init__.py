"""Synchformer (Iashin et al., ICASSP 2024) written in PrismRL: loads `synchformer_state_dict.pth`.

`load_synchformer(path)` gives the model; `video_segments` / `audio_segments` turn a clip's frames
and a 16 kHz waveform into its inputs; `predicted_offsets` turns logits into seconds.
"""
from rewards.models.synchformer.audio_preprocess import audio_segments, log_mel_segments
from rewards.models.synchformer.checkpoint import CHECKPOINT_NAME, CheckpointError, load_synchformer
from rewards.models.synchformer.model import Synchformer
from rewards.models.synchformer.offsets import predicted_offsets
from rewards.models.synchformer.segments import (
    AUDIO_SR,
    MIN_DURATION_S,
    VIDEO_FPS,
    num_segments,
    segments_needed,
    window_starts,
)
from rewards.models.synchformer.video_preprocess import video_segments

__all__ = [
    "AUDIO_SR",
    "CHECKPOINT_NAME",
    "CheckpointError",
    "MIN_DURATION_S",
    "Synchformer",
    "VIDEO_FPS",
    "audio_segments",
    "load_synchformer",
    "log_mel_segments",
    "num_segments",
    "predicted_offsets",
    "segments_needed",
    "video_segments",
    "window_starts",
]
