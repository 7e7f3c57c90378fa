"""The sync engine (one pass: pull the herd, push the outbox) and the worker that repeats it.

A pass, with every network call outside any database transaction:

1. Local only (works offline): alerts and health events the console raised get their outbox
   rows (idempotent: one create per key), and alert state changes become writes.
2. Connect and log in (`client.connect`), check the contract once per connection: a model or
   field missing on the server suspends that model with a message, the others go on.
3. Pull `farm.animal` / `farm.animal.rfid` into the animal cache (every few minutes).
4. For each pushed model, in batches of `batch_size`: claim due rows (pending -> in flight),
   look up which stable keys Odoo already has, create only the missing ones in one call with a
   list, mark them sent. A crash between Odoo's commit and the "sent" mark leaves the rows in
   flight; at the next start they go back to pending, the look-up finds them, and they are
   marked sent without a second create. A refused batch is split in halves until the refused
   record is alone; it goes dead with Odoo's message, the rest land.
5. Update the meter devices' `last_seen` (every minute).

`SyncWorker` runs passes on a plain thread: right after `notify()` (call it after each committed
session), every `idle_interval_s` otherwise, with exponential back-off and jitter while Odoo is
unreachable, and not at all after a refused login until `notify()` / `retry_now()`.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Literal

from sqlalchemy import or_, select
from sqlalchemy.sql.elements import ColumnElement

from milkconsole.errors import MilkConsoleError
from milkconsole.events import SessionCompleted
from milkconsole.identity import associate_pending
from milkconsole.store.db import Database
from milkconsole.store.outbox import Outbox, OutboxItem, amend, enqueue, enqueue_many
from milkconsole.store.schema import Alert, Animal, HealthEvent, Meter, MilkSession, OutboxRow
from milkconsole.sync.animals import pull_animals, reset_cursors, state_get, state_set
from milkconsole.sync.client import (
    OdooAuthError,
    OdooClient,
    OdooContractError,
    OdooError,
    OdooNotConfigured,
    OdooRefused,
    OdooServerError,
    OdooUnavailable,
    connect,
)
from milkconsole.sync.contract import (
    CONTRACT,
    OUTBOX_MODEL,
    PUSH_ORDER,
    REQUIRED_FIELDS,
    Contract,
    MappingError,
    Refs,
    to_odoo_datetime,
)
from milkconsole.sync.secrets import SecretsError
from milkconsole.sync.settings import OdooSettings

log = logging.getLogger(__name__)

SyncStateName = Literal["online", "offline", "not_configured", "auth_failed"]
ConnectFn = Callable[[OdooSettings | None], OdooClient]

_DERIVE_ALERTS = "odoo.derive.alert_id"
_DERIVE_HEALTH = "odoo.derive.health_event_id"
_DERIVE_ALERT_STATE = "odoo.derive.alert_state_at"
_SERVER = "odoo.server"
_METER_SEEN = "odoo.meter_last_seen."


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class SyncStatus:
    """What the status bar shows. Frozen: handed from the sync thread to the GUI thread.

    `backlog` counts outbox rows waiting (pending or in flight), `dead` the rows Odoo refused
    for good (the supervisor's list). `warnings` name contract problems (a missing model).
    """

    state: SyncStateName
    backlog: int = 0
    dead: int = 0
    last_sync_at: datetime | None = None
    last_error: str | None = None
    oldest_pending_at: datetime | None = None
    transport: str | None = None
    server_version: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One short line: 'Odoo online · 3 waiting · 1 refused'."""
        label = {
            "online": "online",
            "offline": "offline",
            "not_configured": "not set up",
            "auth_failed": "login refused",
        }[self.state]
        parts = [f"Odoo {label}"]
        if self.backlog:
            parts.append(f"{self.backlog} waiting")
        if self.dead:
            parts.append(f"{self.dead} refused")
        if self.warnings:
            parts.append(f"{len(self.warnings)} contract problem(s)")
        return " · ".join(parts)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one pass did. `created` / `already_in_odoo` count records by contract model."""

    created: Mapping[str, int] = field(default_factory=dict)
    already_in_odoo: int = 0
    written: int = 0
    dead: int = 0
    retried: int = 0
    animals_pulled: int = 0
    tags_pulled: int = 0
    meters_updated: int = 0
    create_calls: int = 0
    warnings: tuple[str, ...] = ()
    duration_s: float = 0.0

    @property
    def total_created(self) -> int:
        return sum(self.created.values())


@dataclass
class _Pass:
    """Counters of the pass in progress (engine-internal, one thread)."""

    created: dict[str, int] = field(default_factory=dict)
    already: int = 0
    written: int = 0
    dead: int = 0
    retried: int = 0
    create_calls: int = 0


class _Stopped(Exception):
    """The worker asked the pass to stop between batches."""


class SyncBusy(MilkConsoleError):
    """Another process (or engine) is already syncing this database."""


class SyncLock:
    """One sync engine per database, across processes: an exclusive lock on a file next to it.

    Without it a `milkconsole sync --once` run beside the console would put the console's
    in-flight rows back to pending and create them a second time. The OS drops the lock when
    its holder dies, kill -9 included.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def acquire(self) -> None:
        if self._fh is not None:
            return
        fh = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        try:
            if sys.platform == "win32":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            database = self.path.with_suffix("").name
            raise SyncBusy(
                f"another Milk Console process (pid {holder}) is syncing {database} with Odoo; "
                "only one may"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()  # closing the file drops the lock


class SyncEngine:
    """One sync pass at a time over a database and an `[odoo]` config. Not thread-safe.

    `connect_fn(settings)` makes a logged-in client (default: `client.connect`, which reads the
    secret from the keyring); tests and tools may pass one holding the secret themselves.
    """

    def __init__(
        self,
        db: Database,
        settings: OdooSettings | None,
        *,
        connect_fn: ConnectFn = connect,
        rng: random.Random | None = None,
        max_attempts: int = 8,
        retry_base_s: float = 10.0,
        retry_max_s: float = 3600.0,
        pull_interval_s: float = 300.0,
        full_pull_interval_s: float = 6 * 3600.0,
        meter_interval_s: float = 60.0,
        contract_recheck_s: float = 600.0,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.outbox = Outbox(db)
        self.contract = Contract(settings)
        self._connect_fn = connect_fn
        self._rng = rng or random.Random()
        self.max_attempts = max_attempts
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.pull_interval_s = pull_interval_s
        self.full_pull_interval_s = full_pull_interval_s
        self.meter_interval_s = meter_interval_s
        self.contract_recheck_s = contract_recheck_s
        self.on_progress = on_progress
        self.stop_requested = threading.Event()
        self._client: OdooClient | None = None
        self._checked_at: float | None = None
        self._suspended: dict[str, str] = {}
        self._warnings: tuple[str, ...] = ()
        self._available: dict[str, set[str]] = {}
        self._pulled_at: float | None = None
        self._full_pulled_at: float | None = None
        self._meters_at: float | None = None
        self._meter_ids: dict[str, int] = {}
        self._meters_missing: set[str] = set()
        self._meters_logged: set[str] = set()  # warned once each, not every minute
        self.last_sync_at: datetime | None = None
        self.batch_size = settings.batch_size if settings else 200
        self._lock = SyncLock(Path(f"{db.path}.sync-lock"))

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> int:
        """Take the database's sync lock, then put rows a stopped process left in flight back
        to pending; returns how many. Raises `SyncBusy` if another engine holds the lock."""
        self._lock.acquire()
        n = self.outbox.reset_in_flight()
        if n:
            log.info("sync start: %d outbox rows were in flight; back to pending", n)
        return n

    def close(self) -> None:
        """Log out and release the sync lock (another process may sync from now on)."""
        self._drop_client()
        self._lock.release()

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    @property
    def client(self) -> OdooClient | None:
        return self._client

    @property
    def locked(self) -> bool:
        """True once `start()` took the sync lock (until `close()`)."""
        return self._lock.held

    @property
    def warnings(self) -> tuple[str, ...]:
        return self._warnings

    def status(self, state: SyncStateName, last_error: str | None = None) -> SyncStatus:
        """A status snapshot with fresh outbox counts."""
        counts = self.outbox.counts()
        return SyncStatus(
            state=state,
            backlog=counts["pending"] + counts["in_flight"],
            dead=counts["dead"],
            last_sync_at=self.last_sync_at,
            last_error=last_error,
            oldest_pending_at=self.outbox.oldest_pending_at(),
            transport=getattr(self._client, "transport", None),
            server_version=getattr(self._client, "server_version", None) or None,
            warnings=self._warnings,
        )

    # -- one pass -------------------------------------------------------------------------------
    def run_once(self, now: datetime | None = None) -> SyncReport:
        """One pass. Raises `OdooNotConfigured`, `OdooAuthError` or `OdooUnavailable`
        (rows it had claimed are released first); per-record problems are in the report."""
        t0 = time.monotonic()
        if not self._lock.held:
            raise RuntimeError("SyncEngine.run_once() before start()")
        if self.settings is None:
            raise OdooNotConfigured(
                "Odoo sync is not set up: the config file has no [odoo] section"
            )
        self.derive_local()
        p = _Pass()
        try:
            client = self._connected()
            self._check_contract(client)
            pulled = self._maybe_pull(client)
            for model in PUSH_ORDER:
                if model in self._suspended:
                    continue
                self._push_model(client, model, p, now)
            meters = self._maybe_meters(client)
        except (OdooUnavailable, OdooAuthError, OdooNotConfigured):
            self._drop_client()
            raise
        except OdooContractError:
            self._checked_at = None  # re-check the contract on the next pass
            raise
        except _Stopped:
            pulled, meters = (0, 0), 0
        self.last_sync_at = utc_now()
        return SyncReport(
            created=dict(p.created),
            already_in_odoo=p.already,
            written=p.written,
            dead=p.dead,
            retried=p.retried,
            animals_pulled=pulled[0],
            tags_pulled=pulled[1],
            meters_updated=meters,
            create_calls=p.create_calls,
            warnings=self._warnings,
            duration_s=time.monotonic() - t0,
        )

    def _connected(self) -> OdooClient:
        if self._client is None:
            self._client = self._connect_fn(self.settings)
            self._checked_at = None
            self._remember_server()
        return self._client

    def _remember_server(self) -> None:
        assert self.settings is not None
        with self.db.read() as tx:
            known = state_get(tx, _SERVER)
        if known != self.settings.account:
            # Another Odoo (or database): its write_dates mean nothing against our cursors.
            if known is not None:
                log.warning(
                    "Odoo changed from %s to %s: pulling the whole herd",
                    known,
                    self.settings.account,
                )
            reset_cursors(self.db)
            with self.db.write() as tx:
                state_set(tx, _SERVER, self.settings.account)

    # -- contract -------------------------------------------------------------------------------
    def _check_contract(self, client: OdooClient) -> None:
        if (
            self._checked_at is not None
            and time.monotonic() - self._checked_at < self.contract_recheck_s
        ):
            return
        check = check_contract(client, self.contract)
        for m, msg in check.suspended.items():
            if m not in self._suspended:
                log.error("sync of %s suspended: %s", m, msg)
        self._suspended = dict(check.suspended)
        self._available = {k: set(v) for k, v in check.available.items()}
        self._warnings = check.problems
        self._checked_at = time.monotonic()

    # -- pull -----------------------------------------------------------------------------------
    def _maybe_pull(self, client: OdooClient) -> tuple[int, int]:
        if "animal" in self._suspended:
            return 0, 0
        mono = time.monotonic()
        if self._pulled_at is not None and mono - self._pulled_at < self.pull_interval_s:
            return 0, 0
        full = (
            self._full_pulled_at is None or mono - self._full_pulled_at >= self.full_pull_interval_s
        )
        report = pull_animals(client, self.db, self.contract, self._available, full=full)
        if report.animals or report.tags:
            # A cow added or re-tagged in Odoo: sessions recorded under her tag as "unknown"
            # get her now, before they are pushed (their pending creates are amended).
            with self.db.write() as tx:
                associated = associate_pending(tx)
            if associated:
                log.info("herd list changed: %d session(s) now identified", len(associated))
        self._pulled_at = mono
        if full:
            self._full_pulled_at = mono
        return report.animals, report.tags

    def pull_now(self) -> None:
        """Make the next pass pull the herd whatever the interval."""
        self._pulled_at = None

    # -- local derivations ----------------------------------------------------------------------
    def derive_local(self) -> int:
        """Outbox rows for alerts and health events not yet queued, and writes for alert state
        changes (local only; idempotent). Returns how many rows it queued or amended."""
        alert_model = OUTBOX_MODEL["alert"]
        health_model = OUTBOX_MODEL["health_event"]
        with self.db.read() as tx:
            last_alert = int(state_get(tx, _DERIVE_ALERTS) or 0)
            last_health = int(state_get(tx, _DERIVE_HEALTH) or 0)
            state_at = state_get(tx, _DERIVE_ALERT_STATE)
            newest_alert = tx.scalar(select(Alert.id).order_by(Alert.id.desc()).limit(1)) or 0
            newest_health = (
                tx.scalar(select(HealthEvent.id).order_by(HealthEvent.id.desc()).limit(1)) or 0
            )
            since = datetime.fromisoformat(state_at) if state_at else None
            any_changed = tx.scalar(select(Alert.id).where(_changed_since(since)).limit(1))
        if newest_alert <= last_alert and newest_health <= last_health and any_changed is None:
            return 0
        n = 0
        with self.db.write() as tx:
            for row in tx.scalars(select(Alert).where(Alert.id > last_alert).order_by(Alert.id)):
                enqueue(tx, alert_model, row.key, alert_payload(tx, row))
                last_alert = row.id
                n += 1
            state_set(tx, _DERIVE_ALERTS, str(last_alert))
            for ev in tx.scalars(
                select(HealthEvent).where(HealthEvent.id > last_health).order_by(HealthEvent.id)
            ):
                enqueue(tx, health_model, ev.key, health_payload(tx, ev))
                last_health = ev.id
                n += 1
            state_set(tx, _DERIVE_HEALTH, str(last_health))
            newest = since
            for row in tx.scalars(select(Alert).where(_changed_since(since))):
                # Pending create: its payload learns the state; created already: a write.
                amend(tx, alert_model, row.key, alert_state_payload(row))
                n += 1
                for t in (row.acknowledged_at, row.resolved_at):
                    if t is not None and (newest is None or t > newest):
                        newest = t
            if newest is not None:
                state_set(tx, _DERIVE_ALERT_STATE, newest.isoformat())
        return n

    def _derive_production(self, items: list[OutboxItem]) -> None:
        """Production records for completed, identified sessions among `items` (idempotent)."""
        model = OUTBOX_MODEL["production"]
        keys = [i.record_key for i in items]
        with self.db.read() as tx:
            rows = {
                r.key: r for r in tx.scalars(select(MilkSession).where(MilkSession.key.in_(keys)))
            }
            animal_ids = {r.animal_id for r in rows.values() if r.animal_id is not None}
            animals = {a.id: a for a in tx.scalars(select(Animal).where(Animal.id.in_(animal_ids)))}
        todo: list[tuple[str, dict[str, Any], bool]] = []
        for item in items:
            p = item.payload
            row = rows.get(item.record_key)
            if row is not None:
                animal = animals.get(row.animal_id) if row.animal_id is not None else None
                payload = production_payload_from_row(row, animal)
            else:
                payload = production_payload(p)
            identity_changed = item.operation == "write" and (
                "animal_odoo_id" in p or "animal_id" in p
            )
            if item.operation == "create" or identity_changed:
                todo.append((item.record_key, payload, identity_changed))
        if not todo:
            return
        with self.db.write() as tx:
            queued = set(
                tx.scalars(
                    select(OutboxRow.record_key).where(
                        OutboxRow.model == model,
                        OutboxRow.operation == "create",
                        OutboxRow.record_key.in_([k for k, _, _ in todo]),
                    )
                )
            )
            new = [
                (key, payload)
                for key, payload, _ in todo
                if key not in queued
                and payload.get("state") == "completed"
                and payload.get("animal_odoo_id")
            ]
            enqueue_many(tx, model, new)
            for key, payload, identity_changed in todo:
                if key in queued and identity_changed:
                    if payload.get("animal_odoo_id"):
                        amend(
                            tx,
                            model,
                            key,
                            {
                                "animal_odoo_id": payload["animal_odoo_id"],
                                "animal_number": payload.get("animal_number"),
                            },
                        )
                    else:
                        log.warning(
                            "session %s no longer has a known cow; its production record in "
                            "Odoo still names the old one (fix it there)",
                            key,
                        )

    # -- push -----------------------------------------------------------------------------------
    def _push_model(self, client: OdooClient, model: str, p: _Pass, now: datetime | None) -> None:
        outbox_model = OUTBOX_MODEL[model]
        while True:
            if self.stop_requested.is_set():
                raise _Stopped
            items = self.outbox.claim(outbox_model, self.batch_size, now or utc_now())
            if not items:
                return
            self._push_batch(client, model, items, p)
            if self.on_progress is not None:
                self.on_progress()
            if len(items) < self.batch_size:
                return

    def _push_batch(
        self, client: OdooClient, model: str, items: list[OutboxItem], p: _Pass
    ) -> None:
        done: set[int] = set()
        try:
            if model == "session":
                self._derive_production(items)
            payloads = self._payloads(model, items)
            creates = [i for i in items if i.operation == "create"]
            writes = [i for i in items if i.operation == "write"]
            needed: set[str] = set()
            for it in items:
                needed |= self.contract.payload_meters(model, payloads[it.id])
            refs = Refs(self._resolve_meters(client, needed), self.contract.zone)
            self._push_creates(client, model, creates, payloads, refs, p, done)
            self._push_writes(client, model, writes, refs, p, done)
        except Exception as exc:
            # Nothing more is known about the rest: back to pending and due at once (the worker
            # backs off from an unreachable Odoo, not each record); the next pass looks them up
            # before creating, so whatever did land is not created twice.
            message = exc.message if isinstance(exc, OdooError) else f"{type(exc).__name__}: {exc}"
            retry_at = utc_now()
            for it in items:
                if it.id not in done:
                    self.outbox.mark_retry(it.id, message, retry_at)
            raise

    def _payloads(self, model: str, items: list[OutboxItem]) -> dict[int, dict[str, Any]]:
        """The payloads to map, by outbox id. A create of an alert or a health event takes the
        local row as it is now (acknowledged since it was queued, say) over the queued payload,
        so whoever queued it need not know the whole contract."""
        out = {it.id: it.payload for it in items}
        keys = [it.record_key for it in items if it.operation == "create"]
        if model not in ("alert", "health_event") or not keys:
            return out
        fresh: dict[str, dict[str, Any]] = {}
        with self.db.read() as tx:
            if model == "alert":
                for row in tx.scalars(select(Alert).where(Alert.key.in_(keys))):
                    fresh[row.key] = alert_payload(tx, row)
            else:
                for ev in tx.scalars(select(HealthEvent).where(HealthEvent.key.in_(keys))):
                    fresh[ev.key] = health_payload(tx, ev)
        for it in items:
            row_payload = fresh.get(it.record_key) if it.operation == "create" else None
            if row_payload is not None:
                merged = {k: v for k, v in row_payload.items() if v is not None}
                out[it.id] = {**it.payload, **merged}
        return out

    def _lookup(self, client: OdooClient, model: str, keys: list[str]) -> dict[str, int]:
        """Which of `keys` Odoo already has, with their ids (archived records count too)."""
        if not keys:
            return {}
        key_field = self.contract.key_field(model)
        found: dict[str, int] = {}
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]
            rows = client.search_read(
                self.contract.model(model),
                [[key_field, "in", chunk]],
                [key_field],
                context={"active_test": False},
            )
            for r in rows:
                k = r.get(key_field)
                if isinstance(k, str):
                    found.setdefault(k, int(r["id"]))
        return found

    def _push_creates(
        self,
        client: OdooClient,
        model: str,
        items: list[OutboxItem],
        payloads: dict[int, dict[str, Any]],
        refs: Refs,
        p: _Pass,
        done: set[int],
    ) -> None:
        if not items:
            return
        vals: dict[int, dict[str, Any]] = {}
        for it in items:
            try:
                vals[it.id] = self.contract.vals(model, payloads[it.id], refs, "create")
            except MappingError as exc:
                self._dead(it, model, f"cannot be sent: {exc}", p, done)
        todo = [it for it in items if it.id in vals]
        found = self._lookup(client, model, [it.record_key for it in todo])
        already: dict[int, int | None] = {
            it.id: found[it.record_key] for it in todo if it.record_key in found
        }
        if already:
            self.outbox.mark_sent(already)
            done.update(already)
            p.already += len(already)
            log.info("%s: %d already in Odoo (sent before an interruption)", model, len(already))
        todo = [it for it in todo if it.id not in already]
        self._create(client, model, todo, vals, p, done, top=True)

    def _create(
        self,
        client: OdooClient,
        model: str,
        group: list[OutboxItem],
        vals: dict[int, dict[str, Any]],
        p: _Pass,
        done: set[int],
        *,
        top: bool,
    ) -> None:
        if not group:
            return
        try:
            p.create_calls += 1
            ids = client.create(self.contract.model(model), [vals[it.id] for it in group])
        except (OdooRefused, OdooServerError) as exc:
            if len(group) == 1:
                self._failed(group[0], model, exc, p, done)
                return
            if top:
                # Odoo fails a whole batch for one bad record. First see whether some keys
                # arrived meanwhile (a unique clash), then halve until the culprit is alone.
                found = self._lookup(client, model, [it.record_key for it in group])
                if found:
                    hit: dict[int, int | None] = {
                        it.id: found[it.record_key] for it in group if it.record_key in found
                    }
                    self.outbox.mark_sent(hit)
                    done.update(hit)
                    p.already += len(hit)
                    group = [it for it in group if it.id not in hit]
                log.info(
                    "%s: Odoo refused a batch of %d (%s); isolating the refused record",
                    model,
                    len(group),
                    exc.message.splitlines()[0] if exc.message else exc.name,
                )
            mid = len(group) // 2
            self._create(client, model, group[:mid], vals, p, done, top=False)
            self._create(client, model, group[mid:], vals, p, done, top=False)
            return
        sent: dict[int, int | None] = {it.id: oid for it, oid in zip(group, ids, strict=True)}
        # Marked at once: the window in which a crash leaves created rows "in flight" stays
        # one call wide (and even then the look-up at the next start settles it).
        self.outbox.mark_sent(sent)
        done.update(sent)
        p.created[model] = p.created.get(model, 0) + len(sent)

    def _push_writes(
        self,
        client: OdooClient,
        model: str,
        items: list[OutboxItem],
        refs: Refs,
        p: _Pass,
        done: set[int],
    ) -> None:
        if not items:
            return
        outbox_model = OUTBOX_MODEL[model]
        ids = {it.id: self.outbox.odoo_id_for(outbox_model, it.record_key) for it in items}
        unknown = [it.record_key for it in items if ids[it.id] is None]
        found = self._lookup(client, model, unknown) if unknown else {}
        for it in items:
            odoo_id = ids[it.id] or found.get(it.record_key)
            if odoo_id is None:
                self._dead(it, model, "its record is no longer in Odoo (deleted there?)", p, done)
                continue
            try:
                vals = self.contract.vals(model, it.payload, refs, "write")
            except MappingError as exc:
                self._dead(it, model, f"cannot be sent: {exc}", p, done)
                continue
            if vals:
                try:
                    client.write(self.contract.model(model), [odoo_id], vals)
                except (OdooRefused, OdooServerError) as exc:
                    self._failed(it, model, exc, p, done)
                    continue
                p.written += 1
            self.outbox.mark_sent({it.id: odoo_id})
            done.add(it.id)

    def _failed(
        self, item: OutboxItem, model: str, exc: OdooError, p: _Pass, done: set[int]
    ) -> None:
        if isinstance(exc, OdooRefused) or item.attempts >= self.max_attempts:
            why = (
                "Odoo refused it"
                if isinstance(exc, OdooRefused)
                else (f"Odoo failed on it {item.attempts} times")
            )
            self._dead(item, model, f"{why}: {exc.message}", p, done)
            return
        retry_at = utc_now() + self._backoff(item.attempts)
        self.outbox.mark_retry(item.id, exc.message, retry_at)
        done.add(item.id)
        p.retried += 1
        log.warning(
            "%s %s failed on the server (attempt %d), retry at %s: %s",
            model,
            item.record_key,
            item.attempts,
            retry_at.strftime("%H:%M:%S"),
            exc.message,
        )

    def _dead(self, item: OutboxItem, model: str, message: str, p: _Pass, done: set[int]) -> None:
        self.outbox.mark_dead(item.id, message)
        done.add(item.id)
        p.dead += 1
        log.error("%s %s will not be sent: %s", model, item.record_key, message)

    def _backoff(self, attempt: int) -> timedelta:
        """Exponential back-off with jitter: between half and all of base * 2^(attempt-1)."""
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** min(max(0, attempt - 1), 30))
        return timedelta(seconds=self._rng.uniform(ceiling / 2, ceiling))

    # -- meters ---------------------------------------------------------------------------------
    def _resolve_meters(self, client: OdooClient, device_ids: set[str]) -> dict[str, int]:
        """Odoo ids of meter devices, found by their device id (cached locally in meters)."""
        want = {d for d in device_ids if d not in self._meter_ids}
        if want:
            with self.db.read() as tx:
                for m in tx.scalars(select(Meter).where(Meter.id.in_(want))):
                    if m.odoo_id is not None:
                        self._meter_ids[m.id] = m.odoo_id
            want -= set(self._meter_ids)
        want -= self._meters_missing
        if want and self._meters_usable():
            key = self.contract.field("meter", "device_id") or "device_id"
            rows = client.search_read(
                self.contract.model("meter"),
                [[key, "in", sorted(want)]],
                [key],
                context={"active_test": False},
            )
            got = {str(r[key]): int(r["id"]) for r in rows if r.get(key)}
            self._meter_ids.update(got)
            if got:
                with self.db.write() as tx:
                    for m in tx.scalars(select(Meter).where(Meter.id.in_(list(got)))):
                        m.odoo_id = got[m.id]
            for d in sorted(want - set(got)):
                self._meters_missing.add(d)
                if d in self._meters_logged:
                    continue
                self._meters_logged.add(d)
                log.warning(
                    "meter %s has no device in Odoo (%s with %s = %r); its records go without it",
                    d,
                    self.contract.model("meter"),
                    key,
                    d,
                )
        return {d: self._meter_ids[d] for d in device_ids if d in self._meter_ids}

    def _meters_usable(self) -> bool:
        return "meter" in self._available and "meter" not in self._suspended

    def _maybe_meters(self, client: OdooClient) -> int:
        mono = time.monotonic()
        if self._meters_at is not None and mono - self._meters_at < self.meter_interval_s:
            return 0
        self._meters_at = mono
        self._meters_missing.clear()  # someone may have added the device in Odoo since
        last_seen_field = self.contract.field("meter", "last_seen")
        have = self._available.get("meter", set())
        if not self._meters_usable() or not last_seen_field or last_seen_field not in have:
            return 0
        with self.db.read() as tx:
            meters = [
                (m.id, m.last_seen_at, state_get(tx, _METER_SEEN + m.id))
                for m in tx.scalars(select(Meter).where(Meter.last_seen_at.is_not(None)))
            ]
        stale = [(mid, seen) for mid, seen, pushed in meters if seen and _iso(seen) != pushed]
        if not stale:
            return 0
        ids = self._resolve_meters(client, {mid for mid, _ in stale})
        n = 0
        for mid, seen in stale:
            odoo_id = ids.get(mid)
            if odoo_id is None or seen is None:
                continue
            client.write(
                self.contract.model("meter"), [odoo_id], {last_seen_field: to_odoo_datetime(seen)}
            )
            with self.db.write() as tx:
                state_set(tx, _METER_SEEN + mid, _iso(seen))
            n += 1
        return n


@dataclass(frozen=True, slots=True)
class ContractCheck:
    """What the server lacks of the contract. `suspended`: models not synced, with the reason;
    `available`: the fields each server model has."""

    problems: tuple[str, ...]
    suspended: Mapping[str, str]
    available: Mapping[str, frozenset[str]]


def check_contract(client: OdooClient, contract: Contract) -> ContractCheck:
    """Ask the server for every contract model and field; say plainly what is missing.

    A pushed model missing anything is suspended (sending half a record would lose data
    silently); a pulled one missing an optional field is pulled without it.
    """
    problems: list[str] = []
    suspended: dict[str, str] = {}
    available: dict[str, set[str]] = {}
    names = {m: contract.model(m) for m in CONTRACT}
    existing = client.existing_models(sorted(set(names.values())))
    for m, server_model in names.items():
        spec = CONTRACT[m]
        if server_model not in existing:
            msg = (
                f"Odoo has no model {server_model!r} (contract model '{m}'; install the farm "
                f'module or rename it in [odoo.models] {m} = "...")'
            )
            problems.append(msg)
            if spec.direction == "push" or m in ("animal",):
                suspended[m] = msg
            continue
        server_fields = set(client.fields_get(server_model))
        available[m] = server_fields
        missing = [(cf, sf) for cf, sf in contract.fields(m).items() if sf not in server_fields]
        for cf, sf in missing:
            must = spec.direction == "push" or cf in REQUIRED_FIELDS.get(m, ())
            msg = (
                f"Odoo model {server_model!r} has no field {sf!r} (contract field "
                f"'{m}.{cf}'; map it in [odoo.fields.{m}] {cf} = \"...\""
                + (
                    f' or leave it out with {cf} = ""'
                    if cf not in REQUIRED_FIELDS.get(m, ())
                    else ""
                )
                + ")"
            )
            problems.append(msg)
            if must:
                suspended.setdefault(m, msg)
    return ContractCheck(
        tuple(problems),
        suspended,
        {k: frozenset(v) for k, v in available.items()},
    )


def _changed_since(since: datetime | None) -> ColumnElement[bool]:
    """Alerts acknowledged or resolved after `since` (ever, when None)."""
    if since is None:
        return or_(Alert.acknowledged_at.is_not(None), Alert.resolved_at.is_not(None))
    return or_(Alert.acknowledged_at > since, Alert.resolved_at > since)


# -- payloads the sync derives ------------------------------------------------------------------


def _animal_refs(tx: Any, animal_id: int | None) -> dict[str, Any]:
    animal = tx.get(Animal, animal_id) if animal_id is not None else None
    return {
        "animal_odoo_id": animal.odoo_id if animal else None,
        "animal_number": animal.number if animal else None,
    }


def alert_payload(tx: Any, row: Alert) -> dict[str, Any]:
    """The `iot.device.alert` payload of an alert row (times ISO UTC with Z)."""
    return {
        "key": row.key,
        "kind": row.kind,
        "condition": row.condition,
        "severity": row.severity,
        "meter_id": row.meter_id,
        "rfid": row.rfid,
        "session_key": row.session_key,
        "message": row.message,
        "raised_at": _iso(row.raised_at),
        **alert_state_payload(row),
        **_animal_refs(tx, row.animal_id),
    }


def alert_state_payload(row: Alert) -> dict[str, Any]:
    """The part of an alert the supervisor changes at the console."""
    return {
        "state": row.state,
        "acknowledged_at": _iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
        "resolved_at": _iso(row.resolved_at),
        "resolved_by": row.resolved_by,
        "note": row.note,
    }


def health_payload(tx: Any, row: HealthEvent) -> dict[str, Any]:
    """The `farm.health.event` payload of a health event row."""
    return {
        "key": row.key,
        "kind": row.kind,
        "detail": row.detail,
        "session_key": row.session_key,
        "recorded_at": _iso(row.recorded_at),
        **_animal_refs(tx, row.animal_id),
    }


def production_payload(session: Mapping[str, Any]) -> dict[str, Any]:
    """The `farm.milk.production` payload of a session payload (key = the session's key)."""
    return {
        "key": session.get("key"),
        "state": session.get("state"),
        "animal_odoo_id": session.get("animal_odoo_id"),
        "animal_number": session.get("animal_number"),
        "started_at": session.get("started_at"),
        "yield_l": session.get("yield_l"),
        "fat_pct": session.get("fat_pct"),
        "protein_pct": session.get("protein_pct"),
        "scc_cells_ml": session.get("scc_cells_ml"),
    }


def production_payload_from_row(row: MilkSession, animal: Animal | None) -> dict[str, Any]:
    return {
        "key": row.key,
        "state": row.state,
        "animal_odoo_id": animal.odoo_id if animal else None,
        "animal_number": animal.number if animal else None,
        "started_at": _iso(row.started_at),
        "yield_l": row.yield_l,
        "fat_pct": row.fat_pct,
        "protein_pct": row.protein_pct,
        "scc_cells_ml": row.scc_cells_ml,
    }


# -- the worker -----------------------------------------------------------------------------------


class SyncWorker:
    """Runs sync passes on its own plain thread; usable by the gateway and the console.

    `on_status(SyncStatus)` is called from the worker thread after every pass and during long
    pushes (the console turns it into a queued Qt signal). Call `notify()` after each committed
    session for low latency; it is ignored while backing off from an unreachable Odoo.
    """

    def __init__(
        self,
        db: Database,
        settings: OdooSettings | None,
        on_status: Callable[[SyncStatus], None] | None = None,
        *,
        idle_interval_s: float = 30.0,
        retry_first_s: float = 2.0,
        retry_max_s: float = 300.0,
        auth_retry_s: float = 900.0,
        connect_fn: ConnectFn = connect,
        rng: random.Random | None = None,
        engine: SyncEngine | None = None,
    ) -> None:
        self._rng = rng or random.Random()
        self.engine = engine or SyncEngine(db, settings, connect_fn=connect_fn, rng=self._rng)
        self.engine.on_progress = self._on_progress
        self._on_status = on_status
        self.idle_interval_s = idle_interval_s
        self.retry_first_s = retry_first_s
        self.retry_max_s = retry_max_s
        self.auth_retry_s = auth_retry_s
        self._wake = threading.Event()
        self._force = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: SyncStateName = "offline" if settings else "not_configured"
        self._error: str | None = None
        self._status = SyncStatus(self._state)
        self._lock = threading.Lock()
        self.passes = 0

    @property
    def status(self) -> SyncStatus:
        with self._lock:
            return self._status

    def start(self) -> None:
        """Start the thread; it first takes the sync lock and releases rows a previous run
        left in flight (waiting, offline, while another process holds the lock)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("SyncWorker already started")
        self._stop.clear()
        self.engine.stop_requested.clear()
        self._thread = threading.Thread(target=self._run, name="milkconsole-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the call in progress (between batches); True when the thread ended."""
        self._stop.set()
        self.engine.stop_requested.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            if thread.is_alive():
                return False
        self._thread = None
        self.engine.close()
        return True

    def notify(self) -> None:
        """Something was queued (a session completed): sync soon, unless backing off."""
        self._wake.set()

    def on_committed(self, events: list[object]) -> None:
        """A `ParlourRuntime` committed-listener: a finished session was stored, sync it now."""
        if any(isinstance(e, SessionCompleted) for e in events):
            self.notify()

    def retry_now(self) -> None:
        """Sync now even if backing off or after a refused login (the user fixed something)."""
        self._force.set()
        self._wake.set()

    def _publish(self) -> None:
        status = self.engine.status(self._state, self._error)
        with self._lock:
            self._status = status
        if self._on_status is not None:
            try:
                self._on_status(status)
            except Exception:
                log.exception("sync status listener failed")

    def _on_progress(self) -> None:
        self._state = "online"
        self._publish()

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            self._wake.clear()
            self._force.clear()
            wait: float
            try:
                if not self.engine.locked:
                    self.engine.start()
                self.engine.run_once()
                self.passes += 1
                self._state, self._error = "online", None
                failures = 0
                wait = self.idle_interval_s
            except (OdooNotConfigured, SecretsError) as exc:
                # No [odoo] section, no stored secret, or no OS keyring to hold one.
                self._state, self._error = "not_configured", str(exc)
                wait = self.auth_retry_s
            except OdooAuthError as exc:
                if self._state != "auth_failed":
                    log.error("Odoo sync stopped: %s", exc.message)
                self._state, self._error = "auth_failed", exc.message
                # Seldom: each try is a failed login on the server (which may lock the user
                # out); `milkconsole odoo login` then retry_now() resumes at once.
                wait = self.auth_retry_s
            except SyncBusy as exc:
                self._state, self._error = "offline", str(exc)
                wait = self.idle_interval_s
            except OdooUnavailable as exc:
                failures += 1
                if self._state != "offline" or failures == 1:
                    log.warning("Odoo unreachable, records wait in the outbox: %s", exc.message)
                else:
                    log.debug("Odoo still unreachable: %s", exc.message)
                self._state, self._error = "offline", exc.message
                ceiling = self._backoff_s(failures)
                wait = self._rng.uniform(ceiling / 2, ceiling)
            except OdooError as exc:  # a contract change mid-pass, a server bug: say it, back off
                failures += 1
                log.warning("sync pass failed: %s", exc.message)
                self._state, self._error = "offline", exc.message
                wait = self._backoff_s(failures)
            except Exception as exc:  # a bug must not end the thread: log it, back off
                failures += 1
                log.exception("sync pass failed")
                self._state, self._error = "offline", f"{type(exc).__name__}: {exc}"
                wait = self._backoff_s(failures)
            self._publish()
            if self._stop.is_set():
                break
            self._sleep(wait)

    def _backoff_s(self, failures: int) -> float:
        return min(self.retry_max_s, self.retry_first_s * 2 ** min(failures - 1, 30))

    def _sleep(self, wait: float) -> None:
        """Wait `wait` s; notify() cuts it short only when online, retry_now() always."""
        deadline = time.monotonic() + wait
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or not self._wake.wait(left):
                return
            self._wake.clear()
            if self._stop.is_set() or self._force.is_set() or self._state == "online":
                return
