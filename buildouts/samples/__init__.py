"""The sample buildouts, installed as package data ``anybox_ci.samples`` (see pyproject.toml)."""
