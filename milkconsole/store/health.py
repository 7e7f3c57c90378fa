"""What milk health reads and writes in the store, inside a completed session's transaction.

The rules (grades, abnormal reasons, the cow-swap check, the mastitis detector) are in
`milkconsole.health`; its completion hook (`health.hook.HealthHook`) runs inside the recorder's
transaction and applies what they decide through `HealthRecords`, an adapter over that one
transaction. So the session, its grade and flags, and any alert or health event it raises are
stored together or not at all, and their Odoo/MQTT rows are queued with them
(`store.outbound`). Everything crossing out of here is a frozen value, never an ORM row.

`detector_history` reads what the mastitis detector is rebuilt from at start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.store.outbound import queue_alert, queue_health_event
from milkconsole.store.schema import Alert, Animal, HealthEvent, MilkSession
from milkconsole.store.tags import resolve_animal

OPEN_STATES = ("open", "acknowledged")


@dataclass(frozen=True, slots=True)
class StoredMilking:
    """A stored session, the columns the health rules read."""

    key: str
    meter_id: str
    rfid: str | None
    animal_id: int | None
    id_source: str | None
    state: str
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    yield_l: float
    conductivity_mean_ms_cm: float | None
    quarters_ms_cm: tuple[float | None, float | None, float | None, float | None]
    temperature_c: float | None
    blood: bool | None
    fat_pct: float | None
    protein_pct: float | None
    scc_cells_ml: int | None

    @property
    def done_at(self) -> datetime:
        """When what it raises is dated: its end, else its start."""
        return self.ended_at or self.started_at


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


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert still open or acknowledged."""

    id: int
    severity: str


class DetectorMilking(NamedTuple):
    """One completed milking of an identified cow, as the mastitis detector replays it (a tuple:
    two weeks of a big herd is tens of thousands of them)."""

    animal_id: int
    started_at: datetime
    ended_at: datetime | None
    duration_s: float
    yield_l: float
    conductivity_mean_ms_cm: float | None
    quarters_ms_cm: tuple[float | None, float | None, float | None, float | None]
    temperature_c: float | None
    blood: bool | None


def _milking(row: MilkSession) -> StoredMilking:
    return StoredMilking(
        key=row.key,
        meter_id=row.meter_id,
        rfid=row.rfid,
        animal_id=row.animal_id,
        id_source=row.id_source,
        state=row.state,
        started_at=row.started_at,
        ended_at=row.ended_at,
        duration_s=row.duration_s,
        yield_l=row.yield_l,
        conductivity_mean_ms_cm=row.conductivity_mean_ms_cm,
        quarters_ms_cm=(row.ec_lf_ms_cm, row.ec_rf_ms_cm, row.ec_lr_ms_cm, row.ec_rr_ms_cm),
        temperature_c=row.temperature_c,
        blood=row.blood,
        fat_pct=row.fat_pct,
        protein_pct=row.protein_pct,
        scc_cells_ml=row.scc_cells_ml,
    )


def _add_flags(row: MilkSession, flags: Sequence[str]) -> None:
    present = [f for f in (row.flags or "").split(",") if f]
    row.flags = ",".join(present + [f for f in flags if f not in present])


