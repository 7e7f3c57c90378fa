"""A fabricated week of a small parlour whose report figures are worked out by hand.

Four stalls (herringbone: side A stalls 1-2, side B stalls 3-4, meters M1-M4), four cows
milked at 05:00 and 16:00 UTC for eight days up to DAY's AM milking:

- every milking before DAY's: Ada 10 L, Bea 12 L, Cleo 8 L, Dot 14 L (44 L), except that Dot
  gave 16 L at yesterday's AM milking (46 L);
- DAY AM (the report's milking), six sessions:

  ========  =====  =========  =====  ======  ==========================================
  cow       stall  start      secs   litres  what
  ========  =====  =========  =====  ======  ==========================================
  Ada       1      05:00:00   400    10.0    recovered after a restart
  Bea       2      05:02:00   500    6.0     re-attached; 50 % of her expected 12 L: drop
  Cleo      3      05:04:00   60     7.5     incomplete, flag short (kicked off)
  Dot       4      05:06:00   480    14.0    diverted ("antibiotic treatment")
  (no ID)   3      05:12:00   300    2.0     interrupted, no tag read (comm_timeout)
  tag 999   4      05:15:00   420    9.0     a tag the herd list does not know
  ========  =====  =========  =====  ======  ==========================================

By hand: 48.5 L from 6 cows (4 identified + 2 unidentified), 8.0833 L per cow; yesterday's AM
46 L from 4 cows; the 7-day mean of the AM milkings (46 + 6 x 44) / 7 = 44.2857 L, 4 cows.
First cow on 05:00:00, last off 05:22:00: 1320 s, 6 / (1320 / 3600) = 16.36 cows per hour.
Side A: 2 milkings, 16 L; side B: 4 milkings, 32.5 L. Tank 34.5 L, diverted 14 L.
One alert (mastitis, Cleo) at DAY 05:20; another the day before.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, Animal, Meter
from milkconsole.store.sessions import new_session_row

DAY = date(2026, 3, 10)
AM = datetime(2026, 3, 10, 5, 0, tzinfo=UTC)
COWS = {"Ada": 10.0, "Bea": 12.0, "Cleo": 8.0, "Dot": 14.0}
NUMBERS = {"Ada": "101", "Bea": "102", "Cleo": "103", "Dot": "104"}
TAGS = {name: f"982000000000{n}" for name, n in NUMBERS.items()}
CALVED = date(2026, 1, 20)


def _snap(
    key: str, stall: int, start: datetime, secs: float, litres: float, **kw: object
) -> SessionSnapshot:
    values: dict[str, object] = {
        "key": key,
        "meter_id": f"M{stall}",
        "stall": stall,
        "started_at": start,
        "state": "completed",
        "ended_at": start + timedelta(seconds=secs),
        "duration_s": secs,
        "yield_l": litres,
        "peak_flow_l_min": 3.0,
        "avg_flow_l_min": 60.0 * litres / secs,
        "conductivity_mean_ms_cm": 5.0,
        "conductivity_max_ms_cm": 5.4,
    }
    values.update(kw)
    return SessionSnapshot(**values)  # type: ignore[arg-type]


def fabricate_week(db: Database) -> dict[str, int]:
    """Write the week (see the module docstring); the cows' animal ids by name."""
    with db.write() as tx:
        for s in range(1, 5):
            tx.add(Meter(id=f"M{s}", name=f"Stall {s}", bus_id="b", unit=s, profile="gea", stall=s))
        ids: dict[str, int] = {}
        for name in COWS:
            a = Animal(
                number=NUMBERS[name],
                name=name,
                rfid_tag=TAGS[name],
                active=True,
                last_calving_date=CALVED,
                lactation_number=2,
            )
            tx.add(a)
            tx.flush()
            ids[name] = a.id
        rows = []
        for back in range(7, 0, -1):
            for hour in (5, 16):
                base = AM - timedelta(days=back) + timedelta(hours=hour - 5)
                for i, (name, litres) in enumerate(COWS.items()):
                    if back == 1 and hour == 5 and name == "Dot":
                        litres = 16.0
                    start = base + timedelta(minutes=2 * i)
                    key = f"W-{back}-{hour}-{name}"
                    row = new_session_row(
                        _snap(key, i + 1, start, 420, litres, rfid=TAGS[name]), start
                    )
                    row.animal_id, row.id_source, row.destination = ids[name], "rfid", "tank"
                    rows.append(row)
        today = [
            ("Ada", 1, 0, 400, 10.0, {"flags": ("recovered",)}),
            ("Bea", 2, 2, 500, 6.0, {}),
            ("Cleo", 3, 4, 60, 7.5, {"state": "incomplete", "flags": ("short",)}),
            ("Dot", 4, 6, 480, 14.0, {}),
        ]
        for name, stall, minute, secs, litres, kw in today:
            start = AM + timedelta(minutes=minute)
            row = new_session_row(
                _snap(f"D-{name}", stall, start, secs, litres, rfid=TAGS[name], **kw), start
            )
            row.animal_id, row.id_source, row.destination = ids[name], "rfid", "tank"
            if name == "Bea":
                row.reattached = True
            if name == "Dot":
                row.destination, row.divert_reason = "diverted", "antibiotic treatment"
            rows.append(row)
        no_id = AM + timedelta(minutes=12)
        rows.append(
            new_session_row(
                _snap("D-noid", 3, no_id, 300, 2.0, state="interrupted", flags=("comm_timeout",)),
                no_id,
            )
        )
        stranger = AM + timedelta(minutes=15)
        rows.append(
            new_session_row(
                _snap("D-stranger", 4, stranger, 420, 9.0, rfid="982000000000999"), stranger
            )
        )
        tx.add_all(rows)
        for key, at in (
            ("A-today", AM + timedelta(minutes=20)),
            ("A-before", AM - timedelta(hours=20)),
        ):
            tx.add(
                AlertRow(
                    key=key,
                    kind="mastitis",
                    severity="warning",
                    state="open",
                    animal_id=ids["Cleo"],
                    message="conductivity up 18 % on LF",
                    raised_at=at,
                )
            )
    return ids


