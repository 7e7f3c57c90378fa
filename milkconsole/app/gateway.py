"""The headless gateway: poll every meter, record every session, print one line per milking.

`milkconsole gateway --config parlour.toml` runs it; SIGINT/SIGTERM stop it cleanly (pollers
first, then the writer drains, so nothing handed to it is lost).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TextIO

from milkconsole.app.runtime import ParlourRuntime
from milkconsole.clock import SYSTEM_CLOCK, Clock
from milkconsole.config import ParlourConfig
from milkconsole.meters.events import SessionCompleted, SessionSnapshot
from milkconsole.store.db import open_database
from milkconsole.store.sessions import SessionRecord
from milkconsole.web.service import WebError

log = logging.getLogger(__name__)


def session_line(s: SessionSnapshot, record: SessionRecord | None = None) -> str:
    """One human line per finished milking (the gateway's only stdout output). With the stored
    `record`: the cow's herd number, and where her milk went when it was diverted."""
    end = s.ended_at.strftime("%Y-%m-%dT%H:%M:%SZ") if s.ended_at else "-"
    cow = s.rfid or "no-id"
    if record is not None and record.animal_number:
        cow = record.animal_number
    flags = f" [{','.join(s.flags)}]" if s.flags else ""
    line = (
        f"{end} stall {s.stall:>2} {s.meter_id} cow {cow} {s.yield_l:6.2f} L "
        f"peak {s.peak_flow_l_min:4.2f} L/min {s.duration_s:5.0f} s {s.state}{flags}"
    )
    if record is not None and record.destination == "diverted":
        who = record.divert_confirmed_by or "NOT CONFIRMED"
        line += f" -> DIVERTED ({record.divert_reason}; {who})"
    return line


def run_gateway(
    config: ParlourConfig,
    db_path: Path,
    *,
    out: TextIO = sys.stdout,
    stop_event: threading.Event | None = None,
    on_started: Callable[[ParlourRuntime], None] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> int:
    """Run until SIGINT/SIGTERM (or `stop_event`). Returns the process exit status.
    `clock` stamps the readings (the demo's simulated time; see `milkconsole.clock`)."""
    stop = stop_event or threading.Event()
    db = open_database(db_path)
    runtime = ParlourRuntime(config, db, clock=clock)
    print_lock = threading.Lock()

    def print_completed(events: list[object]) -> None:
        for e in events:
            if isinstance(e, SessionCompleted):
                record = runtime.store.record(e.session.key)
                with print_lock:
                    out.write(session_line(e.session, record) + "\n")
                    out.flush()

    runtime.add_committed_listener(print_completed)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        runtime.start_threads()
        if runtime.start_sync():
            log.info("Odoo sync running in the background")
        try:
            runtime.start_web()
        except WebError as exc:  # milking and recording go on without the phones' view
            log.error("%s", exc)
        if runtime.start_mqtt():
            assert runtime.mqtt_settings is not None
            log.info("MQTT publisher running for %s", runtime.mqtt_settings.broker)
        log.info(
            "gateway: %d meters on %d buses, database %s",
            len(config.meters),
            len(config.buses),
            db_path,
        )
        if on_started is not None:
            on_started(runtime)
        while not stop.wait(0.5):
            pass
    finally:
        runtime.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
