"""Data sets: SynthScenes generation, Parquet manifests and their local/S3 reader, batch sampling."""
