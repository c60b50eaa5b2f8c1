"""Shared fixtures: throwaway PostgreSQL clusters (tests/pgfixtures.py) and the real Odoo
source (tests/odoofixtures.py)."""

pytest_plugins = ["tests.pgfixtures", "tests.odoofixtures"]
