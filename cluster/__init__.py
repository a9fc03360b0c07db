"""Cluster launch kit: Ray cluster launcher YAML, KubeRay RayJob manifest, runtime environment
(see kit.py for reading them and for the `ray job submit` command line)."""
