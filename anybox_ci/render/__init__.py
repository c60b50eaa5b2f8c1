"""Render: turn the plan into Buildbot objects."""
