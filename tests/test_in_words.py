"""Failures put in words for users: never a Python class name where the exception says nothing."""

from __future__ import annotations

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
