"""The one version of this repository's two distributions (kvstore and swarmctl).

Both ``pyproject.toml`` files read it from here when they build, and
swarmctl pins kvstore to at least it, so a release changes this line only.
"""

__version__ = "0.1.0"
