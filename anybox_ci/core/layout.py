"""Where a master directory keeps its inputs, as the interface contract says."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

MANIFEST = "buildouts/MANIFEST.cfg"
#: the ancestor's workers file, read only when there is no ``workers.cfg``
WORKERS_FILES = ("workers.cfg", "slaves.cfg")
WORKERS_FRAGMENTS = "workers.d"
URL_REWRITES = "url-rewrites.cfg"


def master_paths(
    master_dir: Path,
    manifests: Iterable[str | Path] | None = None,
    workers: Iterable[str | Path] | None = None,
) -> tuple[list[Path], list[Path]]:
    """The contract's layout: buildouts/MANIFEST.cfg, workers.cfg and workers.d/*.cfg."""
    manifest_paths = [master_dir / p for p in (manifests or [MANIFEST])]
    if workers is None:
        worker_paths = []
        for candidate in WORKERS_FILES:
            if (master_dir / candidate).exists():
                worker_paths.append(master_dir / candidate)
                break
        else:
            worker_paths.append(master_dir / WORKERS_FILES[0])
        worker_paths += sorted((master_dir / WORKERS_FRAGMENTS).glob("*.cfg"))
    else:
        worker_paths = [master_dir / p for p in workers]
    return manifest_paths, worker_paths
