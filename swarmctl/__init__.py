"""swarmctl: Docker Swarm's discovery and cluster manager, built on kvstore."""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """``swarmctl.__version__``, read when first asked for: the command's start-up does not pay for it.

    It is the installed distribution's version (kvstore/_version.py at build time), or that file's
    when running from a checkout that is not installed.
    """
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("swarmctl")
    except metadata.PackageNotFoundError:
        from kvstore._version import __version__ as version
    globals()["__version__"] = version
    return version
