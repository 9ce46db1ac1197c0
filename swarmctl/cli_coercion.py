"""The command line's values converted without pydantic: what lets ``swarmctl list`` start fast.

Typer (0.2x) converts every parameter's value, defaults included, through a
pydantic ``TypeAdapter`` it builds on first use. Importing pydantic and
building those adapters cost about 0.1 s, more than everything else
``swarmctl list`` does apart from loading its store client. Our parameters are
``str``, ``bool``, ``int`` (with a minimum), str enums and lists of those,
whose conversion is a few lines each: :class:`PlainGroup`, the app's group
class, gives each such parameter of every command a converter of its own
before anything is parsed; any other parameter keeps typer's. The command
line stays typer's: the same options, help, usage errors (exit 2) and
completion.

This reaches into typer's internals (``typer._coercion.RuntimeParam`` and a
parameter's ``_runtime_param``). A typer without them (older ones convert
through click, without pydantic) is left as it is; a newer one that moves
them makes ``tests/test_cli_startup.py`` fail, not the command.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, get_args, get_origin

import typer
import typer.core

try:
    from typer._coercion import RuntimeParam
except ImportError:  # a typer that does not convert through pydantic: nothing to replace
    RuntimeParam = None  # type: ignore[assignment,misc]

Convert = Callable[[Any], Any]


def _to_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off", ""})


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = _to_str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not a valid boolean.")


def _integer(minimum: float | None, maximum: float | None) -> Convert:
    def convert(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"{value!r} is not a valid integer.")
        try:
            number = value if isinstance(value, int) else int(_to_str(value).strip())
        except ValueError:
            raise ValueError(f"{value!r} is not a valid integer.") from None
        if minimum is not None and number < minimum:
            raise ValueError(f"{number} is smaller than the minimum of {minimum:g}.")
        if maximum is not None and number > maximum:
            raise ValueError(f"{number} is larger than the maximum of {maximum:g}.")
        return number

    return convert


def _choice(kind: type[enum.Enum], case_sensitive: bool) -> Convert:
    def fold(text: str) -> str:
        return text if case_sensitive else text.casefold()

    members = {fold(str(member.value)): member for member in kind}

    def convert(value: Any) -> enum.Enum:
        if isinstance(value, kind):
            return value
        try:
            return members[fold(_to_str(value))]
        except KeyError:
            names = ", ".join(repr(str(member.value)) for member in kind)
            raise ValueError(f"{_to_str(value)!r} is not one of {names}.") from None

    return convert


def plain_converter(annotation: Any, info: Any) -> Convert | None:
    """The converter for a parameter of type ``annotation``, or None to leave it to typer."""
    if getattr(info, "parser", None) is not None or getattr(info, "clamp", False):
        return None
    if get_origin(annotation) is list:
        (item,) = get_args(annotation) or (None,)
        one = plain_converter(item, info)
        if one is None:
            return None
        return lambda values: [one(v) for v in (values if isinstance(values, list | tuple) else [values])]
    if annotation is str:
        return _to_str
    if annotation is bool:
        return _to_bool
    if annotation is int:
        return _integer(getattr(info, "min", None), getattr(info, "max", None))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice(annotation, bool(getattr(info, "case_sensitive", True)))
    return None


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):
        """Typer's per-parameter conversion, done by a plain function (no pydantic)."""

        convert: Convert

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return self.convert(value)
            except ValueError as exc:
                raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None


def _install(param: Any) -> bool:
    descriptor = getattr(param, "type_descriptor", None)
    if RuntimeParam is None or descriptor is None or getattr(param, "_runtime_param", "missing") is not None:
        return False
    convert = plain_converter(descriptor.annotation, descriptor.parameter_info)
    if convert is None:
        return False
    # typer's own slot for the converter it would build on first use: the one hook there is (see above)
    vars(param)["_runtime_param"] = PlainRuntimeParam(
        parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, convert=convert
    )
    return True


#: Commands whose ``get_help_option`` already converts the option it makes.
_HELP_WRAPPED: weakref.WeakSet[Any] = weakref.WeakSet()


def install_plain_conversion(command: Any) -> int:
    """Give the parameters of ``command`` (and of its subcommands) plain converters; how many got one.

    The ``--help`` option is made on first use (it depends on the context), so it gets its
    converter then.
    """
    if RuntimeParam is None:
        return 0
    installed = sum(_install(param) for param in getattr(command, "params", []))
    make_help = getattr(command, "get_help_option", None)
    if make_help is not None and command not in _HELP_WRAPPED:
        _HELP_WRAPPED.add(command)

        def get_help_option(ctx: Any) -> Any:
            option = make_help(ctx)
            if option is not None:
                _install(option)
            return option

        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        installed += install_plain_conversion(sub)
    return installed


class PlainGroup(typer.core.TyperGroup):
    """The app's group: its own and its commands' parameters convert without pydantic."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_plain_conversion(self)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # typer appends --install-completion and --show-completion after making the group
        for param in self.params:
            _install(param)
        return super().parse_args(ctx, args)
