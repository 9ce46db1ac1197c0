"""``swarmctl certs``: a certificate authority and the certificates a TLS cluster needs.

The documented production set-up is TLS everywhere: swarmctl to its store
(``kv.cacertfile/certfile/keyfile``), the managers to the engines and the
docker CLI to the managers (``--tlsverify --tlscacert/--tlscert/--tlskey``),
each side checking that the other's certificate comes from the cluster's CA.
Making those files with openssl is easy to get subtly wrong (a missing
subjectAltName, no clientAuth usage, a key readable by everyone), so this
module makes them with ``cryptography``:

- ``DIR/ca.pem`` and ``DIR/ca-key.pem``: the CA (its key readable by its
  owner only; keep it off the machines that only need certificates).
- ``DIR/NAME/ca.pem``, ``DIR/NAME/cert.pem``, ``DIR/NAME/key.pem``: one
  certificate per directory under Docker's own file names, so a directory is
  what ``docker --tlsverify`` reads from ``DOCKER_CERT_PATH`` and what
  ``--tlscacert/--tlscert/--tlskey``, dockerd, etcd (``--trusted-ca-file
  --cert-file --key-file``), ZooKeeper and the ``kv.*`` options take. A
  machine gets only its own directory.

Server certificates name the hosts clients reach them by (IP addresses and
DNS names in subjectAltName, which is all TLS clients check) and may also act
as clients (``clientAuth`` as well as ``serverAuth``): a manager presents the
same certificate to the engines, an etcd member's gateway to itself. Client
certificates carry ``clientAuth`` only, and their own name as subjectAltName
(verifiers that follow RFC 5280 strictly want one). Keys are ECDSA P-256 by default (RSA
3072 on request); the CA lives 10 years, certificates 825 days, starting
five minutes ago to forgive clocks that are slightly behind. Nothing is ever
overwritten unless asked (``force``).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import SwarmctlError

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

KeyType = Literal["ec", "rsa"]
CA_DAYS = 3650
CERT_DAYS = 825
RSA_BITS = 3072
BACKDATE = datetime.timedelta(minutes=5)
CA_CERT, CA_KEY = "ca.pem", "ca-key.pem"
CERT, KEY = "cert.pem", "key.pem"
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS = re.compile(rf"^(?=.{{1,253}}$)(\*\.)?{_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True)
class Issued:
    """Where one certificate's files went."""

    directory: Path
    ca: Path
    cert: Path
    key: Path


def check_name(name: str) -> str:
    """A certificate's name is its directory's and its subject's: a DNS name of at most 64 characters."""
    if len(name) > 64 or name.startswith("*") or not _DNS.match(name):
        raise SwarmctlError(f"invalid certificate name {name!r}: use a DNS name (letters, digits, '-' and '.')")
    return name


def check_days(days: int) -> int:
    if not 1 <= days <= 36500:
        raise SwarmctlError(f"--days must be between 1 and 36500, not {days}")
    return days


def split_hosts(hosts: list[str]) -> tuple[list[ipaddress.IPv4Address | ipaddress.IPv6Address], list[str]]:
    """``--host`` values (repeatable, or comma-separated) as IP addresses and DNS names, each checked."""
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    names: list[str] = []
    for item in (part.strip() for text in hosts for part in text.split(",")):
        if not item:
            continue
        try:
            ips.append(ipaddress.ip_address(item.strip("[]")))
            continue
        except ValueError:
            pass
        if not _DNS.match(item):
            raise SwarmctlError(f"--host {item!r} is neither an IP address nor a DNS name")
        names.append(item.lower())
    if not ips and not names:
        raise SwarmctlError("a server certificate needs at least one --host (an IP address or DNS name clients use)")
    return list(dict.fromkeys(ips)), list(dict.fromkeys(names))


def _new_key(kind: KeyType) -> PrivateKey:
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not ca,  # RSA key exchange (TLS 1.2); ECDSA keys only sign
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _refuse_existing(paths: list[Path], force: bool) -> None:
    existing = [str(p) for p in paths if p.exists()]
    if existing and not force:
        raise SwarmctlError(f"{existing[0]} exists: not overwriting it (give --force to replace it)")


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` whole or not at all, with ``mode`` from the start (a key is never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def make_ca(
    directory: Path, *, name: str = "swarmctl-ca", days: int = CA_DAYS, key_type: KeyType = "ec", force: bool = False
) -> Issued:
    """A new CA in ``directory`` (``ca.pem``, ``ca-key.pem``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    if not name.strip():
        raise SwarmctlError("the CA's --name must not be empty")
    check_days(days)
    ca_path, key_path = directory / CA_CERT, directory / CA_KEY
    _refuse_existing([ca_path, key_path], force)
    key = _new_key(key_type)
    now = datetime.datetime.now(datetime.UTC)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, rsa_key=key_type == "rsa"), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key), 0o600)
    _write(ca_path, _cert_pem(cert), 0o644)
    return Issued(directory, ca_path, ca_path, key_path)


def _load_ca(directory: Path) -> tuple[x509.Certificate, PrivateKey, bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not ca_path.is_file() or not key_path.is_file():
        raise SwarmctlError(f"no CA in {directory} (make one first: swarmctl certs ca --dir {directory})")
    try:
        ca_pem = ca_path.read_bytes()
        cert = x509.load_pem_x509_certificate(ca_pem)
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SwarmctlError(f"cannot read the CA in {directory}: {exc}") from None
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise SwarmctlError(f"{key_path}: not a key that can sign certificates")
    return cert, key, ca_pem


def issue(
    directory: Path,
    name: str,
    *,
    hosts: list[str] | None = None,
    server: bool,
    days: int = CERT_DAYS,
    key_type: KeyType = "ec",
    force: bool = False,
) -> Issued:
    """A certificate ``name`` signed by the CA in ``directory``, into ``directory/name/``.

    ``server``: for ``hosts`` (IPs and DNS names), usable as server and as client; else a client certificate
    whose subjectAltName is its own name (and ``hosts``, if any).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    check_name(name)
    check_days(days)
    if server:
        ips, dns = split_hosts(hosts or [])
    else:  # a client names itself (verifiers want a subjectAltName), plus any hosts given
        ips, dns = split_hosts([*(hosts or []), name])
    target = directory / name
    paths = Issued(target, target / CA_CERT, target / CERT, target / KEY)
    _refuse_existing([paths.cert, paths.key, paths.ca], force)
    ca_cert, ca_key, ca_pem = _load_ca(directory)
    key = _new_key(key_type)
    public = key.public_key()
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH] if server else []
    usages = usages or [ExtendedKeyUsageOID.CLIENT_AUTH]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, rsa_key=key_type == "rsa"), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    names += [x509.IPAddress(ip) for ip in ips]
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(paths.key, _key_pem(key), 0o600)
    _write(paths.cert, _cert_pem(cert), 0o644)
    _write(paths.ca, ca_pem, 0o644)
    return paths
