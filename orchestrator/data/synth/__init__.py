"""SynthScenes: procedural paired video-audio clips with known classes, onsets and positions.

scene.py samples a scene, audio.py and video.py render it, annotate.py writes its CoT,
writer.py writes media and the manifest (local or s3://).
"""
from orchestrator.data.synth.writer import generate_clip, write_synthscenes

__all__ = ["generate_clip", "write_synthscenes"]
