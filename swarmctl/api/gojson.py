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
from typing import Any

#: Python's type of a decoded value -> the word Go uses in ``cannot unmarshal X into ...``.
_KINDS: dict[type, str] = {dict: "object", list: "array", str: "string", bool: "bool", int: "number", float: "number"}
_WHITESPACE = " \t\r\n"
_LITERALS = {"t": "true", "f": "false", "n": "null"}
_ESCAPES = set('"\\/bfnrtu')


class GoJSONError(ValueError):
    """Input that Go's decoder refuses; ``str()`` is Go's message."""


class _EndOfInput(Exception):
    """The input ended inside a value (Go: ``unexpected EOF`` or ``unexpected end of JSON input``)."""


def kind(value: Any) -> str:
    """Go's word for the JSON kind of a decoded value (``array``, ``string``...)."""
    return _KINDS.get(type(value), "null")


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

    def _fail(self, context: str) -> GoJSONError:
        return GoJSONError(f"invalid character {_quote(self.text[self.pos])} {context}")

    def value(self) -> None:
        char = self._skip()
        if char == "{":
            self._container("}", key=True)
        elif char == "[":
            self._container("]", key=False)
        elif char == '"':
            self._string()
        elif char == "-" or char.isdigit():
            self._number()
        elif char in _LITERALS:
            self._literal(_LITERALS[char])
        else:
            raise self._fail("looking for beginning of value")

    def _container(self, close: str, *, key: bool) -> None:
        self.pos += 1
        if self._skip() == close:
            self.pos += 1
            return
        while True:
            if key:
                if self._skip() != '"':
                    raise self._fail("looking for beginning of object key string")
                self._string()
                if self._skip() != ":":
                    raise self._fail("after object key")
                self.pos += 1
            self.value()
            char = self._skip()
            if char == close:
                self.pos += 1
                return
            if char != ",":
                raise self._fail("after object key:value pair" if key else "after array element")
            self.pos += 1

    def _string(self) -> None:
        self.pos += 1
        while (char := self._peek()) != '"':
            if char < " ":
                raise self._fail("in string literal")
            self.pos += 1
            if char == "\\":
                if self._peek() not in _ESCAPES:
                    raise self._fail("in string escape code")
                if self.text[self.pos] == "u":
                    for _ in range(4):
                        self.pos += 1
                        if self._peek() not in "0123456789abcdefABCDEF":
                            raise self._fail("in \\u hexadecimal character escape")
                self.pos += 1
        self.pos += 1

    def _digits(self, context: str) -> None:
        if not self._peek().isdigit():
            raise self._fail(context)
        while self.pos < len(self.text) and self.text[self.pos].isdigit():
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
                raise self._fail(f"in literal {word} (expecting {_quote(expected)})")
            self.pos += 1


def decode_first(text: str) -> Any:
    """The first JSON value of a request body, as ``json.NewDecoder(body).Decode`` reads it.

    What follows the value is not read (Go's decoder stops there). An empty
    body raises :class:`EOFError` (dockerd then says ``got EOF while reading
    request body``); a body cut short raises ``unexpected EOF``.
    """
    if not text.strip(_WHITESPACE):
        raise EOFError
    scanner = _Scanner(text)
    try:
        scanner.value()
    except _EndOfInput:
        raise GoJSONError("unexpected EOF") from None
    return json.loads(text[: scanner.pos])


def unmarshal(text: str) -> Any:
    """The whole of ``text`` as one JSON value, as ``json.Unmarshal`` reads it (nothing may follow)."""
    scanner = _Scanner(text)
    try:
        scanner.value()
        while scanner.pos < len(text):
            if text[scanner.pos] not in _WHITESPACE:
                raise scanner._fail("after top-level value")
            scanner.pos += 1
    except _EndOfInput:
        raise GoJSONError("unexpected end of JSON input") from None
    return json.loads(text)