class HealthRecords:
    """The store as the health rules see it, inside one write transaction (`tx`)."""

    def __init__(self, tx: Session) -> None:
        self.tx = tx

    def _row(self, key: str) -> MilkSession:
        row = self.tx.get(MilkSession, key)
        if row is None:
            raise LookupError(f"no milk session with key {key!r}")
        return row

    # -- reading --------------------------------------------------------------------------------

    def milking(self, key: str) -> StoredMilking | None:
        """The stored session, or None when it is not stored."""
        row = self.tx.get(MilkSession, key)
        return None if row is None else _milking(row)

    def cow(self, animal_id: int | None) -> HealthCow | None:
        animal = self.tx.get(Animal, animal_id) if animal_id is not None else None
        if animal is None:
            return None
        return HealthCow(
            animal.id, animal.number, animal.group_name, animal.conductivity_baseline_ms_cm
        )

    def recent_means(self, milking: StoredMilking, days: float) -> RecentMeans:
        """Her completed milkings of the `days` before this one started."""
        since = milking.started_at - timedelta(days=days)
        mean_yield, mean_ec, n_ec = self.tx.execute(
            select(
                func.avg(MilkSession.yield_l),
                func.avg(MilkSession.conductivity_mean_ms_cm),
                func.count(MilkSession.conductivity_mean_ms_cm),
            ).where(
                MilkSession.animal_id == milking.animal_id,
                MilkSession.state == "completed",
                MilkSession.started_at >= since,
                MilkSession.started_at < milking.started_at,
                MilkSession.key != milking.key,
            )
        ).one()
        return RecentMeans(mean_yield, mean_ec, n_ec)

    def group_milkings(
        self, milking: StoredMilking, cow: HealthCow, since: datetime, until: datetime
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
                select(MilkSession.animal_id, MilkSession.started_at, MilkSession.yield_l).where(
                    MilkSession.animal_id.in_(group),
                    # `state || ''`: not by the state index, which on a year's database is most
                    # of the year's sessions; each cow's (animal_id, started_at) index finds
                    # her two weeks.
                    MilkSession.state.op("||")("") == "completed",
                    MilkSession.started_at >= since,
                    MilkSession.started_at < until,
                    MilkSession.key != milking.key,
                )
            )
        ]

    def open_alert(self, animal_id: int, kind: str) -> OpenAlert | None:
        """Her newest alert of `kind` still open or acknowledged."""
        row = self.tx.scalars(
            select(Alert)
            .where(
                Alert.animal_id == animal_id,
                Alert.kind == kind,
                Alert.state.in_(OPEN_STATES),
            )
            .order_by(Alert.raised_at.desc())
        ).first()
        return None if row is None else OpenAlert(row.id, row.severity)

    def alert_state(self, alert_id: int) -> str | None:
        """An alert's state ('open', 'acknowledged', 'resolved'), None when there is none."""
        row = self.tx.get(Alert, alert_id)
        return None if row is None else row.state

    # -- writing --------------------------------------------------------------------------------

    def identify_by_tag(self, key: str) -> StoredMilking:
        """Give the session the animal its tag names in any written form, if any (`id_source`
        'rfid'); the session as it is now."""
        row = self._row(key)
        animal_id = resolve_animal(self.tx, row.rfid)
        if animal_id is not None:
            row.animal_id, row.id_source = animal_id, "rfid"
        return _milking(row)

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
        milking: StoredMilking,
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
        if self.tx.scalar(select(Alert.id).where(Alert.key == key)) is not None:
            return None
        alert = Alert(
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
        alert = self.tx.get(Alert, alert_id)
        if alert is None:
            raise LookupError(f"no alert with id {alert_id}")
        alert.severity = severity
        alert.message = message
        queue_alert(self.tx, alert)

    def record_event(
        self, milking: StoredMilking, kind: str, detail: str, *, at: datetime | None = None
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
    return tx.scalar(select(func.max(MilkSession.started_at)))


def detector_history(tx: Session, since: datetime, until: datetime) -> list[DetectorMilking]:
    """The completed milkings of identified cows that started in [since, until], in start order
    (then by animal)."""
    # The columns only, not ORM rows: two weeks of a 1,000-cow herd is 40,000 milkings.
    query = (
        select(
            MilkSession.animal_id,
            MilkSession.started_at,
            MilkSession.ended_at,
            MilkSession.duration_s,
            MilkSession.yield_l,
            MilkSession.conductivity_mean_ms_cm,
            MilkSession.ec_lf_ms_cm,
            MilkSession.ec_rf_ms_cm,
            MilkSession.ec_lr_ms_cm,
            MilkSession.ec_rr_ms_cm,
            MilkSession.temperature_c,
            MilkSession.blood,
        )
        .where(
            MilkSession.state == "completed",
            MilkSession.animal_id.is_not(None),
            MilkSession.started_at >= since,
            MilkSession.started_at <= until,
        )
        .order_by(MilkSession.started_at, MilkSession.animal_id)
    )
    return [
        DetectorMilking(aid, started, ended, duration, y, ec, (lf, rf, lr, rr), temperature, blood)
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
