"""anybox_ci: a Buildbot 4 configurator for buildout-based projects."""
