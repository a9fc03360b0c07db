"""Importable helpers for tests (Ray workers import them with tests/ on PYTHONPATH)."""
