"""The phones' stall board (the console tiles' rules, without Qt) and the hand-over of poller
events to the server thread."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from milkconsole.herd.directory import AnimalInfo, HerdDirectory
from milkconsole.meters.events import (
    MeterHealth,
    MeterStateChanged,
    ReadingTaken,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.readings import Reading
from milkconsole.web.live import DivertSet, LiveInbox, StallBoard

T0 = datetime(2026, 11, 28, 6, 0, tzinfo=UTC)
TAG = "982000123456789"


def snap(key="K1", state="in_progress", yield_l=0.0, offset=0.0, flow=0.0, **kw):
    return SessionSnapshot(
        key=key,
        meter_id=kw.pop("meter_id", "M1"),
        stall=kw.pop("stall", 1),
        started_at=T0,
        state=state,
        yield_l=yield_l,
        yield_offset_l=offset,
        flow_l_min=flow,
        rfid=kw.pop("rfid", TAG),
        **kw,
    )


def reading(yield_l, flow=3.0, key="K1", at=T0):
    return ReadingTaken(Reading("M1", 1, 0.0, at, yield_l=yield_l, flow_l_min=flow), key)


def board(clock=lambda: 0.0):
    herd = HerdDirectory(
        {7: AnimalInfo(7, "1002", "Daisy", TAG)}, {TAG: 7}, expected_yield_l={7: 14.0}
    )
    b = StallBoard([(1, "M1"), (2, "M2")], clock=clock)
    b.set_herd(herd)
    return b


def test_a_cow_walks_in_milks_and_is_shown_done_then_the_stall_empties():
    now = {"t": 0.0}
    b = board(lambda: now["t"])
    assert b.view(1).state == "idle" and b.view(1).yield_l is None
    assert b.apply(SessionStarted(snap())) == {1}
    v = b.view(1)
    assert (v.state, v.cow, v.cow_status, v.animal_id, v.expected_l) == (
        "milking",
        "1002 Daisy",
        "known",
        7,
        14.0,
    )
    assert b.apply(reading(3.2, at=T0)) == {1}
    assert b.view(1).yield_l == 3.2 and b.view(1).flow_l_min == 3.0
    assert b.view(1).read_at == T0.timestamp()
    assert b.apply(reading(3.2)) == set()  # nothing new to show
    assert b.apply(reading(9.9, key="OTHER")) == set()  # not this cow's reading
    b.apply(SessionUpdated(snap(yield_l=5.0, offset=2.0, flow=2.5)))
    b.apply(reading(4.0))  # the meter counter after a reset: the offset is added
    assert b.view(1).yield_l == 6.0
    b.apply(SessionCompleted(snap(state="completed", yield_l=12.5)))
    v = b.view(1)
    assert (v.state, v.yield_l, v.flow_l_min) == ("done", 12.5, 0.0)
    assert b.view(1).to_json()["divert"] is None
    now["t"] = 599.0
    assert b.expire() == set()
    now["t"] = 600.0
    assert b.expire() == {1}
    assert b.view(1).state == "idle" and b.view(1).cow == ""


def test_alerts_offline_unknown_tags_and_divert_are_shown():
    b = board()
    b.apply(SessionStarted(snap(blood=True)))
    assert b.view(1).alerts == ("BLOOD",) and b.view(1).state == "alert"
    b.set_alert_marks({"K1": ("mastitis",)}, {7: ("low_yield",)})
    assert b.view(1).alerts == ("BLOOD", "HIGH EC", "LOW YIELD")
    b.apply(MeterStateChanged(MeterHealth("M1", "offline"), "ok"))
    assert b.view(1).state == "offline"
    b.apply(SessionStarted(snap(key="K2", rfid="999000000000001", stall=2, meter_id="M2")))
    v = b.view(2)
    assert v.cow_status == "unknown_tag" and v.cow.startswith("unknown tag")
    assert b.apply(DivertSet(2, "antibiotic withdrawal")) == {2}
    assert b.view(2).to_json()["divert"] == "antibiotic withdrawal"
    assert b.apply(DivertSet(2, None)) == {2} and b.view(2).divert is None


def test_the_inbox_wakes_the_server_once_per_burst_and_ignores_what_it_does_not_show():
    inbox = LiveInbox()
    wakes = []
    inbox.attach(lambda: wakes.append(threading.current_thread().name))
    inbox.publish(object())  # not a live event: ignored
    assert wakes == [] and inbox.take() == []

    def poller():
        for i in range(100):
            inbox.publish(reading(float(i)))

    t = threading.Thread(target=poller, name="poller-x")
    t.start()
    t.join()
    assert wakes == ["poller-x"]  # one wake for the burst, on the poller's own thread
    got = inbox.take()
    assert len(got) == 100 and got[-1].reading.yield_l == 99.0
    inbox.publish(reading(1.0))
    assert len(wakes) == 2


def test_a_stalled_server_thread_costs_bounded_memory_and_never_blocks_a_poller():
    inbox = LiveInbox(maxlen=10)
    inbox.attach(lambda: None)  # the server never takes: publishing still returns each time
    for i in range(1000):
        inbox.publish(reading(float(i)))
    items = inbox.take()
    assert len(items) == 10 and inbox.dropped == 990
    assert items[-1].reading.yield_l == 999.0  # the newest kept


def test_a_treated_cow_shows_divert_on_the_phone_as_on_her_tile():
    """The phone takes the tile's own decision (milkconsole.herd.separation), with why and until."""
    from datetime import timedelta

    from milkconsole.herd.separation import CowSeparation, SeparationBook
    from milkconsole.herd.withdrawal import Treatment

    treated = Treatment(
        key="T1",
        animal_id=7,
        product="Mastiplan LC",
        start=T0 - timedelta(hours=12),
        withdrawal_hours=84.0,
    )
    book = SeparationBook({7: CowSeparation(7, "1002 Daisy", treatments=(treated,))})
    herd = HerdDirectory(
        {7: AnimalInfo(7, "1002", "Daisy", TAG)}, {TAG: 7}, expected_yield_l={}, separation=book
    )
    b = StallBoard([(1, "M1")])
    b.set_herd(herd)
    b.apply(SessionStarted(snap()))
    shown = b.view(1).divert
    assert shown is not None and "Mastiplan LC" in shown and "until" in shown
    assert b.view(1).to_json()["divert"] == shown
    # A cow with nothing on record: no DIVERT.
    b.set_herd(HerdDirectory({7: AnimalInfo(7, "1002", "Daisy", TAG)}, {TAG: 7}))
    assert b.view(1).divert is None
