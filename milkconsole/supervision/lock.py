"""The console's PIN lock: unlocking for a while, locking again when idle, and backing off wrong
PINs.

`AccessControl.unlock(name, pin)` gives a `Grant` for a while, every user action calls `touch()`,
and after `lock_after_s` without one the console is locked again. Wrong PINs back off: after
`free_attempts` failures in a row each further failure doubles a wait during which no PIN is even
checked. Every unlock and every wrong PIN is an audit row (`unlock`, `pin_refused`), and a console
starting again takes up the back-off from them: a restart does not buy more guesses. The clocks are
injectable, so tests need no sleeping.

Settings (`[calibration.access]` in the parlour config; every key optional)::

    lock_after_s = 300        # lock again after this long without a touch or a key press
    free_attempts = 3         # wrong PINs in a row before the back-off starts
    backoff_first_s = 5       # first wait; doubled on each further wrong PIN
    backoff_max_s = 300
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from milkconsole.config_tables import config_table, settings_from_table
from milkconsole.grants import AccessDenied, Grant, allowed_roles, refuse_unless_allowed
from milkconsole.supervision.pins import looks_like_pin
from milkconsole.supervision.users import UserStore

if TYPE_CHECKING:
    from milkconsole.config import ParlourConfig

log = logging.getLogger(__name__)


class PinRefused(AccessDenied):
    """A wrong name or PIN. `retry_in_s` is the wait the next attempt faces (0: none)."""

    def __init__(self, message: str, retry_in_s: float = 0.0) -> None:
        super().__init__(message)
        self.retry_in_s = retry_in_s


class PinBackoff(AccessDenied):
    """Too many wrong PINs: no PIN is checked for `retry_in_s` more seconds."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"too many wrong PINs: try again in {math.ceil(retry_in_s)} s")
        self.retry_in_s = retry_in_s


@dataclass(frozen=True, slots=True)
class AccessSettings:
    """How the PIN lock behaves; see the module docstring for the config keys."""

    lock_after_s: float = 300.0
    free_attempts: int = 3
    backoff_first_s: float = 5.0
    backoff_max_s: float = 300.0

    def __post_init__(self) -> None:
        if not self.lock_after_s > 0:
            raise ValueError(f"lock_after_s must be above 0, not {self.lock_after_s}")
        if self.free_attempts < 1:
            raise ValueError(f"free_attempts must be at least 1, not {self.free_attempts}")
        if not 0 < self.backoff_first_s <= self.backoff_max_s:
            raise ValueError("backoff_first_s must be above 0 and at most backoff_max_s")

    @classmethod
    def from_parlour(cls, config: ParlourConfig) -> AccessSettings:
        """`[calibration.access]` of a parlour config (defaults for what it leaves out)."""
        table = config_table(config, "calibration", "access")
        return settings_from_table(cls(), table, config.source, "calibration.access")

    def backoff_s(self, failures: int) -> float:
        """The wait after `failures` wrong PINs in a row (0 while under `free_attempts`)."""
        over = failures - self.free_attempts
        if over < 0:
            return 0.0
        return min(self.backoff_max_s, self.backoff_first_s * 2.0 ** min(over, 30))


