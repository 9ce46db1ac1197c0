"""JSON errors worded as Go's ``encoding/json`` words them, for answers that must read like dockerd's.

Where the manager answers a request itself in dockerd's place (the swarm-mode
paths, ``/plugins``), a body or ``filters`` parameter that is not valid JSON
must be refused with the message dockerd prints (``invalid character 'x'
looking for beginning of object key string``), since that is what a user of
one engine sees. Python's ``json`` words its errors differently and cannot
tell an array's missing comma from an object's, so syntax is checked here by
a scanner that follows Go's states; the value itself is then decoded by
``json``. Only what a first value's syntax and its top-level kind decide is
reproduced: type errors inside a struct need the Go type's fields, which the
manager does not have.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

#: Python's type of a decoded value -> the word Go uses in ``cannot unmarshal X into ...``.
_KINDS: dict[type, str] = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
_WHITESPACE = " \t\r\n"
_DIGITS = "0123456789"  # ASCII only, as Go's scanner: ``str.isdigit`` also takes "²"
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_ESCAPES = set('"\\/bfnrtu')
#: How deep Go's scanner lets values nest (``maxNestingDepth`` in encoding/json).
MAX_DEPTH = 10_000


class GoJSONError(ValueError):
    """Input that Go's decoder refuses; ``str()`` is Go's message."""


class _EndOfInput(Exception):
    """The input ended inside a value (Go: ``unexpected EOF`` or ``unexpected end of JSON input``)."""


def kind(value: Any) -> str:
    """Go's word for the JSON kind of a decoded value (``array``, ``string``...)."""
    found = _KINDS.get(type(value))
    if found is None and value is not None:  # a subclass (a number keeping its literal, say)
        found = next((word for kind_, word in _KINDS.items() if isinstance(value, kind_)), None)
    return found or "null"


def _quote(char: str) -> str:
    """Go's ``quoteChar``: ``'x'``, with ``'\\''`` and ``'"'`` spelled out and control characters escaped."""
    if char == "'":
        return "'\\''"
    if char == '"':
        return "'\"'"
    if char.isprintable():
        return f"'{char}'"
    return "'" + json.dumps(char)[1:-1] + "'"


