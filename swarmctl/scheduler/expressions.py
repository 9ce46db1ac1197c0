"""Constraint and affinity expressions: ``key==value``, ``key!=value``, globs, ``/regexps/``, soft ``==~``.

The language is Docker Swarm's: a key (letters, digits, ``.``, ``-``, ``_``),
an operator (``==`` or ``!=``), then a value. A value is matched against the
node's (or its containers') strings as

- a glob when written plainly (``node==node*``, ``zone==z[12]``): the whole
  string must match, ``*``, ``?`` and ``[...]`` as in a shell;
- a regular expression between slashes (``node==/node-[0-9]+/``): found
  anywhere in the string (as Go's ``regexp.MatchString`` did for Swarm);

and a ``~`` right after the operator (``==~``, ``!=~``) makes it *soft*: the
scheduler honours it when some node can, and ignores it otherwise. Matching is
case-sensitive, as in Swarm.

Unlike Swarm, which logged a bad regular expression and matched nothing, an
expression that cannot be read is an :class:`ExpressionError` whose message
names the expression and says what is wrong, so that ``docker run`` fails at
once with a 400 instead of placing the container by a rule the user did not
mean.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection
from dataclasses import dataclass, field

EQ, NE = "==", "!="
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_OPERATOR = re.compile(r"==|!=")


class ExpressionError(ValueError):
    """A constraint or affinity that cannot be read; a client error (HTTP 400)."""


@dataclass(frozen=True)
class Expression:
    """One parsed ``key op value``; ``kind`` (constraint, affinity) is only for messages."""

    kind: str
    key: str
    operator: str
    value: str
    soft: bool = False
    pattern: re.Pattern[str] = field(compare=False, repr=False, default=re.compile(""))
    #: True for ``/regexp/`` (searched), False for a glob (matched whole).
    regexp: bool = False
    #: Neither a regexp nor a glob with wildcards: an exact string, looked up without a regexp.
    plain: bool = False

    def matches(self, *candidates: str) -> bool:
        """Whether the expression holds for a subject described by ``candidates``.

        ``==`` holds when any candidate matches; ``!=`` when none does, so that
        ``container!=web`` means "no container named web here".
        """
        return self.holds(candidates)

    def holds(self, candidates: Collection[str]) -> bool:
        """:meth:`matches` on a collection; a plain value is looked up in a set without a regexp."""
        if self.plain and isinstance(candidates, (set, frozenset)):
            found = self.value in candidates
        elif self.regexp:
            found = any(self.pattern.search(c) for c in candidates)
        else:
            found = any(self.pattern.match(c) for c in candidates)
        return found if self.operator == EQ else not found

    def __str__(self) -> str:
        return f"{self.key}{self.operator}{'~' if self.soft else ''}{self.value}"


def parse(text: str, kind: str = "constraint") -> Expression:
    """Read one expression, e.g. ``node==node1``; :class:`ExpressionError` says what is wrong."""
    written = text.strip()
    quoted = f'{kind} "{text}"'
    operator = _OPERATOR.search(written)
    if operator is None:
        raise ExpressionError(f"invalid {quoted}: expected KEY==VALUE or KEY!=VALUE (e.g. node==node1)")
    key = written[: operator.start()].strip()
    value = written[operator.end() :].strip()
    if not key:
        raise ExpressionError(f"invalid {quoted}: the key before {operator[0]} is missing")
    if not _KEY.fullmatch(key):
        raise ExpressionError(f"invalid {quoted}: the key {key!r} may only hold letters, digits, '.', '-' and '_'")
    soft = value.startswith("~")
    if soft:
        value = value[1:].strip()
    if not value:
        raise ExpressionError(f"invalid {quoted}: the value after {operator[0]}{'~' if soft else ''} is missing")
    if _OPERATOR.search(value):
        raise ExpressionError(f"invalid {quoted}: only one == or != per expression")
    if value.startswith("/"):
        if len(value) < 2 or not value.endswith("/"):
            raise ExpressionError(f"invalid {quoted}: the regular expression {value} is not closed with '/'")
        body = value[1:-1]
        if not body:
            raise ExpressionError(f"invalid {quoted}: the regular expression // is empty")
        pattern = _compile(body, quoted, value)
        return Expression(kind, key, operator[0], value, soft, pattern, regexp=True)
    plain = not any(ch in value for ch in "*?[")
    return Expression(kind, key, operator[0], value, soft, re.compile(fnmatch.translate(value)), plain=plain)


def _compile(body: str, quoted: str, value: str) -> re.Pattern[str]:
    """The ``/regexp/``'s pattern; every way ``re`` refuses one is an :class:`ExpressionError`.

    Besides ``re.error``, Python's compiler raises ``OverflowError`` for a
    repeat count past its limit (``a{99999999999}``) and ``RecursionError``
    for deeply nested groups: both are the user's bad expression, not ours.
    """
    try:
        return re.compile(body)
    except re.error as exc:
        raise ExpressionError(f"invalid {quoted}: bad regular expression {value}: {exc}") from None
    except OverflowError:
        raise ExpressionError(
            f"invalid {quoted}: bad regular expression {value}: a repeat count is too large"
        ) from None
    except RecursionError:
        raise ExpressionError(f"invalid {quoted}: bad regular expression {value}: nested too deeply") from None


def parse_all(texts: list[str], kind: str) -> list[Expression]:
    return [parse(text, kind) for text in texts]
