"""PrismAudio's own model: DiT, conditioners, Oobleck VAE, loading and export."""