class _Scanner:
    """Go's syntax checks over one JSON value; ``end`` is where the value stopped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self) -> str:
        if self.pos >= len(self.text):
            raise _EndOfInput
        return self.text[self.pos]

    def _skip(self) -> str:
        while self._peek() in _WHITESPACE:
            self.pos += 1
        return self.text[self.pos]

    def fail(self, context: str) -> GoJSONError:
        return GoJSONError(f"invalid character {_quote(self.text[self.pos])} {context}")

    def value(self) -> None:
        """Scan one value, nested containers included, with a stack of its own rather than recursion.

        Go's scanner refuses a value nested more than :data:`MAX_DEPTH` deep
        (``exceeded max depth``); a recursive scan would stop long before that
        with Python's ``RecursionError``.
        """
        closers: list[str] = []  # the closing bracket of each container we are in, innermost last
        while True:
            if self._begin_value(closers):
                continue  # a container opened: its first member (or element) is read next
            while closers:  # a value ended: close what it ended, or go on to the next member
                char = self._skip()
                if char == closers[-1]:
                    self.pos += 1
                    closers.pop()
                    continue
                is_object = closers[-1] == "}"
                if char != ",":
                    raise self.fail("after object key:value pair" if is_object else "after array element")
                self.pos += 1
                if is_object:
                    self._key()
                break
            else:
                return

    def _begin_value(self, closers: list[str]) -> bool:
        """Read a scalar, or open a container (True: its first member or element is next)."""
        char = self._skip()
        if char in "{[":
            if len(closers) >= MAX_DEPTH:
                raise self.fail("exceeded max depth")
            self.pos += 1
            close = "}" if char == "{" else "]"
            if self._skip() == close:
                self.pos += 1
                return False
            closers.append(close)
            if close == "}":
                self._key()
            return True
        if char == '"':
            self._string()
        elif char == "-" or char in _DIGITS:
            self._number()
        elif char in _LITERALS:
            self._literal(_LITERALS[char])
        else:
            raise self.fail("looking for beginning of value")
        return False

    def _key(self) -> None:
        if self._skip() != '"':
            raise self.fail("looking for beginning of object key string")
        self._string()
        if self._skip() != ":":
            raise self.fail("after object key")
        self.pos += 1

    def _string(self) -> None:
        self.pos += 1
        while (char := self._peek()) != '"':
            if char < " ":
                raise self.fail("in string literal")
            self.pos += 1
            if char == "\\":
                if self._peek() not in _ESCAPES:
                    raise self.fail("in string escape code")
                if self.text[self.pos] == "u":
                    for _ in range(4):
                        self.pos += 1
                        if self._peek() not in "0123456789abcdefABCDEF":
                            raise self.fail("in \\u hexadecimal character escape")
                self.pos += 1
        self.pos += 1

    def _digits(self, context: str) -> None:
        if self._peek() not in _DIGITS:
            raise self.fail(context)
        while self.pos < len(self.text) and self.text[self.pos] in _DIGITS:
            self.pos += 1

    def _number(self) -> None:
        if self.text[self.pos] == "-":
            self.pos += 1
        if self._peek() == "0":
            self.pos += 1
        else:
            self._digits("in numeric literal")
        if self.pos < len(self.text) and self.text[self.pos] == ".":
            self.pos += 1
            self._digits("after decimal point in numeric literal")
        if self.pos < len(self.text) and self.text[self.pos] in "eE":
            self.pos += 1
            if self._peek() in "+-":
                self.pos += 1
            self._digits("in exponent of numeric literal")

    def _literal(self, word: str) -> None:
        for expected in word:
            if self._peek() != expected:
                raise self.fail(f"in literal {word} (expecting {_quote(expected)})")
            self.pos += 1


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # Python's decoder reads NaN and Infinity; Go's does not


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERAL_VALUES = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


def _skip_space(text: str, pos: int) -> int:
    while text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _scalar(text: str, pos: int, parse_float: Callable[[str], Any]) -> tuple[Any, int]:
    """The string, literal or number at ``pos`` (the scanner found it well formed), and where it ends."""
    char = text[pos]
    if char == '"':
        value, end = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
        return value, end
    if char in _LITERAL_VALUES:
        word, value = _LITERAL_VALUES[char]
        return value, pos + len(word)
    number = _NUMBER.match(text, pos)
    assert number is not None  # the scanner checked it
    return (parse_float(number[0]) if number[1] or number[2] else int(number[0])), number.end()


def decode_deep(text: str, parse_float: Callable[[str], Any] = float) -> Any:
    """A value the scanner found well formed, decoded with a stack of its own (Python's decoder recurses).

    For what ``json`` cannot take, a value nested hundreds of levels deep:
    Go reads up to :data:`MAX_DEPTH`, and so must the manager, if only to
    answer with the type error dockerd would give.
    """
    stack: list[tuple[dict[str, Any] | list[Any], list[str]]] = []  # open containers, with the key pending
    pos = 0
    while True:
        pos = _skip_space(text, pos)
        char = text[pos]
        value: Any
        if char in "{[":
            container: dict[str, Any] | list[Any] = {} if char == "{" else []
            pos = _skip_space(text, pos + 1)
            if text[pos] in "}]":
                value, pos = container, pos + 1
            else:
                key: list[str] = []
                if char == "{":
                    name, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                    key.append(name)
                    pos = _skip_space(text, pos) + 1  # the colon
                stack.append((container, key))
                continue
        else:
            value, pos = _scalar(text, pos, parse_float)
        while True:  # the value goes into its container; close what it ended
            if not stack:
                return value
            container, key = stack[-1]
            if isinstance(container, dict):
                container[key.pop()] = value
            else:
                container.append(value)
            pos = _skip_space(text, pos)
            if text[pos] == ",":
                pos = _skip_space(text, pos + 1)
                if isinstance(container, dict):
                    name, pos = json.decoder.scanstring(text, pos + 1)  # type: ignore[attr-defined]
                    key.append(name)
                    pos = _skip_space(text, pos) + 1
                break
            pos += 1
            stack.pop()
            value = container


def decode_first(text: str, parse_float: Callable[[str], Any] = float) -> Any:
    """The first JSON value of a request body, as ``json.NewDecoder(body).Decode`` reads it.

    What follows the value is not read (Go's decoder stops there). An empty
    body raises :class:`EOFError` (dockerd then says ``got EOF while reading
    request body``); a body cut short raises ``unexpected EOF``. A body that
    is one well-formed value (nearly all) is decoded by ``json`` at once; the
    scanner runs only to word an error as Go does or find where the value ends,
    and a value too deep for ``json`` is decoded by :func:`decode_deep`.
    """
    if not text.strip(_WHITESPACE):
        raise EOFError
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=parse_float)
    except (ValueError, RecursionError):
        pass
    scanner = _Scanner(text)
    try:
        scanner.value()
    except _EndOfInput:
        raise GoJSONError("unexpected EOF") from None
    first = text[: scanner.pos]
    try:
        return json.loads(first, parse_float=parse_float)
    except RecursionError:
        return decode_deep(first, parse_float)


def unmarshal(text: str) -> Any:
    """The whole of ``text`` as one JSON value, as ``json.Unmarshal`` reads it (nothing may follow)."""
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        pass
    scanner = _Scanner(text)
    try:
        scanner.value()
        while scanner.pos < len(text):
            if text[scanner.pos] not in _WHITESPACE:
                raise scanner.fail("after top-level value")
            scanner.pos += 1
    except _EndOfInput:
        raise GoJSONError("unexpected end of JSON input") from None
    try:
        return json.loads(text)
    except RecursionError:
        return decode_deep(text)
