"""The sync engine: one pass pulls the herd and pushes the Odoo outbox, exactly once per record.

A pass, with every network call outside any database transaction:

1. Connect and log in (`sync.connect`); check the contract once per connection
   (`sync.check`): a model missing something, a many2one pointing at another model, a selection
   value the server lacks suspend that model with a message, the others go on.
2. Pull `farm.animal` / `farm.animal.rfid` into the local herd, then `farm.animal.treatment`
   (every few minutes).
3. Push the outbox in `PUSH_ORDER` (meters first, then sessions, production, alerts, health
   events, cows' changed fields, tags, treatments), in batches of `batch_size`: claim due rows
   (pending -> in flight; a row whose `after` record is unsent is not claimed) and hand each
   batch to `sync.push`, which resolves Odoo's ids for the meters and cows it links to, looks
   up which stable keys Odoo already has, creates only the missing ones in one call with a
   list and marks them sent. A crash between Odoo's commit and the "sent" mark leaves the rows
   in flight; at the next start they go back to pending, the look-up finds them, and they are
   marked sent without a second create. A refused batch is split in halves until the refused
   record is alone; it goes dead with Odoo's message, the rest land. A record whose required
   meter or cow is not in Odoo waits (deferred), it is not dead; one the server failed on is
   retried after the engine's back-off.
4. Update the meter devices' `last_seen` (every minute).

The engine only pushes: every payload is built and queued by `milkconsole.store.outbound`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from milkconsole.store.db import Database
from milkconsole.store.meters import forget_odoo_ids, seen_meters
from milkconsole.store.outbound import queue_unqueued, requeue_registrations
from milkconsole.store.outbox import Outbox
from milkconsole.store.sync_state import state_get, state_set
from milkconsole.store.tags import associate_pending
from milkconsole.sync.animals import pull_animals, reset_cursors
from milkconsole.sync.check import check_contract
from milkconsole.sync.client import (
    OdooAuthError,
    OdooClient,
    OdooContractError,
    OdooNotConfigured,
    OdooUnavailable,
)
from milkconsole.sync.connect import connect
from milkconsole.sync.contract import OUTBOX_MODEL, PUSH_ORDER, Contract
from milkconsole.sync.lock import SyncBusy, SyncLock
from milkconsole.sync.odoo_values import to_odoo_datetime
from milkconsole.sync.push import BatchPusher, PassCounts
from milkconsole.sync.registration import MeterRegistration
from milkconsole.sync.resolve import Resolver
from milkconsole.sync.settings import OdooSettings
from milkconsole.sync.status import SyncReport, SyncStateName, SyncStatus
from milkconsole.sync.treatments import pull_treatments

log = logging.getLogger(__name__)

ConnectFn = Callable[[OdooSettings | None], OdooClient]

_SERVER = "odoo.server"
_METER_SEEN = "odoo.meter_last_seen."

__all__ = ["ConnectFn", "SyncBusy", "SyncEngine", "SyncReport", "SyncStateName", "SyncStatus"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Stopped(Exception):
    """The worker asked the pass to stop between batches."""


class SyncEngine:
    """One sync pass at a time over a database and an `[odoo]` config. Not thread-safe.

    `connect_fn(settings)` makes a logged-in client (default: `sync.connect.connect`, which finds
    the secret); tests and tools may pass one holding the secret themselves.
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
        self.outbox = Outbox(db, "odoo")
        self.contract = Contract(settings)
        self.resolver = Resolver(db, self.contract)
        self.registration = MeterRegistration(self.contract, self.resolver)
        self.pusher = BatchPusher(
            self.outbox,
            self.contract,
            self.resolver,
            self.registration,
            max_attempts=max_attempts,
            backoff=self._backoff,
        )
        self._connect_fn = connect_fn
        self._rng = rng or random.Random()
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
        self._available: dict[str, frozenset[str]] = {}
        self._pulled_at: float | None = None
        self._treatments_pulled = 0
        self._full_pulled_at: float | None = None
        self._meters_at: float | None = None
        self.last_sync_at: datetime | None = None
        self.batch_size = settings.batch_size if settings else 200
        self._lock = SyncLock(Path(f"{db.path}.sync-lock"))

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> int:
        """Take the database's sync lock, then put rows a stopped process left in flight back
        to pending; returns how many. Raises `SyncBusy` if another engine holds the lock."""
        self._lock.acquire()
        with self.db.write() as tx:
            caught_up = queue_unqueued(tx)
        if caught_up:
            log.info("sync start: queued %d records an older version left unqueued", caught_up)
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
        p = PassCounts()
        self._treatments_pulled = 0
        self.resolver.new_pass()
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
            deferred=p.deferred,
            animals_pulled=pulled[0],
            tags_pulled=pulled[1],
            treatments_pulled=self._treatments_pulled,
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
            # Another Odoo (or database): its ids and write_dates mean nothing to us any more.
            if known is not None:
                log.warning(
                    "Odoo changed from %s to %s: pulling the whole herd and finding the meters "
                    "again",
                    known,
                    self.settings.account,
                )
                with self.db.write() as tx:
                    forget_odoo_ids(tx)
                    # The new server has none of our meters: register them there again (a
                    # registration finds what it already has by device id).
                    requeue_registrations(tx)
                self.resolver.forget_meters()
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
        self._available = dict(check.available)
        self._warnings = check.problems
        self.resolver.available = self._available
        self.registration.available = self._available
        self.pusher.available = self._available
        self.pusher.required = dict(check.required)
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
        available = {k: set(v) for k, v in self._available.items()}
        report = pull_animals(client, self.db, self.contract, available, full=full)
        if "treatment" not in self._suspended:
            # After the herd, so each treatment's cow is here.
            self._treatments_pulled = pull_treatments(
                client, self.db, self.contract, available, full=full
            ).changed
        if report.animals or report.tags or self._pulled_at is None:
            # A cow added or re-tagged in Odoo: sessions recorded under her tag as "unknown"
            # get her now, before they are pushed (their pending creates are amended). Also at
            # a process's first pull: one that stopped between the pull's commit and this one
            # would otherwise leave them unknown, since the next pull sees no change.
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

    # -- push -----------------------------------------------------------------------------------
    def _push_model(
        self, client: OdooClient, model: str, p: PassCounts, now: datetime | None
    ) -> None:
        outbox_model = OUTBOX_MODEL[model]
        while True:
            if self.stop_requested.is_set():
                raise _Stopped
            items = self.outbox.claim(outbox_model, self.batch_size, now or utc_now())
            if not items:
                return
            self.pusher.push(client, model, items, p)
            if self.on_progress is not None:
                self.on_progress()
            if len(items) < self.batch_size:
                return

    def _backoff(self, attempt: int) -> timedelta:
        """Exponential back-off with jitter: between half and all of base * 2^(attempt-1)."""
        ceiling = min(self.retry_max_s, self.retry_base_s * 2 ** min(max(0, attempt - 1), 30))
        return timedelta(seconds=self._rng.uniform(ceiling / 2, ceiling))

    # -- meters ---------------------------------------------------------------------------------
    def _maybe_meters(self, client: OdooClient) -> int:
        """Write each registered meter device's `last_seen` when it moved on (every minute)."""
        mono = time.monotonic()
        if self._meters_at is not None and mono - self._meters_at < self.meter_interval_s:
            return 0
        self._meters_at = mono
        last_seen_field = self.contract.field("device", "last_seen")
        have = self._available.get("device", frozenset())
        if "device" in self._suspended or not last_seen_field or last_seen_field not in have:
            return 0
        with self.db.read() as tx:
            meters = [
                (
                    m.odoo_device_id,
                    m.meter_id,
                    m.last_seen_at,
                    state_get(tx, _METER_SEEN + m.meter_id),
                )
                for m in seen_meters(tx)
            ]
        n = 0
        for device, mid, seen, pushed in meters:
            if _iso(seen) == pushed:
                continue
            client.write(
                self.contract.model("device"),
                [device],
                {last_seen_field: to_odoo_datetime(seen)},
            )
            with self.db.write() as tx:
                state_set(tx, _METER_SEEN + mid, _iso(seen))
            n += 1
        return n
