"""What milk health reads and writes in the store, inside a completed session's transaction.

The rules (grades, abnormal reasons, the cow-swap check, the mastitis detector) are in
`milkconsole.health`; its completion hook (`health.hook.HealthHook`) runs inside the recorder's
transaction and applies what they decide through `HealthRecords`, an adapter over that one
transaction. So the session, its grade and flags, and any alert or health event it raises are
stored together or not at all, and their Odoo/MQTT rows are queued with them
(`store.outbound`). Everything crossing out of here is a frozen value, never an ORM row: the
session as recorded is the store's `SessionRecord`, an alert as stored its `AlertRecord`.

`detector_history` reads what the mastitis detector is rebuilt from at start: the few columns of
each completed milking of the last two weeks it reads (`DetectorColumns`), not whole records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.store.alerts import AlertRecord, alert_record
from milkconsole.store.outbound import queue_alert, queue_health_event
from milkconsole.store.schema import AlertRow, Animal, HealthEvent, SessionRow
from milkconsole.store.sessions import SessionRecord, record_from_row
from milkconsole.store.tags import resolve_animal

OPEN_STATES = ("open", "acknowledged")


@dataclass(frozen=True, slots=True)
class HealthCow:
    """What the health rules need of a cow: her number, group and own conductivity baseline."""

    id: int
    number: str
    group_name: str | None
    conductivity_baseline_ms_cm: float | None


@dataclass(frozen=True, slots=True)
class RecentMeans:
    """A cow's completed milkings before one: mean yield, mean conductivity and how many of
    them had a conductivity."""

    mean_yield_l: float | None
    mean_conductivity_ms_cm: float | None
    conductivity_milkings: int


class DetectorColumns(NamedTuple):
    """The columns of one recorded session (a completed milking of an identified cow) that the
    mastitis detector is primed from: a projection of a `SessionRecord`, not a session type. A
    tuple, because two weeks of a big herd is tens of thousands of them; the hook turns each
    into the detector's own input (`health.mastitis.MilkingSignals`), which the store cannot
    name (the store sits below `health`)."""

    animal_id: int
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    yield_l: float
    conductivity_mean_ms_cm: float | None
    quarters_ms_cm: tuple[float | None, float | None, float | None, float | None]
    temperature_c: float | None
    blood: bool | None


def _record(tx: Session, row: SessionRow) -> SessionRecord:
    animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
    return record_from_row(row, animal)


def _add_flags(row: SessionRow, flags: Sequence[str]) -> None:
    present = [f for f in (row.flags or "").split(",") if f]
    row.flags = ",".join(present + [f for f in flags if f not in present])


class HealthRecords:
    """The store as the health rules see it, inside one write transaction (`tx`)."""

    def __init__(self, tx: Session) -> None:
        self.tx = tx

    def _row(self, key: str) -> SessionRow:
        row = self.tx.get(SessionRow, key)
        if row is None:
            raise LookupError(f"no milk session with key {key!r}")
        return row

    # -- reading --------------------------------------------------------------------------------

    def milking(self, key: str) -> SessionRecord | None:
        """The session as recorded, or None when it is not stored."""
        row = self.tx.get(SessionRow, key)
        return None if row is None else _record(self.tx, row)

    def cow(self, animal_id: int | None) -> HealthCow | None:
        animal = self.tx.get(Animal, animal_id) if animal_id is not None else None
        if animal is None:
            return None
        return HealthCow(
            animal.id, animal.number, animal.group_name, animal.conductivity_baseline_ms_cm
        )

    def recent_means(self, milking: SessionRecord, days: float) -> RecentMeans:
        """Her completed milkings of the `days` before this one started."""
        since = milking.started_at - timedelta(days=days)
        mean_yield, mean_ec, n_ec = self.tx.execute(
            select(
                func.avg(SessionRow.yield_l),
                func.avg(SessionRow.conductivity_mean_ms_cm),
                func.count(SessionRow.conductivity_mean_ms_cm),
            ).where(
                SessionRow.animal_id == milking.animal_id,
                SessionRow.state == "completed",
                SessionRow.started_at >= since,
                SessionRow.started_at < milking.started_at,
                SessionRow.key != milking.key,
            )
        ).one()
        return RecentMeans(mean_yield, mean_ec, n_ec)

    def group_milkings(
        self, milking: SessionRecord, cow: HealthCow, since: datetime, until: datetime
    ) -> list[tuple[int | None, datetime, float]]:
        """The completed milkings (animal, start, yield) of the active cows of `cow`'s group,
        hers included, that started in [since, until), `milking` left out."""
        group = select(Animal.id).where(Animal.active.is_(True))
        group = group.where(
            Animal.group_name == cow.group_name
            if cow.group_name is not None
            else Animal.group_name.is_(None)
        )
        return [
            (animal_id, started, yield_l)
            for animal_id, started, yield_l in self.tx.execute(
                select(SessionRow.animal_id, SessionRow.started_at, SessionRow.yield_l).where(
                    SessionRow.animal_id.in_(group),
                    # `state || ''`: not by the state index, which on a year's database is most
                    # of the year's sessions; each cow's (animal_id, started_at) index finds
                    # her two weeks.
                    SessionRow.state.op("||")("") == "completed",
                    SessionRow.started_at >= since,
                    SessionRow.started_at < until,
                    SessionRow.key != milking.key,
                )
            )
        ]

    def open_alert(self, animal_id: int, kind: str) -> AlertRecord | None:
        """Her newest alert of `kind` still open or acknowledged."""
        row = self.tx.scalars(
            select(AlertRow)
            .where(
                AlertRow.animal_id == animal_id,
                AlertRow.kind == kind,
                AlertRow.state.in_(OPEN_STATES),
            )
            .order_by(AlertRow.raised_at.desc())
        ).first()
        return None if row is None else alert_record(row, self.tx.get(Animal, animal_id))

    def alert_state(self, alert_id: int) -> str | None:
        """An alert's state ('open', 'acknowledged', 'resolved'), None when there is none."""
        row = self.tx.get(AlertRow, alert_id)
        return None if row is None else row.state

    # -- writing --------------------------------------------------------------------------------

    def identify_by_tag(self, key: str) -> SessionRecord:
        """Give the session the animal its tag names in any written form, if any (`id_source`
        'rfid'); the session as it is now."""
        row = self._row(key)
        animal_id = resolve_animal(self.tx, row.rfid)
        if animal_id is not None:
            row.animal_id, row.id_source = animal_id, "rfid"
        return _record(self.tx, row)

    def set_grade(self, key: str, grade: str | None, reasons: Sequence[str]) -> None:
        """The milk's grade; abnormal exactly when there are `reasons`, which join its flags."""
        row = self._row(key)
        row.quality_grade = grade
        row.abnormal = bool(reasons)
        _add_flags(row, reasons)

    def add_flags(self, key: str, *flags: str, abnormal: bool = False) -> None:
        """Flags the session does not carry yet; `abnormal` marks the milking abnormal too."""
        row = self._row(key)
        if abnormal:
            row.abnormal = True
        _add_flags(row, flags)

    def raise_alert(
        self,
        milking: SessionRecord,
        *,
        key: str,
        kind: str,
        condition: str | None,
        severity: str,
        message: str,
        animal_id: int | None = None,
        raised_at: datetime | None = None,
    ) -> int | None:
        """Open an alert about `milking` (its cow unless `animal_id`, its tag, meter and end),
        queued for Odoo and MQTT; its id, or None when an alert with `key` exists already."""
        if self.tx.scalar(select(AlertRow.id).where(AlertRow.key == key)) is not None:
            return None
        alert = AlertRow(
            key=key,
            kind=kind,
            condition=condition,
            severity=severity,
            state="open",
            animal_id=milking.animal_id if animal_id is None else animal_id,
            rfid=milking.rfid,
            session_key=milking.key,
            meter_id=milking.meter_id,
            message=message,
            raised_at=raised_at or milking.done_at,
        )
        self.tx.add(alert)
        queue_alert(self.tx, alert)
        return alert.id

    def escalate(self, alert_id: int, severity: str, message: str) -> None:
        """An alert already raised (and perhaps sent) becomes more severe; Odoo learns it."""
        alert = self.tx.get(AlertRow, alert_id)
        if alert is None:
            raise LookupError(f"no alert with id {alert_id}")
        alert.severity = severity
        alert.message = message
        queue_alert(self.tx, alert)

    def record_event(
        self, milking: SessionRecord, kind: str, detail: str, *, at: datetime | None = None
    ) -> bool:
        """A health event of `milking`'s cow (one per session and kind), queued for Odoo;
        False when it was recorded already."""
        key = f"{milking.key}:{kind}"
        if self.tx.scalar(select(HealthEvent.id).where(HealthEvent.key == key)) is not None:
            return False
        event = HealthEvent(
            key=key,
            animal_id=milking.animal_id,
            session_key=milking.key,
            kind=kind,
            detail=detail,
            recorded_at=at or milking.done_at,
        )
        self.tx.add(event)
        queue_health_event(self.tx, event)
        return True

    def flush(self) -> None:
        self.tx.flush()


