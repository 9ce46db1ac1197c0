"""Hypothesis settings shared by the property and fuzz suites: reproducible in CI, larger on request.

Every run generates the same examples (``derandomize=True``), so a failure in
CI is a failure on a developer's machine too, and nothing is written into the
repository (``database=None``, and Hypothesis's own caches go to the system's
temporary directory instead of ``.hypothesis/`` in the working directory). Timing never
fails a test (``deadline=None``): the machine is shared.

``SWARMCTL_FUZZ_SCALE=N`` multiplies every suite's number of examples by N
(e.g. ``SWARMCTL_FUZZ_SCALE=10 scripts/test tests/test_fuzz_differential.py``);
``SWARMCTL_FUZZ_SEED=S`` replaces the fixed examples with those of seed S, to
look further than CI does.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, seed, settings
from hypothesis.configuration import set_hypothesis_home_dir

if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "swarmctl-hypothesis")

F = TypeVar("F", bound=Callable[..., Any])


def scale() -> int:
    """The ``SWARMCTL_FUZZ_SCALE`` multiplier (at least 1)."""
    try:
        return max(1, int(os.environ.get("SWARMCTL_FUZZ_SCALE", "1")))
    except ValueError:
        return 1


def examples(count: int, *, slow_setup: bool = False) -> Callable[[F], F]:
    """Hypothesis settings for ``count`` examples (times the scale), reproducible, without a database.

    ``slow_setup`` lifts the health checks that a test against real servers
    trips (data generation is quick, but each example does network calls,
    and a function-scoped fixture is deliberately reused across examples).
    """
    chosen = os.environ.get("SWARMCTL_FUZZ_SEED")
    suppressed = list(HealthCheck) if slow_setup else [HealthCheck.too_slow]
    applied = settings(
        max_examples=count * scale(),
        derandomize=chosen is None,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=suppressed,
    )

    def decorate(test: F) -> F:
        decorated = applied(test)
        if chosen is not None:
            decorated = seed(int(chosen))(decorated)
        return decorated  # type: ignore[no-any-return]

    return decorate