class AccessControl:
    """The console's PIN lock (see the module docstring). Thread-safe; cheap to query.

    `clock` is a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        users: UserStore,
        settings: AccessSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.users = users
        self.settings = settings or AccessSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._grant: Grant | None = None
        self._last_activity = 0.0
        # Take up the back-off where the last run left it.
        self._failures, last_at = users.pin_failures()
        self._blocked_until = 0.0
        if self._failures and last_at is not None:
            since = (wall_clock() - last_at).total_seconds()
            left = self.settings.backoff_s(self._failures) - max(0.0, since)
            if left > 0:
                self._blocked_until = clock() + left

    # -- state --------------------------------------------------------------------------------
    @property
    def grant(self) -> Grant | None:
        """Who is unlocked now (None: locked; an idle grant expires here)."""
        with self._lock:
            return self._current_locked()

    def _current_locked(self) -> Grant | None:
        if self._grant is not None and (
            self._clock() - self._last_activity >= self.settings.lock_after_s
        ):
            log.info("console locked after %.0f s without activity", self.settings.lock_after_s)
            self._grant = None
        return self._grant

    def seconds_until_lock(self) -> float | None:
        with self._lock:
            if self._current_locked() is None:
                return None
            return self.settings.lock_after_s - (self._clock() - self._last_activity)

    def backoff_remaining_s(self) -> float:
        with self._lock:
            return max(0.0, self._blocked_until - self._clock())

    @property
    def failed_attempts(self) -> int:
        return self._failures

    # -- changes ------------------------------------------------------------------------------
    def unlock(self, name: str, pin: str) -> Grant:
        """Check the PIN; a Grant on success. PinBackoff while backing off (no PIN checked),
        PinRefused for a wrong name or PIN (counts toward the back-off)."""
        with self._lock:
            wait = self._blocked_until - self._clock()
            if wait > 0:
                raise PinBackoff(wait)
        user = self.users.verify(name, pin) if looks_like_pin(pin) else None
        with self._lock:
            now = self._clock()
            if user is None:
                self._failures += 1
                failures = self._failures
                wait = self.settings.backoff_s(failures)
                self._blocked_until = now + wait
                log.warning("wrong PIN for %r (%d in a row)", name, failures)
            else:
                self._failures = 0
                self._blocked_until = 0.0
                grant = self._grant = Grant(user.name, user.role)
                self._last_activity = now
                log.info("console unlocked by %s (%s)", user.name, user.role)
        if user is None:
            self.users.record_unlock(name, False, failures=failures, wait_s=wait)
            raise PinRefused("wrong name or PIN", wait)
        self.users.record_unlock(user.name, True)
        return grant

    def authorize(self, name: str, pin: str, action: str, *, where: str) -> Grant:
        """A `Grant` for one `action` from somewhere else than the console (a phone: `where`
        like `web:Vet phone`), without unlocking the console.

        The same back-off as `unlock`: PinBackoff while it runs (no PIN checked), and a wrong
        name or PIN (PinRefused) counts toward it, so guesses from a phone and at the console
        share one limit. Both outcomes are audited with `where` as the target. A right PIN of
        a role that may not do `action` is AccessDenied (and is no wrong PIN)."""
        allowed_roles(action)  # an unknown action is refused before any PIN is checked
        with self._lock:
            wait = self._blocked_until - self._clock()
            if wait > 0:
                raise PinBackoff(wait)
        user = self.users.verify(name, pin) if looks_like_pin(pin) else None
        with self._lock:
            if user is None:
                self._failures += 1
                failures = self._failures
                wait = self.settings.backoff_s(failures)
                self._blocked_until = self._clock() + wait
                log.warning("wrong PIN for %r from %s (%d in a row)", name, where, failures)
            else:
                self._failures = 0
                self._blocked_until = 0.0
        if user is None:
            self.users.record_unlock(name, False, failures=failures, wait_s=wait, target=where)
            raise PinRefused("wrong name or PIN", wait)
        self.users.record_unlock(user.name, True, target=where)
        return refuse_unless_allowed(Grant(user.name, user.role), action)

    def touch(self) -> None:
        """The user did something: the inactivity countdown starts again (if unlocked)."""
        with self._lock:
            if self._current_locked() is not None:
                self._last_activity = self._clock()

    def lock(self) -> None:
        with self._lock:
            if self._grant is not None:
                log.info("console locked by %s", self._grant.user)
            self._grant = None

    def require(self, action: str) -> Grant:
        """The current grant if it allows `action` (and counts as activity); else AccessDenied."""
        with self._lock:
            grant = refuse_unless_allowed(self._current_locked(), action, locked=True)
            self._last_activity = self._clock()
            return grant