def fabricate_meter_days(
    db: Database, *, low_meter: str = "M3", error: float = -0.05
) -> dict[str, int]:
    """Eight meters and 30 cows milked 6 times each, the cows rotating through the stalls, with
    `low_meter` reading `error` (-5 %) of the truth; every cow has her own usual yield and a
    small wobble. Milkings from AM - 3 days; the cows' ids by herd number."""
    with db.write() as tx:
        for s in range(1, 9):
            tx.add(Meter(id=f"M{s}", name=f"Stall {s}", bus_id="b", unit=s, profile="gea", stall=s))
        ids: dict[str, int] = {}
        for c in range(30):
            a = Animal(number=str(200 + c), rfid_tag=f"982000000001{c:03d}", active=True)
            tx.add(a)
            tx.flush()
            ids[a.number] = a.id
        rows = []
        start0 = AM - timedelta(days=3)
        for m in range(6):
            base = start0 + timedelta(hours=12 * m)
            for c in range(30):
                stall = (c * 5 + m * 3) % 8 + 1
                usual = 9.0 + (c * 37 % 80) / 10.0
                wobble = 1.0 + 0.01 * ((c * 7 + m * 3) % 5 - 2)
                litres = usual * wobble * (1.0 + error if f"M{stall}" == low_meter else 1.0)
                start = base + timedelta(minutes=c)
                snap = _snap(f"MD-{m}-{c}", stall, start, 400, litres, rfid=f"982000000001{c:03d}")
                row = new_session_row(snap, start)
                row.animal_id, row.id_source, row.destination = ids[str(200 + c)], "rfid", "tank"
                rows.append(row)
        tx.add_all(rows)
    return ids
