"""Built-in teacher backends; importing this module registers them all.

Model backends import their heavy packages (laion_clap, audiobox_aesthetics...) only when built.
"""
from rewards.backends import (  # noqa: F401
    aesthetic_audiobox,
    aesthetic_signal,
    semantic_laion_clap,
    semantic_ms_clap,
    semantic_signal,
    spatial_gcc_phat,
    spatial_stereocrw,
    timing_onset,
    timing_synchformer,
)
