"""Phone access tokens for the live view: issued and revoked by a supervisor, checked per request.

A token is a random secret (`secrets.token_urlsafe`, 256 bits) that the console shows once, as a
QR code; the database keeps only its SHA-256 (a secret of that strength needs no slow hash: there
is nothing to guess from the hash). Issuing and revoking need a supervisor's grant
(`web_access`) and are audited in the same transaction; the secret never reaches the audit log,
the log file or the config.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from milkconsole.errors import MilkConsoleError
from milkconsole.grants import Grant
from milkconsole.store.db import Database
from milkconsole.store.schema import WebToken, append_audit, utc_now
from milkconsole.store.users import check_grant

LABEL_MAX_CHARS = 60
SECRET_BYTES = 32


class TokenError(MilkConsoleError):
    """A token change was refused (no such token, already revoked, bad label)."""


@dataclass(frozen=True, slots=True)
class WebTokenInfo:
    """One phone's access, without its secret (times aware UTC)."""

    id: int
    label: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just made: its record and the secret, to be shown once and then forgotten."""

    info: WebTokenInfo
    secret: str


def token_hash(secret: str) -> str:
    """The hex SHA-256 the database keeps for `secret`."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(row: WebToken) -> WebTokenInfo:
    return WebTokenInfo(
        row.id,
        row.label,
        row.created_at,
        row.created_by,
        row.revoked_at,
        row.revoked_by,
        row.last_used_at,
    )


def _clean_label(label: str) -> str:
    text = " ".join((label or "").split())
    if not text:
        raise TokenError("give the phone's access a name (whose phone, or where it is)")
    if len(text) > LABEL_MAX_CHARS:
        raise TokenError(f"a name is at most {LABEL_MAX_CHARS} characters, this one {len(text)}")
    return text


class WebTokenStore:
    """The `web_tokens` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def issue(self, grant: Grant | None, label: str) -> IssuedToken:
        """A new token named `label` (AccessDenied without a supervisor's grant; audited)."""
        text = _clean_label(label)
        secret = secrets.token_urlsafe(SECRET_BYTES)
        with self._db.write() as tx:
            check_grant(tx, grant, "web_access")
            assert grant is not None
            now = utc_now()
            row = WebToken(
                label=text, token_hash=token_hash(secret), created_at=now, created_by=grant.user
            )
            tx.add(row)
            tx.flush()
            append_audit(
                tx,
                actor=grant.user,
                role=grant.role,
                action="web_token_issue",
                target=f"web_token:{row.id}",
                after={"label": text},
                at=now,
            )
            return IssuedToken(_info(row), secret)

    def revoke(self, grant: Grant | None, token_id: int) -> WebTokenInfo:
        """Take a phone's access back (AccessDenied without a supervisor's grant; audited).
        Revoking a revoked token is refused with who did it and when."""
        with self._db.write() as tx:
            check_grant(tx, grant, "web_access")
            assert grant is not None
            row = tx.get(WebToken, token_id)
            if row is None:
                raise TokenError(f"no phone access with id {token_id}")
            if row.revoked_at is not None:
                raise TokenError(
                    f"phone access {row.label!r} was already revoked by {row.revoked_by} "
                    f"at {row.revoked_at.isoformat(timespec='seconds')}"
                )
            now = utc_now()
            row.revoked_at = now
            row.revoked_by = grant.user
            append_audit(
                tx,
                actor=grant.user,
                role=grant.role,
                action="web_token_revoke",
                target=f"web_token:{row.id}",
                before={"label": row.label, "state": "active"},
                after={"label": row.label, "state": "revoked"},
                at=now,
            )
            return _info(row)

    def check(self, secret: str) -> WebTokenInfo | None:
        """The token `secret` opens, active or revoked; None for a secret never issued."""
        if not secret or len(secret) > 256:
            return None
        wanted = token_hash(secret)
        with self._db.read() as tx:
            row = tx.scalar(select(WebToken).where(WebToken.token_hash == wanted))
            # The index found it; compare again in constant time all the same.
            if row is None or not hmac.compare_digest(row.token_hash, wanted):
                return None
            return _info(row)

    def mark_used(self, token_id: int, at: datetime | None = None) -> None:
        """Remember when a phone last used its access (shown to the supervisor)."""
        with self._db.write() as tx:
            row = tx.get(WebToken, token_id)
            if row is not None:
                row.last_used_at = at or utc_now()

    def tokens(self) -> list[WebTokenInfo]:
        """Every token, active first, newest first."""
        with self._db.read() as tx:
            rows = tx.scalars(select(WebToken).order_by(WebToken.id.desc()))
            out = [_info(r) for r in rows]
        return sorted(out, key=lambda t: not t.active)
