"""JSON values kept as their text where they nest too deep for Python's recursive copy and encoder.

dockerd reads request bodies nested up to 10,000 levels and passes on what
its types do not name. The manager decodes that deep without recursion
(``api/gojson.py``), but then copies a create body (``copy.deepcopy``) and
encodes it again for the engine (``json.dumps``), and both recurse: a few
hundred levels reach the interpreter's limit. So, once a body has been
checked, every value below :data:`KEPT_AS_TEXT_BELOW` levels is replaced by
a :class:`Verbatim` holding its JSON text (made without recursion), which
copies as itself and which :func:`dumps` writes as it is. The Engine API's
own fields nest a few levels deep, so what the manager reads of a body is
never one of them.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

#: Values deeper than this are kept as text (a create body's known fields are 8 deep at most).
KEPT_AS_TEXT_BELOW = 64


class Verbatim:
    """A JSON value as its text: copied as itself, written by :func:`dumps` unchanged."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __copy__(self) -> Verbatim:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Verbatim:
        return self

    def __repr__(self) -> str:
        return f"Verbatim({self.text[:40]!r}...)"


def shallow(value: Any, depth: int = KEPT_AS_TEXT_BELOW) -> Any:
    """``value`` with every container more than ``depth`` levels down replaced by its :class:`Verbatim`.

    A value that nests no deeper is returned as it is (the same object);
    otherwise the containers on the way down are copied, the rest shared.
    """
    if _depth(value) <= depth:
        return value
    return _cut(value, depth)


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in item)
    return deepest


def _cut(value: Any, depth: int) -> Any:
    """``value`` copied ``depth`` levels down, each container below that kept as text (without recursion)."""
    if not isinstance(value, dict | list):
        return value
    top: Any = {} if isinstance(value, dict) else []
    stack: list[tuple[Any, Any, int]] = [(value, top, 1)]
    while stack:
        source, copy, level = stack.pop()
        items = source.items() if isinstance(source, dict) else enumerate(source)
        for key, child in items:
            if isinstance(child, dict | list):
                if level >= depth:
                    child_copy: Any = Verbatim(encode(child))
                else:
                    child_copy = {} if isinstance(child, dict) else []
                    stack.append((child, child_copy, level + 1))
            else:
                child_copy = child
            if isinstance(copy, dict):
                copy[key] = child_copy
            else:
                copy.append(child_copy)
    return top


class _Punctuation(str):
    """Text :func:`encode` writes as it is (brackets, commas, keys)."""


def encode(value: Any) -> str:
    """``value`` as JSON text, as ``json.dumps`` writes it, however deep (an explicit stack, no recursion)."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if type(item) is _Punctuation:
            out.append(item)
        elif isinstance(item, Verbatim):
            out.append(item.text)
        elif isinstance(item, dict):
            out.append("{")
            stack.append(_Punctuation("}"))
            for n, (key, child) in reversed(list(enumerate(item.items()))):
                stack.append(child)
                stack.append(_Punctuation(f"{', ' if n else ''}{json.dumps(str(key))}: "))
        elif isinstance(item, list):
            out.append("[")
            stack.append(_Punctuation("]"))
            for n, child in reversed(list(enumerate(item))):
                stack.append(child)
                if n:
                    stack.append(_Punctuation(", "))
        else:
            out.append(json.dumps(item))
    return "".join(out)


def dumps(value: Any) -> str:
    """``json.dumps(value)``, each :class:`Verbatim` in it written as its text."""
    kept: list[str] = []
    mark = f"\x00{secrets.token_hex(8)}:"

    def placeholder(item: Any) -> str:
        if not isinstance(item, Verbatim):
            raise TypeError(f"Object of type {type(item).__name__} is not JSON serializable")
        kept.append(item.text)
        return f"{mark}{len(kept) - 1}"

    text = json.dumps(value, default=placeholder)
    for n, kept_text in enumerate(kept):
        text = text.replace(json.dumps(f"{mark}{n}"), kept_text, 1)
    return text
