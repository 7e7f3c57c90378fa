"""Where a session's flow curve lives: rows while it is open, one packed value once it is not.

While a milking is in progress the recorder appends its samples as `flow_samples` rows at each
checkpoint (a crash loses at most one checkpoint of curve). The transaction that completes the
session packs those rows and the completion's last samples into its `flow_curves` value
(`milkconsole.store.curves`) and deletes the rows, so a year of finished milkings costs well
under 1 KB of curve each. Readers get `FlowSample`s either way (`read_curve`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import cast

from sqlalchemy import Table, delete, func, insert, select
from sqlalchemy.orm import Session

from milkconsole.meters.events import FlowSample
from milkconsole.store.curves import CurveError, pack_counted, unpack_curve
from milkconsole.store.schema import FlowCurveRow, FlowSampleRow

log = logging.getLogger(__name__)

_CHUNK = 500  # keys per IN (...) list


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def last_sample_times(tx: Session, keys: Iterable[str]) -> dict[str, float]:
    """The last stored sample time of each open session (sessions with no rows: -inf)."""
    wanted = list(dict.fromkeys(keys))
    out = dict.fromkeys(wanted, float("-inf"))
    for chunk in _chunks(wanted):
        query = (
            select(FlowSampleRow.session_key, func.max(FlowSampleRow.elapsed_s))
            .where(FlowSampleRow.session_key.in_(chunk))
            .group_by(FlowSampleRow.session_key)
        )
        for key, elapsed in tx.execute(query):
            out[key] = elapsed
    return out


def newer(samples: Sequence[FlowSample], after: float) -> list[FlowSample]:
    """The samples later than `after` and than each other (a replayed event adds nothing)."""
    out: list[FlowSample] = []
    last = after
    for s in samples:
        if s.elapsed_s > last:
            out.append(s)
            last = s.elapsed_s
    return out


def add_open_samples(
    tx: Session, key: str, samples: Sequence[FlowSample], latest: dict[str, float]
) -> None:
    """Append an open session's new samples as rows (`latest`: its last stored sample time,
    kept up to date here)."""
    if not samples:
        return
    if key not in latest:
        latest.update(last_sample_times(tx, [key]))
    fresh = newer(samples, latest[key])
    if not fresh:
        return
    latest[key] = fresh[-1].elapsed_s
    tx.execute(
        insert(FlowSampleRow),
        [
            {
                "session_key": key,
                "elapsed_s": s.elapsed_s,
                "yield_l": s.yield_l,
                "flow_l_min": s.flow_l_min,
                "conductivity_ms_cm": s.conductivity_ms_cm,
            }
            for s in fresh
        ],
    )


def _open_rows(tx: Session, keys: Sequence[str]) -> dict[str, list[FlowSample]]:
    out: dict[str, list[FlowSample]] = {}
    for chunk in _chunks(keys):
        rows = tx.execute(
            select(
                FlowSampleRow.session_key,
                FlowSampleRow.elapsed_s,
                FlowSampleRow.yield_l,
                FlowSampleRow.flow_l_min,
                FlowSampleRow.conductivity_ms_cm,
            )
            .where(FlowSampleRow.session_key.in_(chunk))
            .order_by(FlowSampleRow.session_key, FlowSampleRow.elapsed_s, FlowSampleRow.id)
        )
        for key, e, y, f, c in rows:
            out.setdefault(key, []).append(FlowSample(e, y, f, c))
    return out


def close_curves(
    tx: Session, finished: Sequence[tuple[str, Sequence[FlowSample]]], latest: dict[str, float]
) -> None:
    """Pack the curves of sessions completing in this transaction: each one's stored rows and
    its completion's samples (`finished`: key and those samples; `latest`: last stored sample
    time per key, -inf for none) become one `flow_curves` value, and the rows go."""
    if not finished:
        return
    keys = [key for key, _ in finished]
    with_rows = [k for k in keys if latest.get(k, float("-inf")) > float("-inf")]
    stored = _open_rows(tx, with_rows) if with_rows else {}
    existing: dict[str, bytes] = {}
    for chunk in _chunks(keys):
        for key, data in tx.execute(
            select(FlowCurveRow.session_key, FlowCurveRow.data).where(
                FlowCurveRow.session_key.in_(chunk)
            )
        ):
            existing[key] = data
    values = []
    for key, samples in finished:
        before = stored.get(key, [])
        if key in existing:
            # Not reached by the recorder (a session completes once); kept so a curve is never
            # lost if it were: the old value and the new samples are merged.
            before = _safe_unpack(key, existing[key]) + before
        # pack_curve leaves out what is not later than what came before (a replayed event).
        curve = [*before, *samples] if before else samples
        data, n = pack_counted(curve)
        values.append({"session_key": key, "samples": n, "data": data})
    if existing:
        for chunk in _chunks(list(existing)):
            tx.execute(delete(FlowCurveRow).where(FlowCurveRow.session_key.in_(chunk)))
    tx.execute(insert(cast(Table, FlowCurveRow.__table__)), values)
    for chunk in _chunks(with_rows):
        tx.execute(delete(FlowSampleRow).where(FlowSampleRow.session_key.in_(chunk)))


def _safe_unpack(key: str, data: bytes) -> list[FlowSample]:
    try:
        return unpack_curve(data)
    except CurveError as exc:
        # A chart missing beats a console that cannot open a cow's history.
        log.error("flow curve of session %s cannot be read: %s", key, exc)
        return []


def read_curve(tx: Session, key: str) -> list[FlowSample]:
    """A session's flow curve in time order: its packed value and any open rows."""
    data = tx.scalar(select(FlowCurveRow.data).where(FlowCurveRow.session_key == key))
    packed = _safe_unpack(key, data) if data is not None else []
    rows = _open_rows(tx, [key]).get(key, [])
    if not packed:
        return rows
    return packed + newer(rows, packed[-1].elapsed_s)


__all__ = [
    "add_open_samples",
    "close_curves",
    "last_sample_times",
    "newer",
    "read_curve",
]
