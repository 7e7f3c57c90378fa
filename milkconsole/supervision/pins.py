"""PINs: what one may look like, and how one is kept (a salted scrypt hash, compared in constant
time). Pure: the users' table keeps the hash (`milkconsole.store.users`), this module makes and
checks it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re

from milkconsole.grants import UserError

log = logging.getLogger(__name__)

_PIN = re.compile(r"^[0-9]{4,8}$")

# scrypt at n=2**14, r=8 costs ~16 MiB and ~50 ms here: cheap for one unlock, dear for someone
# trying all 10**4 four-digit PINs against a copied database file.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32


def looks_like_pin(pin: str | None) -> bool:
    """Whether `pin` is 4-8 digits (anything else is wrong without hashing it)."""
    return isinstance(pin, str) and _PIN.fullmatch(pin) is not None


def validate_pin(pin: str) -> str:
    """The PIN if it is 4-8 digits; else UserError saying so (without echoing it)."""
    if not looks_like_pin(pin):
        raise UserError("a PIN is 4 to 8 digits")
    return pin


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_pin(pin: str, *, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$key` (base64) for a PIN; a fresh random salt per call by default."""
    validate_pin(pin)
    salt = os.urandom(_SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(
        pin.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=_KEY_BYTES
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_pin(pin: str, stored: str) -> bool:
    """Whether `pin` matches a `hash_pin` string (constant-time compare; bad input is False)."""
    try:
        scheme, n, r, p, salt_b64, key_b64 = stored.split("$")
        if scheme != "scrypt":
            return False
        salt = base64.b64decode(salt_b64, validate=True)
        key = base64.b64decode(key_b64, validate=True)
        # The parameters come from the stored string, so hashes made with older settings verify.
        candidate = hashlib.scrypt(
            pin.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(key)
        )
    except (ValueError, TypeError) as exc:
        log.error("a stored PIN hash is malformed (%s); refusing it", type(exc).__name__)
        return False
    return hmac.compare_digest(candidate, key)


# A hash to check unknown names against, so "no such user" takes as long as "wrong PIN".
DUMMY_HASH = f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(b'0' * _SALT_BYTES)}${_b64(b'0' * 32)}"
