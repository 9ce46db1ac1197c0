"""TLS for ``manage``: on its own API (``--tls``/``--tlsverify``) and towards engines and the primary.

Docker's meaning of the flags: ``--tls`` serves TLS with ``--tlscert``/``--tlskey``;
``--tlsverify`` implies it and also demands client certificates signed by
``--tlscacert``. As Docker Swarm did, the manager presents the same
certificate as a client to the engines (and a replica to the primary), and
with ``--tlsverify`` checks their certificates against the same CA.
Unset paths default to ``~/.docker/{ca,cert,key}.pem``, as for the docker CLI.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass

from .errors import SwarmctlError


@dataclass(frozen=True)
class TLSFiles:
    verify: bool
    ca: str
    cert: str
    key: str


def tls_files(tls: bool, tlsverify: bool, ca: str, cert: str, key: str) -> TLSFiles | None:
    """The checked files, or None when no TLS was asked for."""
    if not (tls or tlsverify):
        if ca or cert or key:
            raise SwarmctlError("--tlscacert/--tlscert/--tlskey need --tls or --tlsverify")
        return None
    home = os.path.join(os.path.expanduser("~"), ".docker")
    files = TLSFiles(
        verify=tlsverify,
        ca=ca or os.path.join(home, "ca.pem"),
        cert=cert or os.path.join(home, "cert.pem"),
        key=key or os.path.join(home, "key.pem"),
    )
    needed = [("--tlscert", files.cert), ("--tlskey", files.key)]
    if tlsverify:
        needed.insert(0, ("--tlscacert", files.ca))
    for flag, path in needed:
        if not os.path.isfile(path):
            raise SwarmctlError(f"{flag} {path}: no such file")
    return files


def server_context(files: TLSFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(files.cert, files.key)
        if files.verify:
            context.load_verify_locations(files.ca)
            context.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as exc:
        raise SwarmctlError(f"cannot use the TLS files {files.cert}, {files.key}, {files.ca}: {exc}") from None
    return context


def client_context(files: TLSFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        if files.verify:
            context.load_verify_locations(files.ca)
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise SwarmctlError(f"cannot use the TLS files {files.cert}, {files.key}, {files.ca}: {exc}") from None
    return context
