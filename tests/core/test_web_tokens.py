"""Phone access tokens (only a hash stored; issue and revoke are a supervisor's, audited), the
one-off PIN check a phone's acknowledgement uses (the console's own back-off), and the kept
self-signed certificate."""

from __future__ import annotations

import hashlib
import ssl
import stat

import pytest
from sqlalchemy import select

from milkconsole.grants import AccessDenied, Grant
from milkconsole.store.schema import AuditEntry, WebToken
from milkconsole.store.web_tokens import TokenError, WebTokenStore, token_hash
from milkconsole.supervision.lock import AccessControl, AccessSettings, PinBackoff, PinRefused
from milkconsole.supervision.users import UserStore
from milkconsole.web.certificate import ensure_certificate
from tests.helpers.web_helpers import ANN, SUPERVISOR, TECHNICIAN, database_with_users


@pytest.fixture
def db(tmp_path):
    db = database_with_users(tmp_path / "web.sqlite")
    yield db
    db.close()


def audit(db, action):
    with db.read() as tx:
        return list(tx.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_a_token_is_stored_only_as_its_hash_and_opens_until_revoked(db, tmp_path):
    store = WebTokenStore(db)
    issued = store.issue(ANN, "  Vet   phone ")
    assert issued.info.label == "Vet phone" and issued.info.created_by == "Ann"
    assert len(issued.secret) >= 40  # 256 random bits
    with db.read() as tx:
        row = tx.scalar(select(WebToken))
    assert row is not None and row.token_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    db.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("web.sqlite*"))
    assert issued.secret.encode() not in raw  # neither in the table nor in the audit log

    found = store.check(issued.secret)
    assert found is not None and found.active and found.id == issued.info.id
    assert store.check("x" + issued.secret) is None
    assert store.check("") is None

    revoked = store.revoke(ANN, issued.info.id)
    assert not revoked.active and revoked.revoked_by == "Ann"
    after = store.check(issued.secret)
    assert after is not None and not after.active
    with pytest.raises(TokenError, match="already revoked by Ann"):
        store.revoke(ANN, issued.info.id)

    [made] = audit(db, "web_token_issue")
    [taken] = audit(db, "web_token_revoke")
    assert made.actor == "Ann" and made.after == {"label": "Vet phone"}
    assert taken.target == f"web_token:{issued.info.id}" and taken.after["state"] == "revoked"
    assert token_hash(issued.secret) not in str(made.after)


def test_only_a_supervisor_issues_or_revokes(db):
    store = WebTokenStore(db)
    with pytest.raises(AccessDenied):
        store.issue(None, "Phone")
    with pytest.raises(AccessDenied, match="give or revoke phone access"):
        store.issue(Grant("Tom", "technician"), "Phone")
    issued = store.issue(ANN, "Phone")
    with pytest.raises(AccessDenied):
        store.revoke(Grant("Tom", "technician"), issued.info.id)
    assert store.check(issued.secret).active  # type: ignore[union-attr]
    with pytest.raises(TokenError, match="give the phone's access a name"):
        store.issue(ANN, "   ")
    with pytest.raises(TokenError, match="no phone access with id 999"):
        store.revoke(ANN, 999)


def test_a_phone_pin_counts_toward_the_consoles_back_off_and_is_audited(db):
    clock = {"t": 1000.0}
    access = AccessControl(
        UserStore(db), AccessSettings(free_attempts=2, backoff_first_s=30), clock=lambda: clock["t"]
    )
    name, pin = SUPERVISOR
    with pytest.raises(PinRefused):
        access.authorize(name, "0000", "remote_acknowledge", where="web:Vet phone")
    with pytest.raises(PinRefused) as second:
        access.authorize(name, "1111", "remote_acknowledge", where="web:Vet phone")
    assert second.value.retry_in_s == 30
    # The console's own lock now waits as well: one limit for guesses from anywhere.
    with pytest.raises(PinBackoff):
        access.unlock(name, pin)
    with pytest.raises(PinBackoff):
        access.authorize(name, pin, "remote_acknowledge", where="web:Vet phone")
    refused = audit(db, "pin_refused")
    assert [r.target for r in refused] == ["web:Vet phone", "web:Vet phone"]
    assert refused[-1].after == {"failures_in_a_row": 2, "backoff_s": 30.0}

    clock["t"] += 31
    grant = access.authorize(name, pin, "remote_acknowledge", where="web:Vet phone")
    assert grant == Grant("Ann", "supervisor", grant.granted_at)
    assert access.grant is None  # the console stays locked
    [accepted] = audit(db, "pin_accepted")
    assert accepted.target == "web:Vet phone" and accepted.actor == "Ann"
    assert UserStore(db).pin_failures() == (0, None)  # a right PIN ends the run, as an unlock


def test_a_technicians_right_pin_is_not_enough_from_a_phone_and_is_no_wrong_pin(db):
    access = AccessControl(UserStore(db), AccessSettings(free_attempts=1))
    with pytest.raises(AccessDenied, match="acknowledge alerts from a phone: a supervisor PIN"):
        access.authorize(*TECHNICIAN, "remote_acknowledge", where="web:Yard")
    assert access.failed_attempts == 0
    assert access.backoff_remaining_s() == 0


def test_wrong_phone_pins_survive_a_restart(db):
    access = AccessControl(UserStore(db), AccessSettings(free_attempts=1, backoff_first_s=60))
    with pytest.raises(PinRefused):
        access.authorize("Ann", "9999", "remote_acknowledge", where="web:Yard")
    again = AccessControl(UserStore(db), AccessSettings(free_attempts=1, backoff_first_s=60))
    assert again.failed_attempts == 1 and again.backoff_remaining_s() > 50


def test_the_certificate_is_made_once_kept_and_remade_for_a_new_name(tmp_path):
    first = ensure_certificate(tmp_path / "tls", ("localhost", "127.0.0.1", "192.168.1.20"))
    assert set(first.names) == {"localhost", "127.0.0.1", "192.168.1.20"}
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    der = ssl.PEM_cert_to_DER_cert(first.cert_path.read_text())
    expected = ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert first.fingerprint_sha256 == expected  # what a browser shows for it

    again = ensure_certificate(tmp_path / "tls", ("127.0.0.1", "localhost"))
    assert again.fingerprint_sha256 == first.fingerprint_sha256  # kept: phones see no change

    moved = ensure_certificate(tmp_path / "tls", ("localhost", "10.0.0.5"))
    assert moved.fingerprint_sha256 != first.fingerprint_sha256
    assert "10.0.0.5" in moved.names

    first.key_path.write_text("garbage")
    repaired = ensure_certificate(tmp_path / "tls", ("localhost", "10.0.0.5"))
    assert repaired.fingerprint_sha256 != moved.fingerprint_sha256
    ssl.create_default_context().load_cert_chain(repaired.cert_path, repaired.key_path)
