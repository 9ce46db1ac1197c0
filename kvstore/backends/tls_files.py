"""The one check of ``Config.tls`` files, made before any connection.

Every network backend reads its certificate files here first: a missing,
unreadable or non-PEM file, or a certificate without its key, then fails at
once with an error that names the file, instead of as a TLS handshake
failure (or a silent retry loop inside a client library) after the
connection timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidArgumentError, KVStoreError
from ..store import ClientTLS


@dataclass(frozen=True)
class TLSFiles:
    """The contents of the files of a :class:`~kvstore.ClientTLS` (None where none was named)."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None


def read_tls_files(
    backend: str,
    tls: ClientTLS,
    *,
    unreadable: type[KVStoreError] = InvalidArgumentError,
    key_may_be_in_cert: bool = False,
) -> TLSFiles:
    """Read and check the files of ``tls`` for ``backend`` (which names itself in the errors).

    A file that cannot be read, or holds no PEM data, raises ``unreadable``
    (each backend keeps the error class it always raised for it). A
    certificate goes with its key: both or neither, unless
    ``key_may_be_in_cert`` (the key may then sit in the certificate's file).
    """
    if key_may_be_in_cert:
        if tls.key_file and not tls.cert_file:
            raise InvalidArgumentError(f"{backend} TLS: a key_file needs its cert_file")
    elif bool(tls.cert_file) != bool(tls.key_file):
        raise InvalidArgumentError(f"{backend} TLS: cert_file and key_file go together (give both or neither)")
    ca = _read(backend, tls.ca_cert_file, "CA certificate", b"-----BEGIN", unreadable)
    cert = _read(backend, tls.cert_file, "client certificate", b"-----BEGIN", unreadable)
    key_marker = b"PRIVATE KEY"
    if tls.key_file:
        key = _read(backend, tls.key_file, "client key", key_marker, unreadable)
    else:
        key = None
        if cert is not None and key_marker not in cert:
            raise unreadable(f"{backend} TLS: the client certificate file {tls.cert_file!r} holds no private key")
    return TLSFiles(ca, cert, key)


def _read(backend: str, path: str | None, role: str, marker: bytes, error: type[KVStoreError]) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise error(f"{backend} TLS: the {role} file {path!r} was not found") from None
    except OSError as exc:
        raise error(f"{backend} TLS: cannot read the {role} file {path!r}: {exc.strerror}") from None
    if marker not in data:
        what = "PEM private key" if marker == b"PRIVATE KEY" else "PEM data"
        raise error(f"{backend} TLS: the {role} file {path!r} holds no {what}")
    return data
