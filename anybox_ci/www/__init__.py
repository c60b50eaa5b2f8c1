"""Web UI add-ons for the Buildbot master: authentication, authorization and pages."""
