"""Plain data types shared by every PrismRL package (no Ray, no torch models)."""
