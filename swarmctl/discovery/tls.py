"""``--discovery-opt kv.cacertfile/certfile/keyfile``: TLS to the store, checked at start.

All three or none, each a readable PEM file, so a typo fails at once with the
file's name instead of as a TLS handshake error minutes later.
"""

from __future__ import annotations

import os

import kvstore

from ..errors import SwarmctlError

_TLS = {"kv.cacertfile": "CERTIFICATE", "kv.certfile": "CERTIFICATE", "kv.keyfile": "PRIVATE KEY"}


def store_config(scheme: str, options: dict[str, str]) -> kvstore.Config:
    """The kvstore ``Config`` for a kv discovery, with TLS when the options ask for it."""
    given = {k: options[k] for k in _TLS if options.get(k)}
    if not given:
        return kvstore.Config()
    missing = [k for k in _TLS if k not in given]
    if missing:
        raise SwarmctlError(
            f"TLS to the store needs kv.cacertfile, kv.certfile and kv.keyfile together; missing {', '.join(missing)}"
        )
    if scheme == "sqlite":
        raise SwarmctlError("sqlite:// is a local file: the kv.* TLS options do not apply to it")
    for option, marker in _TLS.items():
        _check_pem(option, given[option], marker)
    return kvstore.Config(
        tls=kvstore.ClientTLS(
            ca_cert_file=given["kv.cacertfile"], cert_file=given["kv.certfile"], key_file=given["kv.keyfile"]
        )
    )


def _check_pem(option: str, path: str, marker: str) -> None:
    if not os.path.isfile(path):
        raise SwarmctlError(f"--discovery-opt {option}={path}: no such file")
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 16)
    except OSError as exc:
        raise SwarmctlError(f"--discovery-opt {option}={path}: cannot read it ({exc.strerror})") from None
    if b"-----BEGIN " not in head or marker.encode() not in head:
        raise SwarmctlError(f"--discovery-opt {option}={path}: not a PEM {marker.lower()} file")
