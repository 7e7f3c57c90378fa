"""The health completion hook: what a finished milking means for the milk and the cow.

Registered on the recorder (`recorder.add_completion_hook(HealthHook.from_database(db))`), it
runs inside the transaction that stores the completed session, so the session, its grade and
flags, and any alert or health event it raises are stored together or not at all (the sync
derives their Odoo outbox rows from the tables). For each completed session it:

0. identifies the cow from her tag in any written form if the recorder could not
   (`identity.resolve_animal`), before the session's outbox row is built;
1. grades the milk and sets `abnormal` with its reasons added to the session's flags
   (`grades.grade`, `grades.abnormal_reasons` against the cow's own 30-day means);
2. records a `blood_in_milk` health event when the meter saw blood;
3. for a tag-identified cow, checks for a cow swap (`identity.check_cow_swap`): an
   `identity`/`cow_swap` alert and a `cow_swap_suspected` flag;
4. feeds the milking to the mastitis detector; a milking that alerts is abnormal and flagged
   `mastitis_suspected`; an alert opens a `mastitis` alert unless the
   cow already has one open or acknowledged (one open alert per cow and kind), an escalation
   raises that alert's severity; each one also records a `mastitis_indicator` health event.

The detector keeps its state in memory; `from_database` rebuilds it from the last two weeks of
stored milkings. If the transaction fails and the recorder retries, the same alerts are used
again (remembered by session key), so a retry can neither lose nor double them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from milkconsole.health.grades import (
    DEFAULT_RULES,
    GradeRules,
    abnormal_reasons,
    grade,
    numbers_from_table,
)
from milkconsole.health.mastitis import Alert, DetectorParams, MastitisDetector, MilkingRecord
from milkconsole.herd.identity import SwapRules, check_cow_swap, resolve_animal
from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.db import Database
from milkconsole.store.outbound import queue_alert, queue_health_event
from milkconsole.store.schema import Alert as AlertRow
from milkconsole.store.schema import Animal, HealthEvent, MilkSession

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

log = logging.getLogger(__name__)

OPEN_STATES = ("open", "acknowledged")
HISTORY_DAYS = 14.0
_SEVERITY_RANK = {"warning": 1, "critical": 2}
_REMEMBER = 2000


def milking_record(row: MilkSession) -> MilkingRecord | None:
    """A stored session as the detector's `MilkingRecord` (cow id = animal id), or None when it
    cannot be one (no animal, no end)."""
    if row.animal_id is None:
        return None
    end = row.ended_at or row.started_at + timedelta(seconds=row.duration_s)
    return MilkingRecord(
        cow_id=str(row.animal_id),
        start=row.started_at,
        end=end,
        yield_l=row.yield_l,
        conductivity_ms_cm=row.conductivity_mean_ms_cm,
        quarters=(row.ec_lf_ms_cm, row.ec_rf_ms_cm, row.ec_lr_ms_cm, row.ec_rr_ms_cm),
        temperature_c=row.temperature_c,
        blood=row.blood,
    )


class HealthHook:
    """The recorder's completion hook for milk health (see the module docstring)."""

    def __init__(
        self,
        *,
        rules: GradeRules = DEFAULT_RULES,
        params: DetectorParams | None = None,
        swap_rules: SwapRules | None = None,
    ) -> None:
        self.rules = rules
        self.swap_rules = swap_rules or SwapRules()
        self.detector = MastitisDetector(params)
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, list[Alert]] = OrderedDict()

    @classmethod
    def from_config(cls, config: ParlourConfig | None = None) -> HealthHook:
        """A hook with the grade rules and detector settings of `config` (`[health.grades]`,
        `[health.mastitis]`), its detector not primed yet (`prime`)."""
        rules, params = DEFAULT_RULES, DetectorParams()
        if config is not None:
            rules = GradeRules.from_parlour(config)
            health = config.extra.get("health") or {}
            params = numbers_from_table(
                params, health.get("mastitis"), config.source, "health.mastitis"
            )
        return cls(rules=rules, params=params)

    @classmethod
    def from_database(
        cls, db: Database, config: ParlourConfig | None = None, *, now: datetime | None = None
    ) -> HealthHook:
        """`from_config`, its detector rebuilt from the stored milkings of the last two weeks
        (before `now`, default all)."""
        hook = cls.from_config(config)
        with db.read() as tx:
            hook.prime(tx, now=now)
        return hook

    def prime(self, tx: Session, *, now: datetime | None = None) -> int:
        """Replay the stored milkings of the last `HISTORY_DAYS` into the detector; how many."""
        newest = now or tx.scalar(select(func.max(MilkSession.started_at)))
        if newest is None:
            return 0
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
                MilkSession.started_at >= newest - timedelta(days=HISTORY_DAYS),
                MilkSession.started_at <= newest,
            )
            .order_by(MilkSession.started_at, MilkSession.animal_id)
        )
        records = [
            MilkingRecord(
                cow_id=str(animal_id),
                start=started,
                end=ended or started + timedelta(seconds=duration),
                yield_l=yield_l,
                conductivity_ms_cm=ec,
                quarters=(lf, rf, lr, rr),
                temperature_c=temperature,
                blood=blood,
            )
            for (
                animal_id,
                started,
                ended,
                duration,
                yield_l,
                ec,
                lf,
                rf,
                lr,
                rr,
                temperature,
                blood,
            ) in tx.execute(query)
        ]
        with self._lock:
            self.detector = MastitisDetector.from_history(records, self.detector.params)
            self._seen.clear()
        return len(records)

    def __call__(self, tx: Session, snapshot: SessionSnapshot) -> None:
        row = tx.get(MilkSession, snapshot.key)
        if row is None:
            return
        if row.animal_id is None and row.id_source is None and row.rfid:
            # The tag in any written form (the store's lookup compares the text as it is).
            animal_id = resolve_animal(tx, row.rfid)
            if animal_id is not None:
                row.animal_id, row.id_source = animal_id, "rfid"
        animal = tx.get(Animal, row.animal_id) if row.animal_id is not None else None
        self._grade(tx, row, animal)
        if row.blood:
            self._event(tx, row, "blood_in_milk", "blood detected by the meter")
        if animal is not None and row.id_source == "rfid" and row.state == "completed":
            self._swap(tx, row, animal)
        if animal is not None and row.state == "completed":
            for alert in self._observe(row):
                row.abnormal = True
                self._flag(row, "mastitis_suspected")
                self._raise(tx, row, alert)
        tx.flush()

    # -- grade and flags ----------------------------------------------------------------------

    def _grade(self, tx: Session, row: MilkSession, animal: Animal | None) -> None:
        mean_yield = mean_ec = None
        if animal is not None:
            since = row.started_at - timedelta(days=30)
            mean_yield, mean_ec, n_ec = tx.execute(
                select(
                    func.avg(MilkSession.yield_l),
                    func.avg(MilkSession.conductivity_mean_ms_cm),
                    func.count(MilkSession.conductivity_mean_ms_cm),
                ).where(
                    MilkSession.animal_id == animal.id,
                    MilkSession.state == "completed",
                    MilkSession.started_at >= since,
                    MilkSession.started_at < row.started_at,
                    MilkSession.key != row.key,
                )
            ).one()
            # Her own baseline: Odoo's when the farm keeps one, else her recent mean once there
            # is enough of it; otherwise the rules' default applies.
            if animal.conductivity_baseline_ms_cm:
                mean_ec = animal.conductivity_baseline_ms_cm
            elif n_ec < 6:
                mean_ec = None
        row.quality_grade = grade(
            row.fat_pct, row.protein_pct, row.scc_cells_ml, row.blood, self.rules
        )
        reasons = abnormal_reasons(
            row.yield_l if row.state == "completed" else None,
            mean_yield,
            row.conductivity_mean_ms_cm,
            mean_ec,
            row.blood,
            self.rules,
        )
        row.abnormal = bool(reasons)
        self._flag(row, *reasons)

    @staticmethod
    def _flag(row: MilkSession, *flags: str) -> None:
        present = [f for f in (row.flags or "").split(",") if f]
        row.flags = ",".join(present + [f for f in flags if f not in present])

    # -- cow swaps ------------------------------------------------------------------------------

    def _swap(self, tx: Session, row: MilkSession, animal: Animal) -> None:
        suspect = check_cow_swap(tx, row, self.swap_rules)
        if suspect is None:
            return
        likely = tx.get(Animal, suspect.likely_animal_id)
        name = likely.number if likely is not None else str(suspect.likely_animal_id)
        self._flag(row, "cow_swap_suspected")
        key = f"{row.key}:cow_swap"
        if tx.scalar(select(AlertRow.id).where(AlertRow.key == key)) is None:
            alert = AlertRow(
                key=key,
                kind="identity",
                condition="cow_swap",
                severity="warning",
                state="open",
                animal_id=animal.id,
                rfid=row.rfid,
                session_key=row.key,
                meter_id=row.meter_id,
                message=f"cow {animal.number}: {suspect.reason(name)}",
                raised_at=row.ended_at or row.started_at,
            )
            tx.add(alert)
            queue_alert(tx, alert)

    # -- mastitis -------------------------------------------------------------------------------

    def _observe(self, row: MilkSession) -> list[Alert]:
        record = milking_record(row)
        if record is None:
            return []
        with self._lock:
            if row.key in self._seen:
                return self._seen[row.key]  # a retried transaction: the same alerts again
            if self.detector.knows(record):
                log.debug("session %s is older than the cow's last milking; not assessed", row.key)
                return []
            alerts = self.detector.observe(record)
            self._seen[row.key] = alerts
            while len(self._seen) > _REMEMBER:
                self._seen.popitem(last=False)
            return alerts

    def _raise(self, tx: Session, row: MilkSession, alert: Alert) -> None:
        assert row.animal_id is not None
        kind = alert.condition
        open_alert = tx.scalars(
            select(AlertRow)
            .where(
                AlertRow.animal_id == row.animal_id,
                AlertRow.kind == kind,
                AlertRow.state.in_(OPEN_STATES),
            )
            .order_by(AlertRow.raised_at.desc())
        ).first()
        raised_at = row.ended_at or row.started_at
        if open_alert is None:
            key = f"{row.key}:{kind}"
            if tx.scalar(select(AlertRow.id).where(AlertRow.key == key)) is None:
                raised = AlertRow(
                    key=key,
                    kind=kind,
                    condition=_condition(alert.reason),
                    severity=alert.severity,
                    state="open",
                    animal_id=row.animal_id,
                    rfid=row.rfid,
                    session_key=row.key,
                    meter_id=row.meter_id,
                    message=alert.reason,
                    raised_at=raised_at,
                )
                tx.add(raised)
                queue_alert(tx, raised)
        elif _SEVERITY_RANK[alert.severity] > _SEVERITY_RANK.get(open_alert.severity, 0):
            # An escalation: the alert already raised (and perhaps sent) learns it.
            open_alert.severity = alert.severity
            open_alert.message = alert.reason
            queue_alert(tx, open_alert)
        self._event(tx, row, f"{kind}_indicator", alert.reason)

    @staticmethod
    def _event(tx: Session, row: MilkSession, kind: str, detail: str) -> None:
        key = f"{row.key}:{kind}"
        if tx.scalar(select(HealthEvent.id).where(HealthEvent.key == key)) is not None:
            return
        event = HealthEvent(
            key=key,
            animal_id=row.animal_id,
            session_key=row.key,
            kind=kind,
            detail=detail,
            recorded_at=row.ended_at or row.started_at,
        )
        tx.add(event)
        queue_health_event(tx, event)


def _condition(reason: str) -> str:
    """The alert's condition column: the quarter the detector named, else cow level."""
    marker = "quarter "
    at = reason.find(marker)
    if at >= 0:
        return "quarter " + reason[at + len(marker) : at + len(marker) + 2]
    return "cow"
