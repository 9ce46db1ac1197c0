"""Go types of the Engine API's request bodies, and a check of decoded JSON against them as Go's decoder does it.

dockerd decodes a body with ``encoding/json`` into its Go structs, and a
value of the wrong JSON kind is refused with Go's words (``json: cannot
unmarshal object into Go struct field ContainerConfigWrapper.Env of type
[]string``). The manager reads a create body before any engine does (to
schedule it), so it checks the body first against the same types: what an
engine would refuse is refused with the engine's message, and what the
manager then reads has the kinds the types say. Field names are matched as
Go matches them (exactly, else ignoring case) and come out in their
canonical spelling; fields the types do not name are kept as they are (a
newer engine may know them).

As in Go, the first type error is kept and the check goes on (the answer is
that first error), while a type with its own decoder (``strslice.StrSlice``)
stops at its error. ``null`` leaves any field as it is. Numbers keep their
literal (see :func:`loads`), so ``1e3`` for an ``int`` is refused as ``number
1e3``, as Go words it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import gojson


class FloatLiteral(float):
    """A JSON number with a fraction or an exponent, remembering how it was written (Go's messages quote it)."""

    text: str

    def __new__(cls, text: str) -> FloatLiteral:
        number = super().__new__(cls, text)
        number.text = text
        return number


def loads(text: str) -> Any:
    """``text`` decoded as :func:`gojson.decode_first` does, non-integer numbers as :class:`FloatLiteral`."""
    value = gojson.decode_first(text)
    return gojson.decode_first(text, parse_float=FloatLiteral) if _shape(value)[1] else value


def _shape(value: Any) -> tuple[int, bool]:
    """How deep ``value`` nests, and whether it holds a non-integer number (walked without recursion)."""
    deepest, floats = 0, False
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
        elif type(item) is float:
            floats = True
    return deepest, floats


class GoTypeError(ValueError):
    """What Go's decoder answers for the body; ``str()`` is its message."""


@dataclass(frozen=True)
class GoType:
    """A Go type as its errors name it (``[]string``, ``container.HostConfig``)."""

    name: str


@dataclass(frozen=True)
class String(GoType):
    """A string, or a named string type (``container.NetworkMode``)."""


@dataclass(frozen=True)
class Bool(GoType):
    """``true`` or ``false`` only (Go takes no number or string for a bool)."""


@dataclass(frozen=True)
class Integer(GoType):
    """A sized integer: the JSON literal must be an integer in ``[low, high]``."""

    low: int
    high: int


@dataclass(frozen=True)
class Slice(GoType):
    element: GoType


@dataclass(frozen=True)
class Array(GoType):
    """A fixed-size array: extra elements are dropped, as Go drops them."""

    element: GoType
    length: int


@dataclass(frozen=True)
class Map(GoType):
    """A map with string keys (``map[string]string``, ``nat.PortMap``)."""

    value: GoType


@dataclass(frozen=True)
class StrSlice(GoType):
    """``strslice.StrSlice``: a string or a list of strings, with a decoder of its own (its error stops all)."""


@dataclass(frozen=True)
class Struct(GoType):
    """A struct: its JSON field names (embedded structs' fields listed as its own) and their types.

    ``short`` is the struct's name without its package, as Go's errors give
    the struct that holds the failing field.
    """

    short: str
    fields: dict[str, GoType] = field(hash=False)

    def field_named(self, key: str) -> tuple[str, GoType] | None:
        """The field ``key`` names: its own spelling first, else ignoring case (as ``encoding/json``)."""
        found = self.fields.get(key)
        if found is not None:
            return key, found
        folded = key.casefold()
        for name, kind in self.fields.items():
            if name.casefold() == folded:
                return name, kind
        return None


def integer(name: str, bits: int, *, signed: bool) -> Integer:
    if signed:
        return Integer(name, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return Integer(name, 0, (1 << bits) - 1)


STRING = String("string")
BOOL = Bool("bool")
INT = integer("int", 64, signed=True)
INT64 = integer("int64", 64, signed=True)
UINT = integer("uint", 64, signed=False)
UINT16 = integer("uint16", 16, signed=False)
UINT64 = integer("uint64", 64, signed=False)
STRINGS = Slice("[]string", STRING)
STRING_MAP = Map("map[string]string", STRING)
STR_SLICE = StrSlice("strslice.StrSlice")
EMPTY_STRUCT = Struct("struct {}", "", {})


def zero(kind: GoType) -> Any:
    """Go's zero value of ``kind`` as JSON decodes it: ``""``, ``false``, ``0``, an empty struct, else ``null``."""
    if isinstance(kind, String):
        return ""
    if isinstance(kind, Bool):
        return False
    if isinstance(kind, Integer):
        return 0
    if isinstance(kind, Struct):
        return {}
    return None


class _StopDecoding(Exception):
    """A decoder of a type's own failed: Go returns its error at once."""


@dataclass
class _Check:
    """One check of a body: the first error Go would keep, and where in the structs we are."""

    first: str | None = None
    struct: str = ""
    path: tuple[str, ...] = ()

    def type_error(self, value: Any, kind: GoType, *, literal: bool = False) -> None:
        if self.first is not None:
            return
        self.first = self.message(value, kind, literal=literal)

    def message(self, value: Any, kind: GoType, *, literal: bool = False) -> str:
        what = gojson.kind(value)
        if literal:
            what += " " + (value.text if isinstance(value, FloatLiteral) else str(value))
        into = f"Go struct field {self.struct}.{'.'.join(self.path)}" if self.struct or self.path else "Go value"
        return f"json: cannot unmarshal {what} into {into} of type {kind.name}"

    def value(self, value: Any, kind: GoType) -> Any:  # noqa: C901 - a flat dispatch, one branch per Go kind
        """``value`` as decoded into ``kind``: canonical field names; what does not fit is noted and left out."""
        if value is None:
            return value
        if isinstance(kind, String):
            return value if isinstance(value, str) else self._wrong(value, kind)
        if isinstance(kind, Bool):
            return value if isinstance(value, bool) else self._wrong(value, kind)
        if isinstance(kind, Integer):
            return self._integer(value, kind)
        if isinstance(kind, StrSlice):
            if isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str | None) for v in value)):
                return value
            raise _StopDecoding(self.message(value, STRING))
        if isinstance(kind, Slice | Array):
            if not isinstance(value, list):
                return self._wrong(value, kind)
            items = value[: kind.length] if isinstance(kind, Array) else value
            return [self.element(item, kind.element) for item in items]
        if isinstance(kind, Map):
            if not isinstance(value, dict):
                return self._wrong(value, kind)
            return {key: self.element(item, kind.value) for key, item in value.items()}
        assert isinstance(kind, Struct)
        return self._struct(value, kind)

    def element(self, value: Any, kind: GoType) -> Any:
        """An element of a list or a map: a ``null`` there is the zero value Go stores (``""`` in a ``[]string``)."""
        return zero(kind) if value is None else self.value(value, kind)

    def _wrong(self, value: Any, kind: GoType) -> None:
        self.type_error(value, kind)
        return None

    def _integer(self, value: Any, kind: Integer) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return self._wrong(value, kind)
        if isinstance(value, float) or not kind.low <= value <= kind.high:
            self.type_error(value, kind, literal=True)
            return None
        return value

    def _struct(self, value: Any, kind: Struct) -> Any:
        if not isinstance(value, dict):
            return self._wrong(value, kind)
        outer = (self.struct, self.path)
        decoded: dict[str, Any] = {}
        for key, item in value.items():
            named = kind.field_named(key)
            if named is None:
                decoded[key] = item  # unknown here: Go skips it; a newer engine may read it
                continue
            name, field_kind = named
            self.struct, self.path = kind.short, (*outer[1], name)
            decoded[name] = self.value(item, field_kind)
        self.struct, self.path = outer
        return decoded


def check(value: Any, kind: GoType) -> Any:
    """``value`` (decoded JSON) as Go would decode it into ``kind``; :class:`GoTypeError` with Go's first error."""
    state = _Check()
    try:
        decoded = state.value(value, kind)
    except _StopDecoding as exc:
        raise GoTypeError(str(exc)) from None
    if state.first is not None:
        raise GoTypeError(state.first)
    return decoded
