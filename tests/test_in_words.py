"""Failures put in words for users: never a Python class name where the exception says nothing."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from swarmctl.errors import in_words


@pytest.mark.parametrize(
    ("exc", "words"),
    [
        (TimeoutError(), "no answer in time"),
        (ConnectionResetError(), "the connection was reset"),
        (ConnectionRefusedError(), "the connection was refused"),
        (aiohttp.ServerDisconnectedError(), "Server disconnected"),
        (OSError(), "a network error"),
        (KeyError(), "an unexpected failure"),
        (ValueError("bad port 'x'"), "bad port 'x'"),
    ],
)
def test_in_words(exc: BaseException, words: str) -> None:
    assert in_words(exc) == words


def test_a_failed_connection_names_the_address_and_the_reason() -> None:
    async def connect(url: str) -> BaseException:
        async with aiohttp.ClientSession() as session:
            try:
                await session.get(url)
            except aiohttp.ClientError as exc:
                return exc
        raise AssertionError(f"{url} answered")

    refused = asyncio.run(connect("http://127.0.0.1:9/_ping"))  # the discard port: nothing listens
    assert in_words(refused) == "cannot connect to 127.0.0.1:9: connection refused"
    unknown = asyncio.run(connect("http://no-such-host.invalid:2375/_ping"))
    assert in_words(unknown).startswith("cannot connect to no-such-host.invalid:2375: ")
    assert "ssl:default" not in in_words(unknown)
