"""A runtime starts without waiting on its database: the mastitis detector is rebuilt from the
stored milkings on a thread of its own, and nothing the parlour hands over meanwhile is written
before it is rebuilt, so the first milkings are judged against the cow's history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.config import parse_config
from milkconsole.health.hook import HealthHook
from milkconsole.meters.events import SessionCompleted
from milkconsole.store import open_database
from milkconsole.store.db import Database
from milkconsole.store.schema import AlertRow, HealthEvent
from tests.core.test_health_hook import add_animals, key_of, record_all, rows, sick_cow, snapshot
from tests.core.test_mastitis import T0, herd


def config():  # type: ignore[no-untyped-def]
    data = {
        "parlour": {"name": "P", "farm_code": "F1"},
        "bus": [{"id": "b1", "transport": "tcp", "host": "127.0.0.1", "port": 1}],
        "meter": [{"id": "m1", "bus": "b1", "unit": 1, "profile": "gea", "stall": 1}],
    }
    return parse_config(data, "test-parlour.toml")


def judged_after(db: Database, keys: set[str]) -> set[tuple[str | None, str]]:
    """What the health checks recorded about these sessions (an event per alerting milking),
    and the alerts' severities now."""
    events = {(e.session_key, e.kind) for e in rows(db, HealthEvent) if e.session_key in keys}
    return events | {(a.kind, a.severity) for a in rows(db, AlertRow)}


def test_milkings_handed_over_at_start_are_judged_with_the_cows_history(
    db: Database, tmp_path: Path
) -> None:
    records = herd(cows=10, milkings=44, quarter_rise=sick_cow)
    cut = T0 + timedelta(days=14, hours=12)
    later = [r for r in records if r.start >= cut]
    later_keys = {key_of(r) for r in later}
    # What a console that never stopped would have raised after the cut.
    reference = open_database(tmp_path / "reference.sqlite")
    add_animals(reference, sorted({r.cow_id for r in records}))
    record_all(reference, HealthHook(), records)
    expected = judged_after(reference, later_keys)
    reference.close()
    assert any(kind == "mastitis_indicator" for _, kind in expected), "she alerts after the cut"

    ids = add_animals(db, sorted({r.cow_id for r in records}))
    record_all(db, HealthHook(), [r for r in records if r.start < cut])
    runtime = ParlourRuntime(config(), db)
    assert not runtime.primed.is_set()  # nothing was replayed while the runtime was built
    runtime.start_recorder()  # returns at once; the replay runs beside the parlour
    for r in later:
        runtime.recorder.submit(SessionCompleted(snapshot(r, key_of(r))))
    try:
        assert runtime.recorder.flush(120.0)
        assert runtime.primed.is_set()
        assert runtime.health.detector.state_of(str(ids["C03"])) is not None
        # Judged with the herd's two weeks of history, exactly as without the restart.
        assert judged_after(db, later_keys) == expected
    finally:
        runtime.stop(10.0)
