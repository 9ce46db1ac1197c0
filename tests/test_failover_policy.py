"""The failover policy, the same awaited (``Failover.acall``, for kvstore.aio) as called (``Failover.call``).

The policy's inputs are plain functions here: which address answers and how
the others fail is the test's to choose, so each rule is checked on its own.
The backends' own tests run it against real, failing servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

import pytest

from kvstore.backends.failover import Failover, Retry, Rotation
from kvstore.errors import KVStoreError, NotReachableError

T = TypeVar("T")


class Down(Exception):
    """An address that does not answer."""


class BadCertificate(Exception):
    """An address whose TLS handshake fails."""


def classify(exc: Exception, endpoint: str, what: str) -> Retry | KVStoreError:
    if isinstance(exc, BadCertificate):
        return Retry(NotReachableError(f"{what}: TLS to {endpoint}"), "handshake", tls=True)
    if isinstance(exc, Down):
        return Retry(NotReachableError(f"{what}: {endpoint} down"), "down")
    return KVStoreError(f"{what}: {exc}")


def failover(addresses: list[str], closed: list[bool] | None = None) -> Failover[str]:
    state = closed if closed is not None else [False]
    return Failover(
        Rotation(addresses),
        catch=(Down, BadCertificate, ValueError),
        classify=classify,
        closed=lambda what: KVStoreError(f"{what}: closed") if state[0] else None,
    )


def run_both(policy: Failover[str], attempt: Callable[[str, float], T], budget: float, face: str) -> T:
    if face == "sync":
        return policy.call("get", attempt, budget)

    async def attempt_async(endpoint: str, timeout: float) -> T:
        await asyncio.sleep(0)
        return attempt(endpoint, timeout)

    return asyncio.run(policy.acall("get", attempt_async, budget))


FACES = pytest.mark.parametrize("face", ["sync", "async"])


@FACES
def test_a_dead_address_is_skipped_and_the_one_that_answered_stays_current(face: str) -> None:
    policy = failover(["a", "b", "c"])
    asked: list[str] = []

    def attempt(endpoint: str, _timeout: float) -> str:
        asked.append(endpoint)
        if endpoint == "a":
            raise Down
        return f"from {endpoint}"

    assert run_both(policy, attempt, 5.0, face) == "from b"
    assert run_both(policy, attempt, 5.0, face) == "from b"
    assert asked == ["a", "b", "b"]


@FACES
def test_an_error_no_other_address_can_help_with_is_raised_at_once(face: str) -> None:
    policy = failover(["a", "b"])
    asked: list[str] = []

    def attempt(endpoint: str, _timeout: float) -> str:
        asked.append(endpoint)
        raise ValueError("bad request")

    with pytest.raises(KVStoreError, match="bad request"):
        run_both(policy, attempt, 5.0, face)
    assert asked == ["a"]


@FACES
def test_when_every_address_fails_its_tls_handshake_the_call_gives_up_before_the_budget(face: str) -> None:
    policy = failover(["a", "b"])
    asked: list[str] = []

    def attempt(endpoint: str, _timeout: float) -> str:
        asked.append(endpoint)
        raise BadCertificate

    with pytest.raises(NotReachableError, match="TLS"):
        run_both(policy, attempt, 3600.0, face)  # an hour's budget: only the TLS rule can end this call
    assert asked == ["a", "b"]


@FACES
def test_a_spent_budget_raises_the_last_failure_after_rounds_of_every_address(face: str) -> None:
    policy = failover(["a", "b"])
    asked: list[str] = []

    def attempt(endpoint: str, _timeout: float) -> str:
        asked.append(endpoint)
        raise Down

    with pytest.raises(NotReachableError, match="down"):
        run_both(policy, attempt, 0.3, face)
    assert asked[:4] == ["a", "b", "a", "b"]


@FACES
def test_a_closed_store_is_asked_before_every_attempt(face: str) -> None:
    closed = [False]
    policy = failover(["a", "b"], closed)

    def attempt(endpoint: str, _timeout: float) -> str:
        closed[0] = True
        raise Down

    with pytest.raises(KVStoreError, match="closed"):
        run_both(policy, attempt, 5.0, face)


def test_the_async_back_off_lets_the_loop_run() -> None:
    policy = failover(["a"])
    turns = 0

    async def ticker() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0.01)
            turns += 1

    async def attempt(_endpoint: str, _timeout: float) -> str:
        raise Down

    async def main() -> None:
        task = asyncio.create_task(ticker())
        try:
            with pytest.raises(NotReachableError):
                await policy.acall("get", attempt, 0.5)
        finally:
            task.cancel()
        assert turns > 0, "the back-off between attempts held the event loop"

    asyncio.run(main())
