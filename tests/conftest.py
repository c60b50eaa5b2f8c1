"""Shared fixtures: throwaway PostgreSQL clusters (tests/pgfixtures.py)."""

pytest_plugins = ["tests.pgfixtures"]
