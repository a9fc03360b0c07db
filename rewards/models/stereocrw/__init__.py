"""StereoCRW (Chen et al., "Sound Localization by Self-Supervised Time Delay Estimation", NeurIPS
2022) written in PrismRL: the `stereocrw_binaural` audio encoder and its soft-argmax ITD read-out.

`load_stereocrw(path)` gives the encoder; `estimate_itd` turns stereo audio into an ITD.
"""
from rewards.models.stereocrw.checkpoint import CHECKPOINT_NAME, CheckpointError, load_stereocrw, strip_prefix
from rewards.models.stereocrw.estimate import CrwSettings, estimate_itd, prepare_stereo
from rewards.models.stereocrw.itd import affinity, delay_matrix, max_delay_offset, soft_argmax_itd
from rewards.models.stereocrw.model import StereoCRW

__all__ = [
    "CHECKPOINT_NAME",
    "CheckpointError",
    "CrwSettings",
    "StereoCRW",
    "affinity",
    "delay_matrix",
    "estimate_itd",
    "load_stereocrw",
    "max_delay_offset",
    "prepare_stereo",
    "soft_argmax_itd",
    "strip_prefix",
]
