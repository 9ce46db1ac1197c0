"""The Docker API's ``filters`` query parameter."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping

from . import gojson


def parse_filters(raw: str | None, *, status: int = 500, context: str = "") -> dict[str, list[str]]:
    """``filters`` as dockerd reads them (:func:`parse_filters_as_dockerd`), refused as it refuses them.

    dockerd answers a ``filters`` that does not decode 500 with Go's words;
    the volume listing says 400 and puts ``context`` before them.
    """
    try:
        return parse_filters_as_dockerd(raw or "")
    except gojson.GoJSONError as exc:
        raise refusal(status, context + str(exc)) from None


class Refused(Exception):
    """A request the engine refuses, raised from deep inside a handler: the app answers it (``status``, ``message``)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refusal(status: int, message: str) -> Refused:
    """The :class:`Refused` to raise for ``status`` and Docker's ``message``."""
    return Refused(status, message)


def accept_only(filters: Mapping[str, list[str]], names: Collection[str]) -> None:
    """dockerd's ``Validate``: a filter name it does not know is 400 ``Invalid filter 'name'``."""
    for key in filters:
        if key not in names:
            raise refusal(400, f"Invalid filter '{key}'")


def boolean(filters: Mapping[str, list[str]], key: str) -> bool | None:
    """dockerd's ``GetBoolOrDefault``: None if ``key`` has no value, else its value ("true"/"1", "false"/"0")."""
    if not filters.get(key):  # absent, or given without a value (``{"dangling": null}``): dockerd 20.10 ignores it
        return None
    values = set(filters[key])
    true, false = bool(values & {"true", "1"}), bool(values & {"false", "0"})
    if true == false:  # neither, both, or no value at all
        shown = f"=[{' '.join(filters[key])}]" if filters[key] else ""
        raise refusal(400, f"Invalid filter '{key}{shown}'")
    return true


def matches_all(filters: dict[str, list[str]], checks: Mapping[str, Callable[[str], bool]]) -> bool:
    """Whether an object passes ``filters``: for every key, one of its values passes that key's check.

    An unknown key is the engine's 400 ``Invalid filter 'key'``; so is a
    value that is not a valid regular expression where one is searched.
    """
    for key, values in filters.items():
        check = checks.get(key)
        if check is None:
            raise refusal(400, f"Invalid filter '{key}'")
        try:
            if not any(check(value) for value in values):
                return False
        except re.error as exc:
            raise refusal(400, f"invalid filter {key}={values[0]}: {exc}") from None
    return True


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """``label=key`` (present) or ``label=key=value`` (equal), as the engine filters labels."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def parse_filters_as_dockerd(raw: str) -> dict[str, list[str]]:
    """``filters`` read as dockerd's ``filters.FromJSON`` reads them, refusing what it refuses with its words.

    For answers the manager gives in an engine's place (``/plugins``, the
    swarm-mode listings), where a user of one engine would see dockerd's
    exact error. Both of Go's forms are accepted, ``{"k": {"v": true}}`` and
    the older ``{"k": ["v"]}``; when neither fits, the error is the first
    form's, as in Go. Every key of the map form counts, whatever its boolean.
    Raises :class:`~swarmctl.api.gojson.GoJSONError`.
    """
    if raw == "":
        return {}
    value = gojson.unmarshal(raw)
    problem = _map_form_error(value)
    if problem is None:
        return {key: list(values or {}) for key, values in (value or {}).items()}
    if isinstance(value, dict) and all(_string_list(v) for v in value.values()):
        # Go keeps a filter's values as the keys of a map: a value given twice is there once.
        return {key: list(dict.fromkeys(str(v or "") for v in values or [])) for key, values in value.items()}
    raise gojson.GoJSONError(problem)


def _map_form_error(value: object) -> str | None:
    """Go's error decoding ``value`` into ``map[string]map[string]bool``, or None if it fits."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return f"json: cannot unmarshal {gojson.kind(value)} into Go value of type map[string]map[string]bool"
    for values in value.values():
        if values is None:
            continue
        if not isinstance(values, dict):
            return f"json: cannot unmarshal {gojson.kind(values)} into Go value of type map[string]bool"
        for flag in values.values():
            if flag is not None and type(flag) is not bool:
                return f"json: cannot unmarshal {gojson.kind(flag)} into Go value of type bool"
    return None


def _string_list(values: object) -> bool:
    return values is None or (isinstance(values, list) and all(v is None or isinstance(v, str) for v in values))
