"""What ``docker info`` through a replicated manager says of its role, for the tests of mixed Go/swarmctl elections."""

from __future__ import annotations

import json

from .manager import Manager


def has_role(manager: Manager, wanted: tuple[str, str]) -> bool:
    """Whether ``docker info`` through ``manager`` says (Role, Primary) is ``wanted`` (a failed call says no)."""
    result = manager.docker("info", "--format", "{{json .SystemStatus}}")
    if result.returncode != 0:
        return False
    info = dict(json.loads(result.stdout))
    return (info.get("Role", ""), info.get("Primary", "")) == wanted
