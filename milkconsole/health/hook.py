"""The health completion hook: what a finished milking means for the milk and the cow.

Registered on the recorder (`recorder.add_completion_hook(HealthHook.from_database(db))`), it
runs inside the transaction that stores the completed session, so the session, its grade and
flags, and any alert or health event it raises are stored together or not at all (the sync
derives their Odoo outbox rows from the tables). For each completed session it:

0. identifies the cow from her tag in any written form if the recorder could not
   (`store.tags.resolve_animal`), before the session's outbox row is built;
1. grades the milk and sets `abnormal` with its reasons added to the session's flags
   (`grades.grade`, `grades.abnormal_reasons` against the cow's own 30-day means);
2. records a `blood_in_milk` health event when the meter saw blood;
3. for a tag-identified cow, checks for a cow swap (`herd.identity.suspect_in_group`): an
   `identity`/`cow_swap` alert and a `cow_swap_suspected` flag;
4. feeds the milking to the mastitis detector; a milking that alerts is abnormal and flagged
   `mastitis_suspected`; an alert opens a `mastitis` alert unless the
   cow already has one open or acknowledged (one open alert per cow and kind), an escalation
   raises that alert's severity; each one also records a `mastitis_indicator` health event.

The rules are here; what they read and write goes through the store's adapter over the
completion's transaction (`milkconsole.store.health.HealthRecords`), which deals in frozen values.
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

from sqlalchemy.orm import Session

from milkconsole.config_tables import numbers_from_table
from milkconsole.flags import COW_SWAP_SUSPECTED, MASTITIS_SUSPECTED
from milkconsole.health.grades import (
    DEFAULT_RULES,
    GradeRules,
    abnormal_reasons,
    grade,
)
from milkconsole.health.mastitis import (
    DetectorParams,
    MastitisDetector,
    MilkingSignals,
    RaisedAlert,
)
from milkconsole.herd.identity import SwapRules, suspect_in_group
from milkconsole.meters.events import SessionSnapshot
from milkconsole.store.db import Database
from milkconsole.store.health import (
    DetectorColumns,
    HealthCow,
    HealthRecords,
    detector_history,
    newest_milking_start,
)
from milkconsole.store.sessions import SessionRecord

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

log = logging.getLogger(__name__)

HISTORY_DAYS = 14.0
BASELINE_DAYS = 30.0  # grades compare a milking with the cow's own milkings of this long
MIN_EC_MILKINGS = 6  # her recent conductivity is her baseline once she has this many
_SEVERITY_RANK = {"warning": 1, "critical": 2}
_REMEMBER = 2000


def milking_signals(m: SessionRecord | DetectorColumns) -> MilkingSignals | None:
    """A recorded session (whole, or the detector's columns of it) as the detector's input
    (cow id = animal id), or None when it cannot be one (no animal)."""
    if m.animal_id is None:
        return None
    return MilkingSignals(
        cow_id=str(m.animal_id),
        start=m.started_at,
        end=m.ended_at or m.started_at + timedelta(seconds=m.duration_s),
        yield_l=m.yield_l,
        conductivity_ms_cm=m.conductivity_mean_ms_cm,
        quarters=m.quarters_ms_cm,
        temperature_c=m.temperature_c,
        blood=m.blood,
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
        self._seen: OrderedDict[str, list[RaisedAlert]] = OrderedDict()

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
        newest = now or newest_milking_start(tx)
        if newest is None:
            return 0
        since = newest - timedelta(days=HISTORY_DAYS)
        milkings = [
            signals
            for m in detector_history(tx, since, newest)
            if (signals := milking_signals(m)) is not None
        ]
        with self._lock:
            self.detector = MastitisDetector.from_history(milkings, self.detector.params)
            self._seen.clear()
        return len(milkings)

    def __call__(self, tx: Session, snapshot: SessionSnapshot) -> None:
        store = HealthRecords(tx)
        milking = store.milking(snapshot.key)
        if milking is None:
            return
        if milking.animal_id is None and milking.id_source is None and milking.rfid:
            # The tag in any written form (the recorder's lookup compares the text as it is).
            milking = store.identify_by_tag(milking.key)
        cow = store.cow(milking.animal_id)
        self._grade(store, milking, cow)
        if milking.blood:
            store.record_event(milking, "blood_in_milk", "blood detected by the meter")
        if cow is not None and milking.id_source == "rfid" and milking.state == "completed":
            self._swap(store, milking, cow)
        if cow is not None and milking.state == "completed":
            for alert in self._observe(milking):
                store.add_flags(milking.key, MASTITIS_SUSPECTED, abnormal=True)
                self._raise(store, milking, alert)
        store.flush()

    # -- grade and flags ----------------------------------------------------------------------

    def _grade(self, store: HealthRecords, m: SessionRecord, cow: HealthCow | None) -> None:
        mean_yield = mean_ec = None
        if cow is not None:
            means = store.recent_means(m, BASELINE_DAYS)
            mean_yield, mean_ec = means.mean_yield_l, means.mean_conductivity_ms_cm
            # Her own baseline: Odoo's when the farm keeps one, else her recent mean once there
            # is enough of it; otherwise the rules' default applies.
            if cow.conductivity_baseline_ms_cm:
                mean_ec = cow.conductivity_baseline_ms_cm
            elif means.conductivity_milkings < MIN_EC_MILKINGS:
                mean_ec = None
        reasons = abnormal_reasons(
            m.yield_l if m.state == "completed" else None,
            mean_yield,
            m.conductivity_mean_ms_cm,
            mean_ec,
            m.blood,
            self.rules,
        )
        store.set_grade(
            m.key, grade(m.fat_pct, m.protein_pct, m.scc_cells_ml, m.blood, self.rules), reasons
        )

    # -- cow swaps ------------------------------------------------------------------------------

    def _swap(self, store: HealthRecords, m: SessionRecord, cow: HealthCow) -> None:
        rules = self.swap_rules
        if m.yield_l <= 0:
            return
        group = store.group_milkings(
            m,
            cow,
            since=m.started_at - timedelta(days=rules.history_days),
            until=m.started_at + timedelta(hours=rules.already_milked_h),
        )
        suspect = suspect_in_group(cow.id, m.yield_l, m.started_at, group, rules)
        if suspect is None:
            return
        likely = store.cow(suspect.likely_animal_id)
        name = likely.number if likely is not None else str(suspect.likely_animal_id)
        store.add_flags(m.key, COW_SWAP_SUSPECTED)
        store.raise_alert(
            m,
            key=f"{m.key}:cow_swap",
            kind="identity",
            condition="cow_swap",
            severity="warning",
            animal_id=cow.id,
            message=f"cow {cow.number}: {suspect.reason(name)}",
        )

    # -- mastitis -------------------------------------------------------------------------------

    def _observe(self, m: SessionRecord) -> list[RaisedAlert]:
        signals = milking_signals(m)
        if signals is None:
            return []
        with self._lock:
            if m.key in self._seen:
                return self._seen[m.key]  # a retried transaction: the same alerts again
            if self.detector.knows(signals):
                log.debug("session %s is older than the cow's last milking; not assessed", m.key)
                return []
            alerts = self.detector.observe(signals)
            self._seen[m.key] = alerts
            while len(self._seen) > _REMEMBER:
                self._seen.popitem(last=False)
            return alerts

    def _raise(self, store: HealthRecords, m: SessionRecord, alert: RaisedAlert) -> None:
        assert m.animal_id is not None
        kind = alert.condition
        open_alert = store.open_alert(m.animal_id, kind)
        if open_alert is None:
            store.raise_alert(
                m,
                key=f"{m.key}:{kind}",
                kind=kind,
                condition=_condition(alert.reason),
                severity=alert.severity,
                message=alert.reason,
            )
        elif _SEVERITY_RANK[alert.severity] > _SEVERITY_RANK.get(open_alert.severity, 0):
            # An escalation: the alert already raised (and perhaps sent) learns it.
            store.escalate(open_alert.id, alert.severity, alert.reason)
        store.record_event(m, f"{kind}_indicator", alert.reason)


def _condition(reason: str) -> str:
    """The alert's condition column: the quarter the detector named, else cow level."""
    marker = "quarter "
    at = reason.find(marker)
    if at >= 0:
        return "quarter " + reason[at + len(marker) : at + len(marker) + 2]
    return "cow"
