"""Property tests of swarmctl's parsers: discovery URLs, ranges, durations, constraint and affinity expressions.

Each parser promises one error type, the one its caller turns into a clean
message: ``SwarmctlError`` for discovery URLs, entries and durations (the CLI
prints it as one line and exits 1), ``ExpressionError`` for expressions (the
manager answers it 400). Whatever text comes in, nothing else may escape, and
what is accepted must mean what the syntax says. Where a parser has an
inverse (a duration formatted and read again, a range expanded), the round
trip is checked too.

The ``@example``s are inputs that broke a parser once, each kept so that it
stays fixed: a ``²`` taken for a digit by ``str.isdigit`` and then refused by
``int``, a newline accepted in a host name by ``$``, a 400-digit duration read
as infinity, an ``[IPv6`` host in a token URL, a regular expression that
Python's compiler refuses with ``OverflowError`` or ``RecursionError``.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import json
import re
import string
from fractions import Fraction

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from swarmctl.discovery import KNOWN_OPTIONS, new_discovery
from swarmctl.discovery.base import dedupe
from swarmctl.discovery.entry import split_address
from swarmctl.discovery.file import parse_lines
from swarmctl.discovery.kv import KVDiscovery
from swarmctl.discovery.nodes import NodesDiscovery
from swarmctl.discovery.ranges import MAX_ADDRESSES, expand
from swarmctl.discovery.token import TokenDiscovery
from swarmctl.durations import MAX_NANOS, format_duration, parse_duration
from swarmctl.errors import SwarmctlError
from swarmctl.scheduler.expressions import Expression, ExpressionError, parse
from swarmctl.scheduler.request import AFFINITIES_LABEL, CONSTRAINTS_LABEL, ContainerRequest
from tests.support.fuzzing import examples

# -- what valid input looks like -------------------------------------------------------

_LABEL_TEXT = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTNAMES = (
    st.lists(_LABEL_TEXT, min_size=1, max_size=4).map(".".join).filter(lambda h: not re.fullmatch(r"[0-9.]+", h))
)
IPV4 = st.ip_addresses(v=4).map(str)
IPV6 = st.ip_addresses(v=6).map(lambda ip: f"[{ip}]")
PORTS = st.integers(1, 65535)
ADDRESSES = st.builds(lambda host, port: f"{host}:{port}", st.one_of(IPV4, HOSTNAMES, IPV6), PORTS)

#: Characters that matter to each syntax, so that generated junk often comes close to valid input.
ADDRESS_ALPHABET = "0123456789.:[]abz-_,/ \t\n#²٣"
DURATION_ALPHABET = "0123456789.nsuµμmh -+e²٣\n"
EXPRESSION_ALPHABET = "ab_.-09=!~/*?[](){}\\+^$| \t\n"


def _valid_host_port(address: str) -> bool:
    """An independent reading of ``host:port``: what an accepted address must look like."""
    host, sep, port = address.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) <= 65535:
        return False
    if host.startswith("[") and host.endswith("]"):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6
        except ValueError:
            return False
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            return False
        return True
    return re.fullmatch(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?", host) is not None


# -- durations -----------------------------------------------------------------------------

UNIT_NANOS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


@st.composite
def go_durations(draw: st.DrawFn) -> tuple[str, int]:
    """A duration in Go's syntax and its value in nanoseconds (each part's fraction truncated, as Go does)."""
    parts = draw(
        st.lists(
            st.tuples(
                st.integers(0, 10**6), st.none() | st.text("0123456789", max_size=12), st.sampled_from(list(UNIT_NANOS))
            ),
            min_size=1,
            max_size=4,
        )
    )
    text, nanos = "", 0
    for whole, fraction, unit in parts:
        text += str(whole) + (f".{fraction}" if fraction is not None else "") + unit
        nanos += int((whole + Fraction(f"0.{fraction or 0}")) * UNIT_NANOS[unit])
    return text, nanos


@examples(300)
@given(go_durations())
def test_a_go_duration_reads_as_its_value(case: tuple[str, int]) -> None:
    text, nanos = case
    assert parse_duration(text) == nanos / 1e9


@examples(300)
# Nanoseconds while a float's seconds still hold them (~13 days), then whole milliseconds up to ~35 years.
@given(st.integers(0, 2**50) | st.integers(0, 2**40).map(lambda ms: ms * 10**6))
@example(1_000_000_004)  # 1.000000004s: printed as "1s" by a 6-digit %g, read back as 1.0
@example(1_500)  # 1.5µs
@example(3_723_250_000_000)  # 1h2m3.25s
def test_a_formatted_duration_reads_back_exactly(nanos: int) -> None:
    seconds = nanos / 1e9
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


@examples(300)
@given(st.floats(0, MAX_NANOS / 1e9 / 2, allow_nan=False))
def test_any_duration_formats_as_one_that_parses(seconds: float) -> None:
    assert abs(parse_duration(format_duration(seconds)) - seconds) <= max(1e-9, seconds * 1e-15)


@examples(500)
@given(st.text(DURATION_ALPHABET, max_size=30) | st.text(max_size=30))
@example("9" * 400 + "h")  # once read as inf: a timer wait then fails with OverflowError
@example("٣s")  # Arabic-Indic three: taken by \d and float(), refused by Go
@example("²s")
@example("9223372036854775808ns")  # one past Go's largest Duration
@example("1" + "0" * 5000 + "s")  # past int()'s 4,300 digits
@example(".s")
def test_a_duration_is_read_or_refused_with_swarmctl_error(text: str) -> None:
    try:
        seconds = parse_duration(text, "--heartbeat")
    except SwarmctlError as exc:
        assert "--heartbeat" in str(exc) and "\n" not in str(exc).replace(repr(text), "")
        return
    assert 0 <= seconds <= MAX_NANOS / 1e9
    assert re.fullmatch(r"[0-9.nsuµμmh]+", text.strip()), f"{text!r} read as {seconds}"


def test_the_largest_duration_is_go_s() -> None:
    assert parse_duration("9223372036854775807ns") == MAX_NANOS / 1e9
    assert parse_duration("2562047h47m16.854775807s") == MAX_NANOS / 1e9
    with pytest.raises(SwarmctlError, match="largest"):
        parse_duration("2562048h")


# -- ranges and addresses -----------------------------------------------------------------


@examples(200)
@given(st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)), st.integers(0, 255), st.data())
def test_a_range_covers_exactly_its_bounds(prefix: tuple[int, int, int], low: int, data: st.DataObject) -> None:
    high = data.draw(st.integers(low, 255))
    port = data.draw(PORTS)
    head = ".".join(map(str, prefix))
    assert expand(f"{head}.[{low}:{high}]:{port}") == [f"{head}.{n}:{port}" for n in range(low, high + 1)]


@examples(200)
@given(HOSTNAMES, st.integers(1, 65535), st.integers(0, 300))
def test_a_port_range_covers_exactly_its_bounds(host: str, low: int, width: int) -> None:
    high = min(65535, low + width)
    assert expand(f"{host}:[{low}:{high}]") == [f"{host}:{n}" for n in range(low, high + 1)]


@examples(100)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 6)), min_size=1, max_size=4), PORTS)
def test_several_ranges_expand_to_every_combination(ranges: list[tuple[int, int]], port: int) -> None:
    bounds = [(low, min(255, low + width)) for low, width in ranges]
    octets = [f"[{low}:{high}]" for low, high in bounds] + ["7"] * (4 - len(bounds))
    expected = [
        ".".join(map(str, combination)) + f":{port}"
        for combination in itertools.product(
            *[range(low, high + 1) for low, high in bounds], *[[7]] * (4 - len(bounds))
        )
    ]
    assert expand(".".join(octets) + f":{port}") == expected


@examples(1000)
@given(st.text(ADDRESS_ALPHABET, max_size=40) | st.text(max_size=40))
@example("10.0.0.[²:3]:2375")  # "²".isdigit() is True, int("²") a ValueError
@example("10.0.0.1:²")
@example("node\n:2375")  # "$" matched before the final newline: a host name with a newline was accepted
@example("1.2.3." + "0" * 5000 + ":2375")  # past int()'s 4,300 digits
@example("h:" + "0" * 5000 + "1")
@example("10.0.0.[0:99999999999999]:2375")  # would build 10^14 strings before checking any
@example("10.[0:255].[0:255].[0:255]:2375")  # 16,777,216 addresses
@example("[::1]:2375")
@example("[::[1:3]]:2375")
def test_an_entry_expands_to_valid_addresses_or_is_refused(entry: str) -> None:
    try:
        addresses = expand(entry)
    except SwarmctlError as exc:
        assert repr(entry) in str(exc)
        return
    assert addresses and len(addresses) <= MAX_ADDRESSES
    for address in addresses:
        assert _valid_host_port(address), f"{entry!r} gave {address!r}"
        host, port = split_address(address)
        assert address in (f"{host}:{port}", f"[{host}]:{port}") or address.rpartition(":")[2].startswith("0")


# -- discovery URLs ---------------------------------------------------------------------------

SCHEMES = st.sampled_from(["etcd", "consul", "zk", "sqlite", "file", "nodes", "token", "ETCD", "http", "memory", "x"])
OPTIONS = st.dictionaries(st.sampled_from(KNOWN_OPTIONS), st.text(ADDRESS_ALPHABET, max_size=10), max_size=2)


@examples(1000)
@given(
    st.one_of(
        st.builds(lambda scheme, rest: f"{scheme}://{rest}", SCHEMES, st.text(ADDRESS_ALPHABET, max_size=40)),
        st.text(ADDRESS_ALPHABET, max_size=40),
        st.text(max_size=40),
    ),
    OPTIONS,
)
@example("token://[abc/0123abcd", {})  # urlsplit's ValueError "Invalid IPv6 URL"
@example("token://h:99999999/p/0123abcd", {})  # a port urlsplit reads only when asked
@example("etcd://h:²/swarm", {})  # kvstore's port check takes "²" for a digit
@example("consul://[::1/swarm", {})
@example("zk://h1:2181,,h2:2181/swarm", {})
@example("nodes://10.0.0.[1:3]:2375,node\n:2375", {})
@example("10.0.0.1:2375", {"kv.path": "x"})
@example("etcd://127.0.0.1:2379/p", {"kv.cacertfile": "/nonexistent"})
def test_a_discovery_url_is_read_or_refused_with_swarmctl_error(url: str, options: dict[str, str]) -> None:
    try:
        discovery = new_discovery(url, options)
    except SwarmctlError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    try:
        if isinstance(discovery, NodesDiscovery):
            assert all(_valid_host_port(a) for a in discovery.fetch())
    finally:
        discovery.close()


@examples(200)
@given(st.lists(ADDRESSES, min_size=1, max_size=6), st.booleans())
def test_a_node_list_reads_back_as_its_addresses(addresses: list[str], bare: bool) -> None:
    url = ("" if bare else "nodes://") + ",".join(addresses)
    assert new_discovery(url).fetch() == dedupe(addresses)


@examples(200)
@given(st.lists(st.one_of(ADDRESSES, st.just(""), st.just("# a comment")), max_size=8), st.sampled_from(["", " # x"]))
def test_a_discovery_file_reads_back_as_its_addresses(lines: list[str], trailer: str) -> None:
    text = "\n".join(line + (trailer if line and not line.startswith("#") else "") for line in lines)
    assert parse_lines(text, "f") == dedupe([line for line in lines if line and not line.startswith("#")])


@examples(200)
@given(
    st.sampled_from(["etcd", "consul", "zk"]),
    st.lists(st.one_of(ADDRESSES, HOSTNAMES, IPV4), min_size=1, max_size=3),
    st.lists(_LABEL_TEXT, max_size=3).map("/".join),
    st.none() | st.lists(_LABEL_TEXT, min_size=1, max_size=3).map("/".join),
)
def test_a_store_url_names_its_store_and_path(scheme: str, addrs: list[str], prefix: str, path: str | None) -> None:
    url = f"{scheme}://{','.join(addrs)}/{prefix}"
    discovery = new_discovery(url, {"kv.path": path} if path else {})
    assert isinstance(discovery, KVDiscovery)
    assert (discovery.store_url, discovery.path) == (url, path or "docker/swarm/nodes")


@examples(200)
@given(
    st.one_of(HOSTNAMES, IPV4, IPV6),
    st.none() | PORTS,
    st.lists(_LABEL_TEXT, max_size=2),
    st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=32),
)
def test_an_inline_token_url_names_its_service(host: str, port: int | None, path: list[str], token: str) -> None:
    location = host + (f":{port}" if port else "") + "".join(f"/{p}" for p in path)
    discovery = new_discovery(f"token://{location}/{token}")
    assert isinstance(discovery, TokenDiscovery)
    assert discovery.cluster_url == f"https://{location}/clusters/{token}"


# -- constraint and affinity expressions -----------------------------------------------------

KEYS = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,15}", fullmatch=True)
OPERATORS = st.sampled_from(["==", "!="])
#: Plain values and globs: no operator inside, not starting with the soft marker or a slash.
GLOB_VALUES = st.text(string.ascii_letters + string.digits + "-_.:*?[]", min_size=1, max_size=12)
CANDIDATES = st.lists(st.text(string.ascii_letters + string.digits + "-_.:", max_size=12), max_size=5)


@examples(1000)
@given(st.text(EXPRESSION_ALPHABET, max_size=40) | st.text(max_size=40), st.sampled_from(["constraint", "affinity"]))
@example("node==/a{99999999999}/", "constraint")  # OverflowError from Python's regexp compiler
@example("node==/" + "(" * 3000 + ")" * 3000 + "/", "constraint")  # RecursionError from it
@example("image!=~/(/", "affinity")
@example("node==~", "constraint")
@example("node==/", "constraint")
def test_an_expression_is_read_or_refused_with_expression_error(text: str, kind: str) -> None:
    try:
        parsed = parse(text, kind)
    except ExpressionError as exc:
        assert str(exc).startswith(f"invalid {kind} ")
        return
    assert parsed.operator in ("==", "!=") and parsed.key and parsed.value
    parsed.holds(["node1", "", "x" * 10])  # a parsed expression can always be matched


@examples(500)
@given(KEYS, OPERATORS, st.booleans(), GLOB_VALUES | GLOB_VALUES.map(lambda v: f"/{re.escape(v)}/"))
def test_an_expression_reads_back_from_its_text(key: str, operator: str, soft: bool, value: str) -> None:
    written = f"{key}{operator}{'~' if soft else ''}{value}"
    parsed = parse(written)
    assert (parsed.key, parsed.operator, parsed.soft, parsed.value) == (key, operator, soft, value)
    assert str(parsed) == written
    assert parse(f"  {key} {operator} {'~ ' if soft else ''}{value} ") == parsed


@examples(500)
@given(KEYS, GLOB_VALUES, CANDIDATES)
def test_a_glob_matches_as_a_shell_does_and_not_equal_is_its_negation(
    key: str, value: str, candidates: list[str]
) -> None:
    equal, different = parse(f"{key}=={value}"), parse(f"{key}!={value}")
    expected = any(fnmatch.fnmatchcase(c, value) for c in candidates)
    assert equal.holds(candidates) is expected
    assert different.holds(candidates) is not expected
    assert equal.holds(set(candidates)) is expected  # the plain-value set lookup agrees


@examples(300)
@given(KEYS, st.text(min_size=1, max_size=12).filter(lambda v: "==" not in v and "!=" not in v), CANDIDATES)
def test_a_regexp_is_searched_anywhere(key: str, literal: str, candidates: list[str]) -> None:
    assume(literal.strip() == literal)
    expression = parse(f"{key}==/{re.escape(literal)}/")
    assert expression.regexp
    assert expression.holds(candidates) is any(literal in c for c in candidates)
    assert expression.holds([f"x{literal}y"])


def _rules(labels: dict[str, str]) -> tuple[list[Expression], list[Expression]]:
    wanted = ContainerRequest.from_body({"Image": "busybox", "Labels": labels})
    return wanted.constraints, wanted.affinities


@examples(500)
@given(
    st.lists(
        st.tuples(st.sampled_from(["constraint", "affinity", "reschedule"]), st.text(EXPRESSION_ALPHABET)), max_size=3
    ),
    st.dictionaries(st.sampled_from([CONSTRAINTS_LABEL, AFFINITIES_LABEL]), st.text('[]"{}:,1 ab=~\\') | st.text()),
)
@example([], {CONSTRAINTS_LABEL: "[" * 100_000})  # a label's JSON list, nested too deep for json.loads
@example([("constraint", "node==/a{99999999999}/")], {})
@example([], {CONSTRAINTS_LABEL: json.dumps(["node==x", "zone!=~y"])})
def test_rules_in_env_and_labels_read_or_refused_with_expression_error(
    env: list[tuple[str, str]], labels: dict[str, str]
) -> None:
    body = {"Image": "busybox", "Env": [f"{kind}:{text}" for kind, text in env], "Labels": labels}
    try:
        wanted = ContainerRequest.from_body(body)
    except ExpressionError:
        return
    assert all(isinstance(e, Expression) for e in wanted.constraints + wanted.affinities)
    assert not any(str(entry).startswith(("constraint:", "affinity:")) for entry in wanted.body["Env"])
