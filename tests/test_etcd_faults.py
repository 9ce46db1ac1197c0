"""A real three-member etcd that cannot answer for a while: elections, lost quorum, frozen members.

What the etcd backend must do then (issue 14):

- every error that means "this member cannot answer now" sends the call to
  the next member within the caller's budget, including the ``UNKNOWN:
  context deadline exceeded`` a member without quorum answers a write with
  when its own request timeout (5 s plus two election timeouts) runs out;
- a call that runs out of budget says which members it really tried, and
  which there was no time for;
- one attempt gets a share of the budget, so ``join``'s write of one
  heartbeat reaches every member, and a node joined with ``--heartbeat 2s
  --ttl 6s`` stays registered while the leader is killed or frozen;
- ``swarmctl list --timeout 5s`` succeeds while the cluster elects a new leader.

What these tests assert is what the store shows (the key present at every
poll, the members' own request counters), never how long something took.
"""

from __future__ import annotations

import contextlib
import re
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import kvstore
from kvstore import Config
from tests.support.etcd import EtcdCluster, EtcdMember, etcd_cluster
from tests.support.process import wait_for
from tests.support.swarm import Join, run_swarmctl

#: Generous: an election on a loaded 2-core machine takes a few seconds.
DEADLINE = 45.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    with etcd_cluster(tmp_path_factory.mktemp("etcd-faults"), size=3) as running:
        yield running


@pytest.fixture
def leader(cluster: EtcdCluster) -> Iterator[EtcdMember]:
    """The current leader; whatever a test kills or freezes is brought back after it, and the cluster healed."""
    yield cluster.wait_for_leader()
    for member in cluster.members:
        cluster.thaw_member(member)
    cluster.restart_stopped()


def leader_first(cluster: EtcdCluster, leader: EtcdMember) -> list[str]:
    return [leader.endpoint] + [m.endpoint for m in cluster.members if m is not leader]


def handled(member: EtcdMember, method: str, code: str) -> int:
    """How many ``method`` calls ``member`` has answered with gRPC ``code``, from its own /metrics."""
    with urllib.request.urlopen(f"http://{member.endpoint}/metrics", timeout=5) as response:
        text = response.read().decode()
    pattern = rf'^grpc_server_handled_total\{{grpc_code="{code}",grpc_method="{method}",[^}}]*\}} (\S+)$'
    return sum(int(float(m)) for m in re.findall(pattern, text, re.MULTILINE))