def newest_milking_start(tx: Session) -> datetime | None:
    """When the newest stored session started (None: nothing stored)."""
    return tx.scalar(select(func.max(SessionRow.started_at)))


def detector_history(tx: Session, since: datetime, until: datetime) -> list[DetectorColumns]:
    """The completed milkings of identified cows that started in [since, until], in start order
    (then by animal)."""
    # The columns only, not ORM rows: two weeks of a 1,000-cow herd is 40,000 milkings.
    query = (
        select(
            SessionRow.animal_id,
            SessionRow.started_at,
            SessionRow.ended_at,
            SessionRow.duration_s,
            SessionRow.yield_l,
            SessionRow.conductivity_mean_ms_cm,
            SessionRow.ec_lf_ms_cm,
            SessionRow.ec_rf_ms_cm,
            SessionRow.ec_lr_ms_cm,
            SessionRow.ec_rr_ms_cm,
            SessionRow.temperature_c,
            SessionRow.blood,
        )
        .where(
            SessionRow.state == "completed",
            SessionRow.animal_id.is_not(None),
            SessionRow.started_at >= since,
            SessionRow.started_at <= until,
        )
        .order_by(SessionRow.started_at, SessionRow.animal_id)
    )
    return [
        DetectorColumns(aid, started, ended, duration, y, ec, (lf, rf, lr, rr), temperature, blood)
        for (
            aid,
            started,
            ended,
            duration,
            y,
            ec,
            lf,
            rf,
            lr,
            rr,
            temperature,
            blood,
        ) in tx.execute(query)
        if aid is not None  # (the query leaves none out; this says so to the type checker)
    ]
