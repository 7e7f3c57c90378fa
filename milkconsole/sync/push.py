"""Pushing one claimed batch of outbox rows to Odoo: the calls, the refusals, the retries.

The engine (`sync.engine`) claims a batch of one contract model and hands it here. A meter's
registration goes through `sync.registration`; any other batch gets Odoo's ids for the meters
and cows it links to (`sync.resolve`), its values from the contract, and then:

- creates: a record whose required meter or cow is not in Odoo yet waits (deferred); the
  stable keys Odoo already has (sent before an interruption) are marked sent without a second
  create; the rest go in one `create` with a list. A refused batch is split in halves until
  the refused record is alone: it goes dead with Odoo's message, the others land.
- writes: to the Odoo id the outbox kept (or finds by key; a cow by her local id), only the
  fields the payload carries.
- a refusal (`OdooRefused`) is final; a server error is retried with the engine's back-off up
  to `max_attempts`, then the record is dead.

It is apart from the engine so that the pass (lock, claim loop, status, back-off, pulls) and
the Odoo calls of one batch can each be read whole; the engine keeps every decision of when
and how often, this module every decision of what one batch sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from milkconsole.store.outbox import Outbox, OutboxItem
from milkconsole.sync.client import OdooClient, OdooError, OdooRefused, OdooServerError
from milkconsole.sync.contract import CONTRACT, OUTBOX_MODEL, Contract, Refs
from milkconsole.sync.odoo_values import MappingError
from milkconsole.sync.registration import MeterRegistration
from milkconsole.sync.resolve import Resolver

log = logging.getLogger(__name__)

DEFER_S = 300.0  # a record waiting for its cow or meter in Odoo is looked at again after this


@dataclass
class PassCounts:
    """Counters of the pass in progress (the engine's, filled here; one thread)."""

    created: dict[str, int] = field(default_factory=dict)
    already: int = 0
    written: int = 0
    dead: int = 0
    retried: int = 0
    deferred: int = 0
    create_calls: int = 0


class BatchPusher:
    """Sends claimed outbox rows to Odoo and marks each one sent, retried, deferred or dead.

    `backoff(attempt)` is how long a record the server failed on waits (the engine's);
    `available` and `required` are the server's fields per contract model, as the engine's
    last contract check found them.
    """

    def __init__(
        self,
        outbox: Outbox,
        contract: Contract,
        resolver: Resolver,
        registration: MeterRegistration,
        *,
        max_attempts: int,
        backoff: Callable[[int], timedelta],
    ) -> None:
        self.outbox = outbox
        self.contract = contract
        self.resolver = resolver
        self.registration = registration
        self.max_attempts = max_attempts
        self._backoff = backoff
        self.available: dict[str, frozenset[str]] = {}
        self.required: dict[str, frozenset[str]] = {}

    def push(self, client: OdooClient, model: str, items: list[OutboxItem], p: PassCounts) -> None:
        """Send `items` (claimed rows of contract model `model`) and settle each one. On an
        error that stops the batch (Odoo unreachable, a contract error) the rows not settled yet
        go back to pending, due at once, and the error is raised to the engine."""
        done: set[int] = set()
        try:
            if model == "milk_meter":
                self._push_registrations(client, items, p, done)
                return
            refs = self._refs(client, model, items)
            creates = [i for i in items if i.operation == "create"]
            writes = [i for i in items if i.operation == "write"]
            self._push_creates(client, model, creates, refs, p, done)
            self._push_writes(client, model, writes, refs, p, done)
        except Exception as exc:
            # Nothing more is known about the rest: back to pending and due at once (the worker
            # backs off from an unreachable Odoo, not each record); the next pass looks them up
            # before creating, so whatever did land is not created twice.
            message = exc.message if isinstance(exc, OdooError) else f"{type(exc).__name__}: {exc}"
            retry_at = datetime.now(UTC)
            for it in items:
                if it.id not in done:
                    self.outbox.mark_retry(it.id, message, retry_at)
            raise

    def _refs(self, client: OdooClient, model: str, items: list[OutboxItem]) -> Refs:
        """Odoo's ids for the meters and cows this batch links to."""
        spec = CONTRACT[model]
        links = {f.relation for f in spec.fields if f.relation}
        meters: set[str] = set()
        animals: set[int] = set()
        for it in items:
            if links & {"device", "milk_meter", "milk_meter_point"} and it.payload.get("meter_id"):
                meters.add(str(it.payload["meter_id"]))
            aid = it.payload.get("animal_id")
            if "animal" in links and isinstance(aid, int) and not isinstance(aid, bool):
                animals.add(aid)
        return Refs(
            meters=self.resolver.meters(client, meters) if meters else {},
            animals=self.resolver.animals(client, animals) if animals else {},
            zone=self.contract.zone,
        )

    def _missing_link(
        self, model: str, payload: dict[str, Any], vals: dict[str, Any]
    ) -> str | None:
        """Why a record must wait: a link Odoo requires (or the contract does) is not in Odoo
        yet. None when it can go."""
        required = self.required.get(model, frozenset())
        for f in CONTRACT[model].fields:
            if f.relation is None or not (f.required or f.name in required):
                continue
            server = self.contract.field(model, f.name)
            if not server or server in vals:
                continue
            if f.relation in ("device", "milk_meter", "milk_meter_point"):
                if payload.get("meter_id"):
                    return f"meter {payload['meter_id']} is not registered in Odoo yet"
            elif f.relation == "animal" and payload.get("animal_id") is not None:
                who = payload.get("animal_number") or payload.get("animal_id")
                return f"cow {who} is not in Odoo (by id, tag or herd number)"
        return None

    def _push_creates(
        self,
        client: OdooClient,
        model: str,
        items: list[OutboxItem],
        refs: Refs,
        p: PassCounts,
        done: set[int],
    ) -> None:
        if not items:
            return
        vals: dict[int, dict[str, Any]] = {}
        for it in items:
            try:
                v = self.contract.vals(model, it.payload, refs, "create")
            except MappingError as exc:
                self._dead(it, model, f"cannot be sent: {exc}", p, done)
                continue
            waiting = self._missing_link(model, it.payload, v)
            if waiting is not None:
                self._defer(it, model, waiting, p, done)
                continue
            vals[it.id] = v
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

    def _create(
        self,
        client: OdooClient,
        model: str,
        group: list[OutboxItem],
        vals: dict[int, dict[str, Any]],
        p: PassCounts,
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
        p: PassCounts,
        done: set[int],
    ) -> None:
        if not items:
            return
        keyless = CONTRACT[model].key_field is None
        if keyless:
            # A cow the console never creates: her Odoo id is found as a link to her is.
            found = self._cow_ids(client, items)
            known: dict[str, int] = {}
        else:
            outbox_model = OUTBOX_MODEL[model]
            known = self.outbox.odoo_ids_for(outbox_model, [it.record_key for it in items])
            unknown = [it.record_key for it in items if it.record_key not in known]
            found = self._lookup(client, model, unknown) if unknown else {}
        for it in items:
            odoo_id = known.get(it.record_key) or found.get(it.record_key)
            if odoo_id is None and keyless:
                who = it.payload.get("animal_number") or it.record_key
                self._defer(it, model, f"cow {who} is not in Odoo (by id, tag or number)", p, done)
                continue
            if odoo_id is None:
                self._dead(it, model, "its record is no longer in Odoo (deleted there?)", p, done)
                continue
            try:
                vals = self.contract.vals(model, it.payload, refs, "write")
            except MappingError as exc:
                self._dead(it, model, f"cannot be sent: {exc}", p, done)
                continue
            if keyless and model in self.available:
                # A pulled model may lack an optional field (the check said so): leave it out.
                vals = {k: v for k, v in vals.items() if k in self.available[model]}
            waiting = self._missing_link(model, it.payload, vals)
            if waiting is not None:
                self._defer(it, model, waiting, p, done)
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

    def _cow_ids(self, client: OdooClient, items: list[OutboxItem]) -> dict[str, int]:
        """Odoo's id of each row's cow (rows keyed by her local id), where Odoo has her."""
        local: dict[str, int] = {}
        for it in items:
            aid = it.payload.get("animal_id")
            if isinstance(aid, int) and not isinstance(aid, bool):
                local[it.record_key] = aid
        ids = self.resolver.animals(client, set(local.values())) if local else {}
        return {key: odoo for key, aid in local.items() if (odoo := ids.get(aid)) is not None}

    def _push_registrations(
        self, client: OdooClient, items: list[OutboxItem], p: PassCounts, done: set[int]
    ) -> None:
        for it in items:

            def refused(item: OutboxItem, why: str) -> None:
                self._dead(item, "milk_meter", why, p, done)

            meter_id = self.registration.push(client, it, refused)
            if meter_id is None:
                continue
            self.outbox.mark_sent({it.id: meter_id})
            done.add(it.id)
            if it.operation == "create":
                p.created["milk_meter"] = p.created.get("milk_meter", 0) + 1
            else:
                p.written += 1

    def _failed(
        self, item: OutboxItem, model: str, exc: OdooError, p: PassCounts, done: set[int]
    ) -> None:
        if isinstance(exc, OdooRefused) or item.attempts >= self.max_attempts:
            why = (
                "Odoo refused it"
                if isinstance(exc, OdooRefused)
                else (f"Odoo failed on it {item.attempts} times")
            )
            self._dead(item, model, f"{why}: {exc.message}", p, done)
            return
        retry_at = datetime.now(UTC) + self._backoff(item.attempts)
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

    def _dead(
        self, item: OutboxItem, model: str, message: str, p: PassCounts, done: set[int]
    ) -> None:
        self.outbox.mark_dead(item.id, message)
        done.add(item.id)
        p.dead += 1
        log.error("%s %s will not be sent: %s", model, item.record_key, message)

    def _defer(self, item: OutboxItem, model: str, why: str, p: PassCounts, done: set[int]) -> None:
        self.outbox.defer(item.id, why, datetime.now(UTC) + timedelta(seconds=DEFER_S))
        done.add(item.id)
        p.deferred += 1
        log.info("%s %s waits: %s", model, item.record_key, why)
