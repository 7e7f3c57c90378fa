"""ICAR Animal Data Exchange (ADE) export: milking-visit events (`icarMilkingVisitEventResource`).

The file is an `icarMilkingVisitEventCollection` (JSON: `view.totalItems` and `member`, one
resource per finished milking). What goes where (docs/exports.md has the table):

- `animal`: the cow's ISO 11784 code as its 15-digit decimal under the well-known scheme
  `std.iso.11785` (the RFID code number a reader gives: 3 digits of country or manufacturer
  code, 12 of national id). The herd list's canonical tag when the cow is known, else the tag
  the meter read. A milking whose cow has no ISO tag cannot be identified in ADE and is left out
  (counted in `AdeExport.skipped`).
- `milkingMilkWeight`: ADE weighs milk (unit `KGM`); the meters measure litres, converted with
  `MILK_DENSITY_KG_L` and rounded to 0.01 kg.
- `milkingDuration` in seconds (`SEC`, whole seconds); `milkingStartingDateTime` and
  `eventDateTime` the cluster-on time, RFC 3339 UTC; `milkingComplete` true for a completed
  milking; `milkingParlourUnit` the stall; `milkingDeviceId` / `measureDeviceId` the meter id;
  `milkingType` `Manual` (a parlour: people attach the clusters).
- `quarterMilkings`: the quarters' conductivity (`AVGCOND`, mS/cm) where the meter reports them.
- `milkCharacteristics`: AVGCOND, MAXCOND, MAXFLWR / AVGFLWR (kg/min), FAT, PROTEIN, LAC, SCC
  (x1000 cells/ml), BLOOD, TEMPERATURE, as measured; values are strings per the schema.
- `milkingRemarks`: `MilkingIncomplete` (incomplete or interrupted), `MilkedSeparately` (milk
  diverted from the tank).
- `meta`: source `milkconsole`, sourceId the session key (stable forever), modified its last
  change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

from milkconsole.herd.directory import canonical_tag
from milkconsole.store import history
from milkconsole.store.db import Database
from milkconsole.store.sessions import SessionRecord, iso_z

RESOURCE_TYPE = "icarMilkingVisitEventResource"
ANIMAL_SCHEME = "std.iso.11785"
SOURCE = "milkconsole"
# Whole milk at the meter's temperature; ICAR's litre-to-kilogram factor is 1.03.
MILK_DENSITY_KG_L = 1.03
QUARTERS = (
    ("LF", "ec_lf_ms_cm"),
    ("RF", "ec_rf_ms_cm"),
    ("LR", "ec_lr_ms_cm"),
    ("RR", "ec_rr_ms_cm"),
)


@dataclass(frozen=True, slots=True)
class AdeExport:
    """The collection written, and the milkings that could not be (no ISO tag)."""

    document: dict[str, Any]
    exported: int
    skipped: tuple[str, ...]


def iso_animal_id(rec: SessionRecord, herd_tags: dict[int, str | None]) -> str | None:
    """The 15-digit ISO code of the milking's cow, or None when she has none."""
    candidates = []
    if rec.animal_id is not None:
        candidates.append(herd_tags.get(rec.animal_id))
    candidates.append(rec.rfid)
    for raw in candidates:
        tag = canonical_tag(raw)
        if tag is not None and tag.isdigit() and len(tag) == 15:
            return tag
    return None


def _characteristic(code: str, value: str, unit: str | None = None) -> dict[str, str]:
    out = {"characteristic": code, "value": value}
    if unit is not None:
        out["unit"] = unit
    return out


