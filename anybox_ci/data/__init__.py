"""Data files installed with the package; read them through :mod:`anybox_ci.resources`."""
