"""Diagnosis at scale on Ray: a batch survey job on Ray Data (`batch`) and replicated serving on Ray Serve (`serve`).

Ray is the optional `scale` extra (`pip install ".[scale]"`); the core install, the Space and the CLI's other commands
never import it. On one machine Ray starts locally, embedded in the command; `--ray-address` joins a cluster."""

from __future__ import annotations

from types import ModuleType

from cropdx_hf.errors import ExtraNotInstalledError


def import_ray() -> ModuleType:
    """Ray, or one error naming the extra that installs it."""
    try:
        import ray
    except ImportError as exc:
        raise ExtraNotInstalledError("this needs Ray, the optional scale extra: pip install \"cropdx-hf[scale]\" "
                                     "(from a checkout: pip install \".[scale]\")") from exc
    return ray
