"""Communication health of one meter: ok / degraded / offline, counters, and the last hour.

A failure is a state, not a log flood: the first failed poll of a streak is logged at ERROR with
the meter id and the reason, the repeats at DEBUG, the recovery at INFO.

States:
- `offline`: never answered, or 3 or more failed polls in a row.
- `degraded`: 1-2 failed polls in a row, or at least 20 % of the polls of the last 5 minutes
  failed. Once degraded for its failure rate a meter stays so until the rate is back below
  10 %, so a meter hovering at 20 % does not flip state (and emit an event) every poll.
- `ok`: the last poll was good and the 5-minute rate is fine.

Outcomes are kept in 10-second buckets for the last hour (`window_stats`), which the diagnostics
view shows: a few hundred small counters per meter, whatever the poll rate.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace
from datetime import datetime

from milkconsole.meters.events import MeterHealth, MeterState, MeterStateChanged

log = logging.getLogger(__name__)


def log_poll_failed(meter_id: str, kind: str, message: str) -> None:
    """The one ERROR line a meter's failure streak gets when it begins."""
    log.error("meter %s: poll failed (%s): %s", meter_id, kind, message)


OFFLINE_AFTER_FAILURES = 3
RATE_WINDOW_S = 300.0
RATE_DEGRADED = 0.20
RATE_RECOVERED = 0.10
# Below this many polls in the window the failure rate says nothing yet.
RATE_MIN_POLLS = 10
BUCKET_S = 10
HISTORY_S = 3600
FAILURE_KINDS = ("timeout", "crc", "exception", "connection")


@dataclass(slots=True)
class _Bucket:
    start_s: int  # POSIX seconds, a multiple of BUCKET_S
    polls: int = 0
    failures: int = 0
    timeout: int = 0
    crc: int = 0
    exception: int = 0
    connection: int = 0


class MeterHealthTracker:
    """Health of one meter as its poller sees it. Used by one thread (the poller's)."""

    def __init__(self, meter_id: str) -> None:
        self.meter_id = meter_id
        self._health = MeterHealth(meter_id=meter_id)
        self._buckets: deque[_Bucket] = deque(maxlen=HISTORY_S // BUCKET_S + 1)
        self._rate_degraded = False

    def snapshot(self) -> MeterHealth:
        return self._health

    @property
    def state(self) -> MeterState:
        return self._health.state

    def on_success(self, t_utc: datetime) -> MeterStateChanged | None:
        """A good poll at `t_utc`. Returns the state change, if any."""
        h = self._health
        self._record(t_utc, None)
        if h.consecutive_failures:
            log.info(
                "meter %s: answering again after %d failed poll(s)",
                self.meter_id,
                h.consecutive_failures,
            )
        new = replace(h, polls=h.polls + 1, consecutive_failures=0, last_seen=t_utc)
        return self._set(new, self._state_after_success(t_utc))

    def on_failure(
        self, kind: str, message: str, t_utc: datetime, *, log_first: bool = True
    ) -> MeterStateChanged | None:
        """A failed poll (`kind` timeout, crc, exception or connection). Returns the change.

        The first failure of a streak is an ERROR line, unless `log_first` is False (the poller
        then says it once for the bus when no meter on it answered)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r} (known: {', '.join(FAILURE_KINDS)})")
        h = self._health
        self._record(t_utc, kind)
        if h.consecutive_failures == 0 and log_first:
            log_poll_failed(self.meter_id, kind, message)
        elif h.consecutive_failures == 0:
            log.debug("meter %s: poll failed (%s): %s", self.meter_id, kind, message)
        else:
            log.debug(
                "meter %s: poll failed again (%d in a row, %s): %s",
                self.meter_id,
                h.consecutive_failures + 1,
                kind,
                message,
            )
        streak = h.consecutive_failures + 1
        new = replace(
            h,
            polls=h.polls + 1,
            failures=h.failures + 1,
            consecutive_failures=streak,
            timeouts=h.timeouts + (kind == "timeout"),
            crc_errors=h.crc_errors + (kind == "crc"),
            exceptions=h.exceptions + (kind == "exception"),
            last_error=f"{kind}: {message}",
        )
        self._rate_state(t_utc)  # keep the rate hysteresis current
        never_answered = h.last_seen is None
        offline = never_answered or streak >= OFFLINE_AFTER_FAILURES
        return self._set(new, "offline" if offline else "degraded")

    def on_refused(self, n: int) -> None:
        """`n` values of a good poll were refused (NaN, out of range); counted, not a failure."""
        if n > 0:
            self._health = replace(self._health, refused_values=self._health.refused_values + n)

    def window_stats(self, now: datetime, seconds: float = HISTORY_S) -> dict[str, float | None]:
        """Polls and failures (by kind) in the last `seconds` before `now` (10-second grain).

        Keys: seconds, polls, successes, failures, timeouts, crc_errors, exceptions,
        connection_errors, success_rate (None when there was no poll).
        """
        since = now.timestamp() - seconds
        total = _Bucket(0)
        for b in self._buckets:
            if b.start_s + BUCKET_S > since:
                total.polls += b.polls
                total.failures += b.failures
                total.timeout += b.timeout
                total.crc += b.crc
                total.exception += b.exception
                total.connection += b.connection
        return {
            "seconds": float(seconds),
            "polls": total.polls,
            "successes": total.polls - total.failures,
            "failures": total.failures,
            "timeouts": total.timeout,
            "crc_errors": total.crc,
            "exceptions": total.exception,
            "connection_errors": total.connection,
            "success_rate": ((total.polls - total.failures) / total.polls if total.polls else None),
        }

    # -- internals ----------------------------------------------------------------------------

    def _record(self, t_utc: datetime, kind: str | None) -> None:
        start = int(t_utc.timestamp()) // BUCKET_S * BUCKET_S
        if not self._buckets or self._buckets[-1].start_s < start:
            self._buckets.append(_Bucket(start))
        # A wall clock stepped back lands in the newest bucket rather than rewriting history.
        b = self._buckets[-1]
        b.polls += 1
        if kind is not None:
            b.failures += 1
            setattr(b, kind, getattr(b, kind) + 1)

    def _rate_state(self, t_utc: datetime) -> bool:
        """Whether the 5-minute failure rate makes the meter degraded (with hysteresis)."""
        stats = self.window_stats(t_utc, RATE_WINDOW_S)
        polls = int(stats["polls"] or 0)
        rate = (stats["failures"] or 0) / polls if polls else 0.0
        if polls < RATE_MIN_POLLS:
            self._rate_degraded = False
        elif self._rate_degraded:
            self._rate_degraded = rate >= RATE_RECOVERED
        else:
            self._rate_degraded = rate >= RATE_DEGRADED
        return self._rate_degraded

    def _state_after_success(self, t_utc: datetime) -> MeterState:
        return "degraded" if self._rate_state(t_utc) else "ok"

    def _set(self, new: MeterHealth, state: MeterState) -> MeterStateChanged | None:
        previous = self._health.state
        self._health = replace(new, state=state)
        if state == previous:
            return None
        log.debug("meter %s: %s -> %s", self.meter_id, previous, state)
        return MeterStateChanged(health=self._health, previous=previous)