def test_a_write_the_member_times_out_itself_goes_to_the_next_member(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """A member without quorum answers the lease grant with UNKNOWN "context deadline exceeded": not an error.

    The leader and one follower are frozen, so the one member left cannot
    commit anything; the store tries it first. Once that member has given
    its answer (its own counter of LeaseGrant calls answered Unknown goes
    up), the quorum comes back: the put, still within its budget, must then
    succeed on another member instead of failing with that answer.
    """
    alone, other = (m for m in cluster.members if m is not leader)
    before = handled(alone, "LeaseGrant", "Unknown")
    addrs = [alone.endpoint, leader.endpoint, other.endpoint]
    outcome: list[BaseException | None] = []
    with kvstore.new_store("etcd", addrs, Config(connection_timeout=40.0)) as store:
        cluster.freeze_member(leader)
        cluster.freeze_member(other)

        def put() -> None:
            try:
                store.put("faults/unknown", b"v", ttl=30)
                outcome.append(None)
            except BaseException as exc:  # reported by the test thread
                outcome.append(exc)

        writer = threading.Thread(target=put, daemon=True)
        writer.start()
        try:
            wait_for(
                lambda: handled(alone, "LeaseGrant", "Unknown") > before or bool(outcome),
                DEADLINE,
                "the member without quorum to time the lease grant out",
                interval=0.2,
            )
        finally:
            cluster.thaw_member(leader)
            cluster.thaw_member(other)
        writer.join(DEADLINE)
        assert outcome == [None], f"the put failed instead of moving to another member: {outcome}"
        assert store.get("faults/unknown").value == b"v"


def _frozen_but_connected(cluster: EtcdCluster, stack: contextlib.ExitStack) -> None:
    """Connect to every member, then freeze them all: each call now hangs until its deadline.

    gRPC shares a connection among the channels of a process that go to
    the same address, so a store opened afterwards finds every member
    connected, as a long-running client does; a fresh connection to a
    frozen member would fail at once instead (no SETTINGS frame).
    """
    for member in cluster.members:
        warm = stack.enter_context(kvstore.new_store("etcd", [member.endpoint], Config(connection_timeout=5.0)))
        warm.exists("faults/warm")
    for member in cluster.members:
        cluster.freeze_member(member)


def _tried(message: str) -> str:
    """The part of a NotReachableError message that lists the members tried."""
    return message.split("; no time was left", 1)[0]


def test_running_out_of_budget_names_the_members_really_tried(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """Every member frozen: the error names those tried (with their answer) and those never reached."""
    first, second, third = addrs = [m.endpoint for m in cluster.members]
    with contextlib.ExitStack() as stack:
        _frozen_but_connected(cluster, stack)
        # Half a second is one attempt: only the first member is tried, and the message must say so.
        with (
            kvstore.new_store("etcd", addrs, Config(connection_timeout=0.5)) as store,
            pytest.raises(kvstore.NotReachableError) as short,
        ):
            store.put("faults/budget", b"v")
        message = str(short.value)
        assert "no etcd member of" not in message, message
        assert first in _tried(message) and "once" in _tried(message), message
        assert second not in _tried(message) and third not in _tried(message), message
        assert message.endswith(f"no time was left to try {second}, {third}"), message

        # join's budget for --heartbeat 2s: one write (a lease grant and a put) reaches every member.
        with (
            kvstore.new_store("etcd", addrs, Config(connection_timeout=2.0)) as store,
            pytest.raises(kvstore.NotReachableError) as whole,
        ):
            store.put("faults/budget", b"v", ttl=6)
        message = str(whole.value)
        assert all(addr in _tried(message) for addr in addrs), message
        assert "no time was left" not in message, message


def _poll_registration(
    cluster: EtcdCluster, key: str, stop: threading.Event, seen: list[int], missing: list[int]
) -> None:
    """Poll ``key`` on whatever member answers: record each new revision, and every poll that found it gone."""
    with kvstore.new_store("etcd", cluster.endpoints, Config(connection_timeout=3.0)) as store:
        while not stop.wait(0.2):
            try:
                pair = store.get(key)
            except kvstore.KeyNotFoundError:
                if seen:
                    missing.append(len(seen))
                continue
            except kvstore.KVStoreError:
                continue  # the poller's own call failed: that says nothing about the key
            if not seen or pair.last_index != seen[-1]:
                seen.append(pair.last_index)


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_join_stays_registered_while_the_leader_fails(
    cluster: EtcdCluster, leader: EtcdMember, tmp_path: Path, fault: str
) -> None:
    """``join --heartbeat 2s --ttl 6s`` on a leader-first URL: its entry is present at every poll throughout.

    The node's entry is polled five times a second on another connection.
    After the leader is killed (or frozen, which is worse: every attempt
    there hangs until its deadline), join must write again before the TTL
    runs out; the entry is never found missing, and several more writes
    land after the fault.
    """
    url = "etcd://" + ",".join(leader_first(cluster, leader)) + "/faults-" + fault
    key = "faults-" + fault + "/docker/swarm/nodes/127.0.0.1:2375"
    seen: list[int] = []
    missing: list[int] = []
    stop = threading.Event()
    poller = threading.Thread(target=_poll_registration, args=(cluster, key, stop, seen, missing), daemon=True)
    join = Join(tmp_path, "127.0.0.1:2375", url, heartbeat="2s", ttl="6s").start()
    try:
        poller.start()
        wait_for(lambda: len(seen) >= 2, DEADLINE, "join to write twice")
        if fault == "kill":
            cluster.kill_member(leader)
        else:
            cluster.freeze_member(leader)
        at_fault = len(seen)
        wait_for(lambda: len(seen) >= at_fault + 4, DEADLINE, "four more writes after the leader failed")
    finally:
        stop.set()
        poller.join(10)
        join.stop()
    assert not missing, f"the entry was missing at {len(missing)} polls, after write #{missing[0]}:\n{join.log_tail()}"


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_list_succeeds_during_the_election(cluster: EtcdCluster, leader: EtcdMember, fault: str) -> None:
    """``swarmctl list --timeout 5s`` right after the leader fails: it retries within its timeout and succeeds."""
    with kvstore.new_store("etcd", cluster.endpoints) as store:
        store.put("faults-list/docker/swarm/nodes/127.0.0.1:2375", b"127.0.0.1:2375")
    url = "etcd://" + ",".join(leader_first(cluster, leader)) + "/faults-list"
    if fault == "kill":
        cluster.kill_member(leader)
    else:
        cluster.freeze_member(leader)
    for _ in range(3):
        result = run_swarmctl("list", "--timeout", "5s", url)
        assert (result.returncode, result.stdout, result.stderr) == (0, "127.0.0.1:2375\n", "")


def test_list_that_cannot_be_answered_says_what_it_tried(cluster: EtcdCluster, leader: EtcdMember) -> None:
    """No member answers: one line naming the members tried, exit 1, no traceback."""
    for member in cluster.members:
        cluster.freeze_member(member)
    result = run_swarmctl("list", "--timeout", "2s", cluster.url)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "tried" in lines[0] and all(addr in lines[0] for addr in cluster.endpoints), lines[0]
