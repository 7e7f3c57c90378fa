"""The live view's self-signed TLS certificate: made once, kept, and shown by its fingerprint.

The only module that imports `cryptography` (pinned in pyproject.toml). A phone cannot know
this certificate, so the browser warns once; the person compares the SHA-256 fingerprint the
console shows with the one the browser shows, and then the link is as safe as any HTTPS.

The certificate is kept in the data directory (`cert.pem`, and `key.pem` readable by the owner
only) and reused while it is valid for more than `RENEW_BEFORE` and names every address the
console is reached at; otherwise a new one is made (the fingerprint then changes, and the
console shows the new one).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from milkconsole.errors import MilkConsoleError

log = logging.getLogger(__name__)

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
# Browsers refuse server certificates valid for longer than 825 days, even ones a person trusts.
VALID_FOR = timedelta(days=825)
RENEW_BEFORE = timedelta(days=30)


class CertificateError(MilkConsoleError):
    """The certificate could not be made or kept (the message names the directory)."""


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """Where the certificate and key are, and what a person checks: the SHA-256 fingerprint."""

    cert_path: Path
    key_path: Path
    fingerprint_sha256: str  # 'AB:CD:...' as browsers show it
    not_after: datetime
    names: tuple[str, ...]
    # base64 SHA-256 of the public key: what a browser can be told to trust (tests pin it).
    spki_sha256_b64: str = ""


def _fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _san_entries(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    dns = {str(n) for n in san.get_values_for_type(x509.DNSName)}
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return {n.lower() for n in dns} | ips


def _info(cert: x509.Certificate, cert_path: Path, key_path: Path) -> CertificateInfo:
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return CertificateInfo(
        cert_path,
        key_path,
        _fingerprint(cert),
        cert.not_valid_after_utc,
        tuple(sorted(_names_of(cert))),
        base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii"),
    )


def _usable(cert_path: Path, key_path: Path, names: tuple[str, ...], now: datetime) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("web certificate in %s not usable (%s): making a new one", cert_path, exc)
        return False
    if cert.public_key() != key.public_key():
        log.warning("web certificate %s does not match its key: making a new one", cert_path)
        return False
    if cert.not_valid_after_utc - now < RENEW_BEFORE:
        log.info(
            "web certificate %s expires %s: making a new one", cert_path, cert.not_valid_after_utc
        )
        return False
    missing = {n.lower() for n in names} - _names_of(cert)
    if missing:
        log.info("web certificate %s lacks %s: making a new one", cert_path, sorted(missing))
        return False
    return True


def read_certificate(directory: Path) -> CertificateInfo | None:
    """The certificate kept in `directory` as it is (None when there is none readable); never
    makes one, so a command run beside a serving console cannot change its fingerprint."""
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError):
        return None
    return _info(cert, cert_path, key_path)


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` through a temporary file (never half a key on disk)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def ensure_certificate(
    directory: Path,
    names: tuple[str, ...],
    *,
    common_name: str = "Milk Console",
    now: datetime | None = None,
) -> CertificateInfo:
    """The certificate kept in `directory` for `names` (host names and addresses), made when
    there is none usable. CertificateError naming the directory when it cannot be written."""
    now = now or datetime.now(UTC)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    wanted = tuple(dict.fromkeys(n.strip() for n in names if n.strip()))
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if cert_path.exists() and key_path.exists() and _usable(cert_path, key_path, wanted, now):
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            return _info(cert, cert_path, key_path)
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64])])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + VALID_FOR)
            .add_extension(x509.SubjectAlternativeName(_san_entries(wanted)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        )
        cert = builder.sign(key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(key_path, key_pem, 0o600)
        _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as exc:
        raise CertificateError(
            f"{directory}: cannot keep the web certificate there: {exc.strerror or exc}"
        ) from exc
    info = _info(cert, cert_path, key_path)
    log.info(
        "made a web certificate for %s, SHA-256 %s", ", ".join(wanted), info.fingerprint_sha256
    )
    return info