def _characteristics(rec: SessionRecord) -> list[dict[str, str]]:
    out = []
    if rec.conductivity_mean_ms_cm is not None:
        out.append(_characteristic("AVGCOND", f"{rec.conductivity_mean_ms_cm:.2f}"))
    if rec.conductivity_max_ms_cm is not None:
        out.append(_characteristic("MAXCOND", f"{rec.conductivity_max_ms_cm:.2f}"))
    if rec.avg_flow_l_min > 0:
        out.append(_characteristic("AVGFLWR", f"{rec.avg_flow_l_min * MILK_DENSITY_KG_L:.2f}"))
    if rec.peak_flow_l_min > 0:
        out.append(_characteristic("MAXFLWR", f"{rec.peak_flow_l_min * MILK_DENSITY_KG_L:.2f}"))
    for code, value in (("FAT", rec.fat_pct), ("PROTEIN", rec.protein_pct)):
        if value is not None:
            out.append(_characteristic(code, f"{value:.2f}"))
    if rec.lactose_pct is not None:
        out.append(_characteristic("LAC", f"{rec.lactose_pct:.2f}"))
    if rec.scc_cells_ml is not None:
        out.append(_characteristic("SCC", f"{rec.scc_cells_ml / 1000.0:.0f}"))
    if rec.blood is not None:
        out.append(_characteristic("BLOOD", "true" if rec.blood else "false"))
    if rec.temperature_c is not None:
        out.append(_characteristic("TEMPERATURE", f"{rec.temperature_c:.1f}", "CEL"))
    return out


def milking_visit(rec: SessionRecord, animal_id: str) -> dict[str, Any]:
    """One finished session as an `icarMilkingVisitEventResource`."""
    started = iso_z(rec.started_at)
    resource: dict[str, Any] = {
        "resourceType": RESOURCE_TYPE,
        "meta": {"source": SOURCE, "sourceId": rec.key, "modified": iso_z(rec.updated_at)},
        "id": rec.key,
        "eventDateTime": started,
        "animal": {"id": animal_id, "scheme": ANIMAL_SCHEME},
        "milkingStartingDateTime": started,
        "milkingDuration": {"unitCode": "SEC", "value": float(round(rec.duration_s))},
        "milkingType": "Manual",
        "milkingMilkWeight": {
            "unitCode": "KGM",
            "value": round(rec.yield_l * MILK_DENSITY_KG_L, 2),
        },
        "milkingComplete": rec.state == "completed",
        "milkingParlourUnit": str(rec.stall),
        "milkingDeviceId": rec.meter_id,
        "measureDeviceId": rec.meter_id,
    }
    quarters = [
        {
            "icarQuarterId": name,
            "icarQuarterCharacteristics": [
                _characteristic("AVGCOND", f"{getattr(rec, column):.2f}")
            ],
        }
        for name, column in QUARTERS
        if getattr(rec, column) is not None
    ]
    if quarters:
        resource["quarterMilkings"] = quarters
    characteristics = _characteristics(rec)
    if characteristics:
        resource["milkCharacteristics"] = characteristics
    remarks = []
    if rec.state in ("incomplete", "interrupted"):
        remarks.append("MilkingIncomplete")
    if rec.destination == "diverted":
        remarks.append("MilkedSeparately")
    if remarks:
        resource["milkingRemarks"] = remarks
    return resource


def build_ade(records: Iterable[SessionRecord], herd_tags: dict[int, str | None]) -> AdeExport:
    members = []
    skipped = []
    for rec in records:
        animal = iso_animal_id(rec, herd_tags)
        if animal is None:
            skipped.append(rec.key)
            continue
        members.append(milking_visit(rec, animal))
    return AdeExport(
        {"view": {"totalItems": len(members)}, "member": members}, len(members), tuple(skipped)
    )


def export_ade(db: Database, start: datetime, end: datetime) -> AdeExport:
    """The finished milkings that started in [start, end) as an ADE collection."""
    records = history.finished_between(db, start, end)
    ids = {r.animal_id for r in records if r.animal_id is not None}
    tags = {k: c.rfid_tag for k, c in history.cows(db, ids).items()}
    return build_ade(records, tags)


def write_ade(out: TextIO, export: AdeExport) -> None:
    json.dump(export.document, out, indent=1, ensure_ascii=False)
    out.write("\n")
