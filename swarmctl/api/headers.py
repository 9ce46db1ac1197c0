"""The headers every answer carries: ours (``Server``, ``Api-Version``) and the engine's when it sent them.

``Api-Version`` and ``Server`` are the manager's even on an answer relayed
from an engine (the docker CLI negotiates its version down to the cluster's);
``Docker-Experimental`` and ``Ostype`` are the engine's when it sent them.

They are set without an aiohttp ``on_response_prepare`` signal, which would
cost a coroutine and four header writes on every answer, cached ones too:

- an answer the manager makes from cached bytes (``/info``, ``docker ps``)
  is an :class:`Answer`, made with one copy of headers built once per change
  of the nodes (:func:`answer`);
- any other unsent answer a handler returns is stamped by the app's handler
  wrapper (:func:`stamp`);
- an answer streamed from inside a handler is started with :func:`prepare`.
"""

from __future__ import annotations

from aiohttp import hdrs, web
from multidict import CIMultiDict, istr

from .. import __version__
from .context import Manager, manager_of

#: What every answer says about its server (the same for the whole process).
SERVER = f"swarmctl/{__version__}"
API_VERSION = istr("Api-Version")
EXPERIMENTAL = istr("Docker-Experimental")
OSTYPE = istr("Ostype")
#: Where :func:`answer` keeps its headers among the manager's answers, with the API version they say.
_JSON_HEADERS = "json-headers"


def stamp(manager: Manager, headers: CIMultiDict[str]) -> None:
    """Our ``Api-Version`` and ``Server``, and the engine's defaults where it said nothing."""
    headers[API_VERSION] = manager.api_version()
    headers[hdrs.SERVER] = SERVER
    if EXPERIMENTAL not in headers:
        headers[EXPERIMENTAL] = "false"
    if OSTYPE not in headers:
        headers[OSTYPE] = "linux"


class Answer(web.Response):
    """A JSON answer already carrying the manager's headers (see :func:`answer`): the wrapper leaves it be."""


def answer(manager: Manager, body: bytes, status: int = 200) -> Answer:
    """``body`` as a JSON answer, its headers one copy of a set made once per API version."""
    version = manager.api_version()
    headers: CIMultiDict[str] | None = manager.fresh(_JSON_HEADERS, version)
    if headers is None:
        headers = manager.keep(_JSON_HEADERS, version, CIMultiDict({hdrs.CONTENT_TYPE: "application/json"}))
        stamp(manager, headers)
    return Answer(body=body, status=status, headers=headers)


async def prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Start a streamed answer with the headers every answer carries."""
    stamp(manager_of(request), response.headers)
    await response.prepare(request)
