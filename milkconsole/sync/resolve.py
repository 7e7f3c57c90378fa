"""Odoo's ids for the meters and cows a batch links to, looked up when the batch is sent.

Payloads name meters by device id and cows by their local id (with herd number and tag), never
by an Odoo id frozen when they were queued: a cow deleted in Odoo and created again, or added to
Odoo after her milkings were recorded, is found again here.

- Meters: the ids the registration stored locally (`meters.odoo_*`); else found by device id on
  the server (`iot.device`, then the `iot.milk_meter` that inherits it, then its point).
- Cows: the local cow's `odoo_id` when Odoo still has that record; else the Odoo cow with her
  canonical tag, else with her herd number; else None (the record goes without the link, or
  waits when the link is required). One search per batch checks every id at once.
"""

from __future__ import annotations

import logging
from typing import Any

from milkconsole.store.db import Database
from milkconsole.store.herd_sync import CowLink, cow_links
from milkconsole.store.meters import odoo_meters, set_odoo_ids
from milkconsole.sync.client import OdooClient
from milkconsole.sync.contract import Contract, MeterIds
from milkconsole.sync.odoo_values import odoo_text

log = logging.getLogger(__name__)

_CHUNK = 1000


class Resolver:
    """Looks ids up for one engine; the cow cache lives for one pass (`new_pass()`)."""

    def __init__(self, db: Database, contract: Contract) -> None:
        self.db = db
        self.contract = contract
        self.available: dict[str, frozenset[str]] = {}
        self._meters: dict[str, MeterIds] = {}
        self._meters_partial: dict[str, MeterIds] = {}
        self._animals: dict[int, int | None] = {}
        self._warned: set[int] = set()

    def new_pass(self) -> None:
        """Forget the cows and half-registered meters looked up (Odoo may have changed)."""
        self._animals.clear()
        self._meters_partial.clear()

    def forget_meters(self) -> None:
        self._meters.clear()

    def remember_meter(self, device_id: str, ids: MeterIds) -> None:
        self._meters[device_id] = ids
        set_odoo_ids(self.db, device_id, ids.device, ids.meter, ids.point)

    # -- meters ---------------------------------------------------------------------------------
    def meters(self, client: OdooClient, device_ids: set[str]) -> dict[str, MeterIds]:
        """MeterIds for each device id (MeterIds() when the meter is not in Odoo)."""
        want = {d for d in device_ids if d not in self._meters and d not in self._meters_partial}
        if want:
            for device_id, m in odoo_meters(self.db, want).items():
                self._meters[device_id] = MeterIds(m.device, m.meter, m.point)
            for d in sorted(want - set(self._meters)):
                found = self.find_meter(client, d)
                if found.meter is not None:
                    self.remember_meter(d, found)
                else:
                    # Not in Odoo, or a device without its milk meter yet (registered by hand):
                    # alerts can link to the device; sessions wait for the registration. Asked
                    # again next pass.
                    self._meters_partial[d] = found
        return {
            d: self._meters.get(d) or self._meters_partial.get(d) or MeterIds() for d in device_ids
        }

    def find_meter(self, client: OdooClient, device_id: str) -> MeterIds:
        """The meter's ids on the server by its device id (empty parts: not there)."""
        c = self.contract
        key = c.key_field("device")
        rows = client.search_read(
            c.model("device"),
            [[key, "=", device_id]],
            [key],
            context={"active_test": False},
        )
        if not rows:
            return MeterIds()
        device = int(rows[0]["id"])
        meter_link = c.field("milk_meter", "device_id") or "device_id"
        meters = client.search(
            c.model("milk_meter"), [[meter_link, "=", device]], context={"active_test": False}
        )
        if not meters:
            return MeterIds(device=device)
        meter = int(meters[0])
        point_link = c.field("milk_meter_point", "meter_id") or "meter_id"
        points = client.search(c.model("milk_meter_point"), [[point_link, "=", meter]])
        return MeterIds(device, meter, int(points[0]) if points else None)

    # -- cows -----------------------------------------------------------------------------------
    def animals(self, client: OdooClient, local_ids: set[int]) -> dict[int, int | None]:
        """Odoo id (or None) for each local animal id."""
        want = {i for i in local_ids if i not in self._animals}
        if want:
            self._look_up_animals(client, want)
        return {i: self._animals.get(i) for i in local_ids}

    def _look_up_animals(self, client: OdooClient, want: set[int]) -> None:
        rows = cow_links(self.db, want)
        model = self.contract.model("animal")
        claimed = sorted({odoo for odoo, _, _ in rows.values() if odoo is not None})
        alive: set[int] = set()
        for start in range(0, len(claimed), _CHUNK):
            alive.update(
                client.search(
                    model,
                    [["id", "in", claimed[start : start + _CHUNK]]],
                    context={"active_test": False},
                )
            )
        lost = {i: r for i, r in rows.items() if r[0] is None or r[0] not in alive}
        found = self._by_tag_or_number(client, lost) if lost else {}
        for local_id in want:
            row = rows.get(local_id)
            if row is None:
                self._animals[local_id] = None
                continue
            if row[0] is not None and row[0] in alive:
                self._animals[local_id] = row[0]
                continue
            odoo_id = found.get(local_id)
            self._animals[local_id] = odoo_id
            if local_id in self._warned:
                continue
            self._warned.add(local_id)
            if odoo_id is not None and row[0] is not None:
                log.warning(
                    "cow %s is no longer Odoo record %d; found her again as %d by tag or number",
                    row[1],
                    row[0],
                    odoo_id,
                )
            elif odoo_id is None and row[0] is not None:
                log.warning(
                    "cow %s (Odoo record %d) is gone from Odoo and no cow there has her tag or "
                    "number; her records go without the link, or wait where Odoo requires it",
                    row[1],
                    row[0],
                )

    def _by_tag_or_number(self, client: OdooClient, lost: dict[int, CowLink]) -> dict[int, int]:
        c = self.contract
        have = self.available.get("animal")
        tag_field = c.field("animal", "rfid_tag")
        number_field = c.field("animal", "number")
        if have is not None:
            tag_field = tag_field if tag_field in have else None
            number_field = number_field if number_field in have else None
        tags = sorted({t for _, _, t in lost.values() if t})
        numbers = sorted({n for _, n, _ in lost.values() if n})
        by_tag: dict[str, int] = {}
        by_number: dict[str, int] = {}
        fields = [f for f in (tag_field, number_field) if f]
        for field, values, into in ((tag_field, tags, by_tag), (number_field, numbers, by_number)):
            if not field or not values:
                continue
            for start in range(0, len(values), _CHUNK):
                for rec in client.search_read(
                    c.model("animal"), [[field, "in", values[start : start + _CHUNK]]], fields
                ):
                    text = _text(rec.get(field))
                    if text is not None:
                        into.setdefault(text, int(rec["id"]))
        out: dict[int, int] = {}
        for local_id, (_, number, tag) in lost.items():
            hit = (by_tag.get(tag) if tag else None) or (by_number.get(number) if number else None)
            if hit is not None:
                out[local_id] = hit
        return out


def _text(value: Any) -> str | None:
    return odoo_text(value)
