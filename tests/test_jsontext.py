"""Deep JSON kept as text (swarmctl/jsontext.py): written as json.dumps writes it, copied without recursion."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swarmctl.jsontext import Verbatim, dumps, encode, shallow

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels of alternating lists and objects around ``leaf`` (built without recursion)."""
    value = leaf
    for level in range(depth):
        value = [value, "x"] if level % 2 else {"k": value, "n": level}
    return value


@given(JSON)
def test_encode_writes_what_json_dumps_writes(value: Any) -> None:
    assert encode(value) == json.dumps(value)


@given(JSON, st.integers(1, 4))
def test_a_value_cut_short_is_written_as_it_was(value: Any, depth: int) -> None:
    assert dumps(shallow(value, depth)) == json.dumps(value)


def test_ten_thousand_levels_are_copied_and_written_whole() -> None:
    deep = {"Image": "busybox", "X": nested(10_000)}
    kept = shallow(deep)
    assert isinstance(kept["X"], list) and kept["Image"] == "busybox"
    copied = copy.deepcopy(kept)  # would exceed the recursion limit on the deep value itself
    text = dumps(copied)
    assert text == encode(deep)
    assert text.count("[") == 5_000 and text.count("{") == 5_001


def test_a_shallow_value_is_returned_as_it_is() -> None:
    body = {"Image": "busybox", "HostConfig": {"Binds": ["/a:/b"]}}
    assert shallow(body) is body


def test_kept_text_is_written_once_where_it_stood() -> None:
    kept = {"a": Verbatim("[1, [2]]"), "b": [Verbatim("{}"), "\x00"], "c": "[1, [2]]"}
    assert dumps(kept) == '{"a": [1, [2]], "b": [{}, "\\u0000"], "c": "[1, [2]]"}'


def test_anything_else_that_is_not_json_is_refused_as_json_dumps_refuses_it() -> None:
    try:
        dumps({"a": object()})
    except TypeError as exc:
        assert "not JSON serializable" in str(exc)
    else:
        raise AssertionError("an object was written as JSON")
