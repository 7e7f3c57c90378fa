"""Registering the parlour's meters in Odoo: `iot.device` + the `iot.milk_meter` that inherits it
+ its milking point, created or updated by device id.

A registration row of the outbox (model `iot.milk_meter`, key = the meter's device id) becomes,
per meter, a few calls: find the device by its device id (archived ones too) or create it, then
the milk meter linked to that device, then its point; a `write` row updates what changed
(a calibration's factor and date, a new port). Meters are few, so one call each is fine. The ids
are kept locally (`meters.odoo_*`), so sessions link to the `iot.milk_meter` and alerts to the
`iot.device` of the same meter, never to another one.

A device id that Odoo already uses for something that is not a milk meter is refused (the meter
waits, dead, with the reason) rather than linked to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from milkconsole.store.outbox import OutboxItem
from milkconsole.sync.client import OdooClient, OdooRefused, OdooServerError
from milkconsole.sync.contract import Contract, MeterIds, Refs
from milkconsole.sync.resolve import Resolver

log = logging.getLogger(__name__)

Failed = Callable[[OutboxItem, str], None]


class MeterRegistration:
    """Pushes registration rows; `available` holds the server fields per contract model."""

    def __init__(self, contract: Contract, resolver: Resolver) -> None:
        self.contract = contract
        self.resolver = resolver
        self.available: dict[str, frozenset[str]] = {}

    def push(self, client: OdooClient, item: OutboxItem, refused: Failed) -> int | None:
        """Create or update one meter's records; its `iot.milk_meter` id, or None when Odoo
        refused it (`refused(item, why)` was called)."""
        device_id = str(item.payload.get("meter_id") or item.record_key)
        payload = {**item.payload, "meter_id": device_id}
        try:
            return self._push(client, item, payload, refused)
        except (OdooRefused, OdooServerError) as exc:
            refused(item, f"Odoo refused meter {device_id}: {exc.message}")
            return None

    def _push(
        self, client: OdooClient, item: OutboxItem, payload: dict[str, Any], refused: Failed
    ) -> int | None:
        c = self.contract
        device_id = payload["meter_id"]
        op = item.operation
        found = self.resolver.find_meter(client, device_id)
        device = found.device
        if device is not None and not self._is_milk_meter(client, device):
            refused(
                item,
                f"Odoo's {c.model('device')} with device id {device_id!r} is not a milk meter; "
                "rename one of them so the console does not link milkings to it",
            )
            return None
        refs = Refs(meters={device_id: found})
        device_vals = self._vals("device", payload, refs, "write" if device else op)
        if device is None:
            device = client.create(c.model("device"), [self._vals("device", payload, refs)])[0]
        elif device_vals:
            client.write(c.model("device"), [device], device_vals)

        ids = MeterIds(device, found.meter, found.point)
        refs = Refs(meters={device_id: ids})
        meter = found.meter
        if meter is None:
            vals = self._vals("milk_meter", payload, refs)
            meter = client.create(c.model("milk_meter"), [vals])[0]
        else:
            vals = self._vals("milk_meter", payload, refs, op)
            if op == "create" or vals:
                client.write(c.model("milk_meter"), [meter], vals)

        ids = MeterIds(device, meter, found.point)
        refs = Refs(meters={device_id: ids})
        point = found.point
        if point is None:
            point = client.create(
                c.model("milk_meter_point"), [self._vals("milk_meter_point", payload, refs)]
            )[0]
        elif op == "create" or "stall" in payload:
            vals = self._vals("milk_meter_point", payload, refs, "write")
            if vals:
                client.write(c.model("milk_meter_point"), [point], vals)
        self.resolver.remember_meter(device_id, MeterIds(device, meter, point))
        if found.meter is None:
            log.info("meter %s registered in Odoo (device %d, meter %d)", device_id, device, meter)
        return meter

    def _vals(
        self, model: str, payload: dict[str, Any], refs: Refs, op: str = "create"
    ) -> dict[str, Any]:
        vals = self.contract.vals(model, payload, refs, op)
        have = self.available.get(model)
        if have is not None:
            # Optional fields a farm's module lacks (the check reported them) are left out.
            vals = {k: v for k, v in vals.items() if k in have}
        return vals

    def _is_milk_meter(self, client: OdooClient, device: int) -> bool:
        c = self.contract
        type_field = c.field("device", "device_type")
        have = self.available.get("device")
        if not type_field or (have is not None and type_field not in have):
            return True
        rows = client.search_read(
            c.model("device"), [["id", "=", device]], [type_field], context={"active_test": False}
        )
        kind = rows[0].get(type_field) if rows else None
        return kind in (None, False, "milk_meter")
