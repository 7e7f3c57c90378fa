"""The stall view: one tile per stall, laid out like the parlour, fed by the bridge's signals.

Herringbone and parallel parlours show two sides with the pit between them; a rotary shows a ring
when the tiles are still big enough that way, else a strip in platform order. Tiles are placed
by hand (`layout_tiles`, plain arithmetic, no Qt layouts) so 80 tiles re-place in one pass.

With many stalls the tiles of both sides are small; the operator in the pit works one side at
a time, so the view can show one side only (`set_side`), its tiles twice as big, while
`hidden_attention` counts the stalls on the other side that need someone.

This widget also decides what each tile says: which cow (manual correction, the database's
identity, the tag through the herd list, or "unknown tag"/"no ID"), what she is expected to
give, and which alert chips apply: the tile's own thresholds on the live figures, the alerts the
health module stored for this session, and the cow's stored alerts that still need someone (an
open mastitis alert from yesterday shows while she is milked today).

And whether her milk must be kept out of the tank: the moment a session event names a cow (a
tag, late or changed, a manual ID, a resumed session's stored identity), the same refresh asks
the herd's separation book (`milkconsole.herd.separation`, loaded with the herd in one read) and the
tile shows DIVERT in that same repaint; who confirmed "milk diverted" comes from this console or
the database (after a restart).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from PySide6.QtCore import QRect, QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QScrollArea, QWidget

from milkconsole.config import ParlourConfig
from milkconsole.herd.directory import AnimalInfo, HerdDirectory
from milkconsole.herd.separation import DivertDecision
from milkconsole.meters.events import (
    MeterHealth,
    MeterStateChanged,
    PollCycleCompleted,
    ReadingTaken,
    SessionCompleted,
    SessionSnapshot,
    SessionStarted,
    SessionUpdated,
)
from milkconsole.meters.parlour import parlour_sides
from milkconsole.reports.dashboard import ProductionSnapshot, tile_alerts
from ui.stall_tile import ATTENTION_STATES, NO_ID, CowIdentity, StallTileWidget, font_scale
from ui.theme import DARK, Theme

# A finished cow's figures stay on the tile this long (or until the next cow comes in).
DONE_SHOWN_S = 600.0
TILE_GAP_PX = 8
AISLE_PX = 30
MIN_TILE_W = 150
MIN_TILE_H = 100
TILE_ASPECT_MAX = 1.7  # width / height
TILE_ASPECT_MIN = 1.05


@dataclass(frozen=True, slots=True)
class TilePlacement:
    stall: int
    x: int
    y: int
    w: int
    h: int


def layout_tiles(
    stalls: list[int], layout: str, width: int, height: int, *, one_side: bool = False
) -> tuple[list[TilePlacement], tuple[int, int], str]:
    """Where each tile goes in a `width` x `height` area (`one_side`: the stalls are one side
    of the pit, laid out as one block).

    Returns the placements, the canvas size (larger than the area when tiles would be smaller
    than the minimum: the view then scrolls) and the shape used (`rows`, `ring` or `strip`).
    """
    if not stalls:
        return [], (width, height), "rows"
    if layout == "rotary":
        ring = _ring(sorted(stalls), width, height)
        if ring is not None:
            return ring, (width, height), "ring"
    sides = [sorted(stalls)] if one_side else parlour_sides(stalls, layout)
    widest = max(len(s) for s in sides)
    aisles = (len(sides) - 1) * AISLE_PX
    best: tuple[tuple[float, float, float], int, float, float] | None = None
    for cols in range(1, widest + 1):
        tw_max = (width - (cols - 1) * TILE_GAP_PX) / cols
        if tw_max < MIN_TILE_W and cols > 1:
            break
        rows = sum(math.ceil(len(s) / cols) for s in sides)
        th = (height - aisles - (rows - 1) * TILE_GAP_PX) / rows
        th = min(th, tw_max / TILE_ASPECT_MIN)
        tw = min(tw_max, th * TILE_ASPECT_MAX)
        if th >= MIN_TILE_H:
            # Fits the screen: the biggest digits win (then the tallest, then the widest).
            score = (1.0, round(font_scale(tw, th), 3), th)
        else:
            # Does not fit: the view scrolls; fewest rows keeps the most stalls in sight.
            th = MIN_TILE_H
            tw = max(MIN_TILE_W, min(tw_max, th * TILE_ASPECT_MAX))
            score = (0.0, -rows, tw)
        if best is None or score > best[0]:
            best = (score, cols, tw, th)
    assert best is not None
    _, cols, tw, th = best
    grid_w = cols * tw + (cols - 1) * TILE_GAP_PX
    x0 = max(0.0, (width - grid_w) / 2)
    placements: list[TilePlacement] = []
    y = 0.0
    for i, side in enumerate(sides):
        if i:
            y += AISLE_PX - TILE_GAP_PX
        for j, stall in enumerate(side):
            r, c = divmod(j, cols)
            placements.append(
                TilePlacement(
                    stall,
                    round(x0 + c * (tw + TILE_GAP_PX)),
                    round(y + r * (th + TILE_GAP_PX)),
                    round(tw),
                    round(th),
                )
            )
        y += math.ceil(len(side) / cols) * (th + TILE_GAP_PX)
    canvas = (max(width, round(x0 * 2 + grid_w)), max(height, round(y - TILE_GAP_PX)))
    return placements, canvas, "strip" if layout == "rotary" else "rows"


def _ring(stalls: list[int], width: int, height: int) -> list[TilePlacement] | None:
    """Tiles evenly spaced (by arc length) on an ellipse, as big as fit without touching."""
    n = len(stalls)
    if n < 3:
        return None
    steps = 720
    for th in range(int(height / 3.2), MIN_TILE_H - 1, -4):
        tw = min(th * 1.3, width / 4)
        if tw < MIN_TILE_W:
            continue
        a = (width - tw) / 2
        b = (height - th) / 2
        if a <= 0 or b <= 0:
            continue
        pts = [
            (
                a * math.cos(-math.pi / 2 + 2 * math.pi * k / steps),
                b * math.sin(-math.pi / 2 + 2 * math.pi * k / steps),
            )
            for k in range(steps + 1)
        ]
        arc = [0.0]
        for (x0, y0), (x1, y1) in itertools.pairwise(pts):
            arc.append(arc[-1] + math.hypot(x1 - x0, y1 - y0))
        total = arc[-1]
        out: list[TilePlacement] = []
        j = 0
        for k, stall in enumerate(stalls):
            target = total * k / n
            while arc[j + 1] < target:
                j += 1
            x, y = pts[j]
            out.append(
                TilePlacement(
                    stall,
                    round(width / 2 + x - tw / 2),
                    round(height / 2 + y - th / 2),
                    round(tw),
                    round(th),
                )
            )
        if not any(_overlap(p, q) for i, p in enumerate(out) for q in out[i + 1 :]):
            return out
    return None


def _overlap(p: TilePlacement, q: TilePlacement) -> bool:
    g = TILE_GAP_PX // 2
    return not (
        p.x + p.w + g <= q.x or q.x + q.w + g <= p.x or p.y + p.h + g <= q.y or q.y + q.h + g <= p.y
    )


class _TileCanvas(QWidget):
    """Holds the tiles; arrow keys move the focus between them; paints the pit label."""

    def __init__(self, view: StallViewWidget) -> None:
        super().__init__()
        self._view = view
        self.pit_y: int | None = None

    def keyPressEvent(self, event: QKeyEvent) -> None:
        moves = {
            Qt.Key.Key_Left: (-1, 0),
            Qt.Key.Key_Right: (1, 0),
            Qt.Key.Key_Up: (0, -1),
            Qt.Key.Key_Down: (0, 1),
        }
        move = moves.get(Qt.Key(event.key()))
        if move is not None and self._view.move_focus(*move):
            event.accept()
            return
        super().keyPressEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        theme = self._view.theme
        p.fillRect(event.rect(), QColor(theme.window))
        if self.pit_y is not None:
            p.setPen(QColor(theme.text_dim))
            f = p.font()
            f.setPixelSize(max(12, AISLE_PX - 12))
            f.setBold(True)
            p.setFont(f)
            r = QRect(0, self.pit_y, self.width(), AISLE_PX)
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "— PIT —")
        p.end()


class StallViewWidget(QScrollArea):
    """Every stall of the parlour as a tile; connect the bridge's signals to its slots."""

    tile_activated = Signal(int)
    manual_id_requested = Signal(int)
    reattach_requested = Signal(int)
    divert_confirm_requested = Signal(int)

    def __init__(
        self,
        config: ParlourConfig,
        theme: Theme = DARK,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        zone: tzinfo | None = None,
    ) -> None:
        super().__init__()
        self.theme = theme
        self.now = now
        self.zone = zone
        self.layout_name = config.layout
        self.shape = "rows"
        self.setWidgetResizable(False)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self._canvas = _TileCanvas(self)
        self.setWidget(self._canvas)
        self.tiles: dict[int, StallTileWidget] = {}
        self.stall_of_meter: dict[str, int] = {}
        for m in sorted(config.meters, key=lambda m: m.stall):
            tile = StallTileWidget(m.stall, m.id, theme)
            tile.setParent(self._canvas)
            tile.activated.connect(self.tile_activated)
            tile.manual_id_requested.connect(self.manual_id_requested)
            tile.reattach_requested.connect(self.reattach_requested)
            tile.divert_confirm_requested.connect(self.divert_confirm_requested)
            self.tiles[m.stall] = tile
            self.stall_of_meter[m.id] = m.stall
        self.placements: dict[int, TilePlacement] = {}
        self.sides = parlour_sides(list(self.tiles), config.layout)
        self.side: int | None = None  # None: every side
        self.herd = HerdDirectory()
        self._sessions: dict[int, SessionSnapshot] = {}
        self._finished_at: dict[int, float] = {}
        self._manual: dict[str, AnimalInfo] = {}
        self._db_identity: dict[str, tuple[int | None, str | None]] = {}
        self._stored_alerts: dict[str, tuple[str, ...]] = {}
        self._cow_alerts: Mapping[int, tuple[str, ...]] = {}
        # Who confirmed "milk diverted", by session key: here, or stored (after a restart).
        self._confirmed: dict[str, str] = {}
        self._db_confirmed: dict[str, str] = {}
        self._idle_timer = QTimer(self)
        self._idle_timer.setInterval(5000)
        self._idle_timer.timeout.connect(self._expire_done)
        self._idle_timer.start()
        self._relayout()

    # -- layout -------------------------------------------------------------------------------
    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._relayout()

    def sizeHint(self) -> QSize:
        return QSize(1280, 760)

    def side_label(self, side: int | None) -> str:
        """ "Both sides", or "Side A (1–40)" for one side."""
        if side is None:
            return "Both sides" if len(self.sides) == 2 else "All stalls"
        stalls = self.sides[side]
        return f"Side {'AB'[side]} ({stalls[0]}–{stalls[-1]})"

    def set_side(self, side: int | None) -> None:
        """Show one side only (0 or 1 of `sides`), or every stall (None)."""
        if side is not None and not 0 <= side < len(self.sides):
            raise ValueError(f"this parlour has {len(self.sides)} side(s), not side {side}")
        self.side = side
        shown = self.shown_stalls()
        for stall, tile in self.tiles.items():
            tile.setVisible(stall in shown)
        self._relayout()
        self.verticalScrollBar().setValue(0)

    def shown_stalls(self) -> set[int]:
        return set(self.tiles) if self.side is None else set(self.sides[self.side])

    def hidden_attention(self) -> list[int]:
        """Stalls on the side not shown whose state needs someone (alert, incomplete, offline)."""
        shown = self.shown_stalls()
        return sorted(
            stall
            for stall, tile in self.tiles.items()
            if stall not in shown and tile.display_state in ATTENTION_STATES
        )

    def _relayout(self) -> None:
        vp = self.viewport().size()
        shown = self.shown_stalls()
        placements, (cw, ch), shape = layout_tiles(
            [s for s in self.tiles if s in shown],
            self.layout_name,
            max(vp.width(), MIN_TILE_W),
            max(vp.height(), 1),
            one_side=self.side is not None,
        )
        self.shape = shape
        self._canvas.resize(cw, ch)
        self.placements = {p.stall: p for p in placements}
        for p in placements:
            self.tiles[p.stall].setGeometry(p.x, p.y, p.w, p.h)
        self._canvas.pit_y = None
        if shape == "rows" and self.layout_name != "rotary" and self.side is None:
            sides = self.sides
            if len(sides) == 2:
                bottom_a = max(self.placements[s].y + self.placements[s].h for s in sides[0])
                top_b = min(self.placements[s].y for s in sides[1])
                self._canvas.pit_y = bottom_a + (top_b - bottom_a - AISLE_PX) // 2
        self._canvas.update()

    def move_focus(self, dx: int, dy: int) -> bool:
        """Focus the nearest tile in the direction (dx, dy); False when there is none."""
        current = next((s for s, t in self.tiles.items() if t.hasFocus()), None)
        if current is None or current not in self.placements:
            return False
        here = self.placements[current]
        hx, hy = here.x + here.w / 2, here.y + here.h / 2
        best: tuple[float, int] | None = None
        for stall, p in self.placements.items():
            if stall == current:
                continue
            px, py = p.x + p.w / 2, p.y + p.h / 2
            along = (px - hx) * dx + (py - hy) * dy
            if along <= 1:
                continue
            across = abs((px - hx) * dy) + abs((py - hy) * dx)
            score = along + 2 * across
            if best is None or score < best[0]:
                best = (score, stall)
        if best is None:
            return False
        tile = self.tiles[best[1]]
        tile.setFocus(Qt.FocusReason.OtherFocusReason)
        self.ensureWidgetVisible(tile)
        return True

    def set_theme(self, theme: Theme) -> None:
        self.theme = theme
        for tile in self.tiles.values():
            tile.set_theme(theme)
        self._canvas.update()

    # -- what tiles say -----------------------------------------------------------------------
    def tile_for_meter(self, meter_id: str) -> StallTileWidget | None:
        stall = self.stall_of_meter.get(meter_id)
        return None if stall is None else self.tiles.get(stall)

    def session_of(self, stall: int) -> SessionSnapshot | None:
        return self._sessions.get(stall)

    def identity_for(self, session: SessionSnapshot) -> tuple[CowIdentity, int | None]:
        """What the cow line says for a session, and the animal id when known."""
        manual = self._manual.get(session.key)
        if manual is not None:
            return CowIdentity("manual", manual.number, manual.name, session.rfid), manual.id
        db_animal, db_source = self._db_identity.get(session.key, (None, None))
        if db_animal is not None:
            a = self.herd.animals.get(db_animal)
            if a is not None:
                status = "manual" if db_source == "manual" else "known"
                return CowIdentity(status, a.number, a.name, session.rfid), a.id
        found = self.herd.find_tag(session.rfid)
        if found is not None:
            return CowIdentity("known", found.number, found.name, session.rfid), found.id
        if session.rfid:
            return CowIdentity("unknown_tag", rfid=session.rfid), None
        return NO_ID, None

    def decision_for(self, session: SessionSnapshot) -> DivertDecision:
        """Must this session's milk be kept out of the tank (why, until when)?"""
        _, animal_id = self.identity_for(session)
        return self.herd.decide(animal_id, session.started_at, zone=self.zone)

    def confirmed_by(self, session_key: str) -> str | None:
        return self._confirmed.get(session_key) or self._db_confirmed.get(session_key)

    def _refresh_tile(self, stall: int) -> None:
        session = self._sessions.get(stall)
        tile = self.tiles.get(stall)
        if session is None or tile is None:
            return
        identity, animal_id = self.identity_for(session)
        expected = self.herd.expected_for(animal_id)
        decision = self.herd.decide(animal_id, session.started_at, zone=self.zone)
        # One repaint: the cow's name never shows without her DIVERT.
        tile.set_divert(
            decision,
            decision.until_text(self.zone, self.now(), short=True),
            self.confirmed_by(session.key),
        )
        tile.set_identity(identity)
        tile.set_expected(expected)
        stored = self._stored_alerts.get(session.key, ())
        if animal_id is not None:
            stored = stored + self._cow_alerts.get(animal_id, ())
        tile.set_alerts(tile_alerts(session, expected, stored))

    def _apply_session(self, session: SessionSnapshot) -> None:
        stall = self.stall_of_meter.get(session.meter_id, session.stall)
        tile = self.tiles.get(stall)
        if tile is None:
            return
        self._sessions[stall] = session
        tile.apply_session(
            session.key, session.state, session.yield_l, session.yield_offset_l, session.flow_l_min
        )
        if session.state == "in_progress":
            self._finished_at.pop(stall, None)
        else:
            self._finished_at[stall] = time.monotonic()
        self._refresh_tile(stall)

    # -- bridge slots -------------------------------------------------------------------------
    @Slot(object)
    def on_session_event(self, event: SessionStarted | SessionUpdated | SessionCompleted) -> None:
        self._apply_session(event.session)

    @Slot(object)
    def on_reading(self, event: ReadingTaken) -> None:
        r = event.reading
        tile = self.tile_for_meter(r.meter_id)
        if tile is not None:
            tile.add_reading(event.session_key, r.yield_l, r.flow_l_min)

    @Slot(object)
    def on_meter_state_changed(self, event: MeterStateChanged) -> None:
        self._apply_health(event.health)

    @Slot(object)
    def on_poll_cycle(self, event: PollCycleCompleted) -> None:
        for h in event.health:
            self._apply_health(h)

    def _apply_health(self, health: MeterHealth) -> None:
        tile = self.tile_for_meter(health.meter_id)
        if tile is not None:
            tile.set_meter_state(health.state)

    def set_herd(self, herd: HerdDirectory) -> None:
        self.herd = herd
        for stall in self._sessions:
            self._refresh_tile(stall)

    def apply_production(self, snap: ProductionSnapshot) -> None:
        """Identity the database holds for open and recent sessions, and their stored alerts."""
        ident: dict[str, tuple[int | None, str | None]] = {}
        confirmed: dict[str, str] = {}
        for row in (*snap.open_sessions, *snap.recent):
            ident[row.key] = (row.animal_id, row.id_source)
            if row.divert_confirmed_by:
                confirmed[row.key] = row.divert_confirmed_by
        alerts = snap.session_alerts()
        if (
            ident == self._db_identity
            and alerts == self._stored_alerts
            and confirmed == self._db_confirmed
        ):
            return
        self._db_identity = ident
        self._stored_alerts = alerts
        self._db_confirmed = confirmed
        for stall in self._sessions:
            self._refresh_tile(stall)

    def set_cow_alerts(self, by_animal: Mapping[int, tuple[str, ...]]) -> None:
        """Kinds of each cow's stored alerts that still need someone (`alerts.alert_marks`)."""
        if by_animal == self._cow_alerts:
            return
        self._cow_alerts = by_animal
        for stall in self._sessions:
            self._refresh_tile(stall)

    def set_confirmed(self, session_key: str, actor: str) -> None:
        """The operator's "milk diverted" was recorded: the tile calms down at once."""
        self._confirmed[session_key] = actor
        for stall, s in self._sessions.items():
            if s.key == session_key:
                self._refresh_tile(stall)

    def set_manual_identity(self, session_key: str, animal: AnimalInfo) -> None:
        """The operator's correction was recorded: show it on the tile at once."""
        self._manual[session_key] = animal
        for stall, s in self._sessions.items():
            if s.key == session_key:
                self._refresh_tile(stall)

    @Slot()
    def _expire_done(self) -> None:
        now = time.monotonic()
        for stall, at in list(self._finished_at.items()):
            if now - at >= DONE_SHOWN_S:
                del self._finished_at[stall]
                self._sessions.pop(stall, None)
                self.tiles[stall].go_idle()
        # "until 18:00" becomes "until tomorrow 06:00"... as the clock moves on.
        for stall, tile in self.tiles.items():
            if tile.divert.divert and stall in self._sessions:
                self._refresh_tile(stall)

    def stalls_by_state(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for stall, tile in self.tiles.items():
            out.setdefault(tile.display_state, []).append(stall)
        return out

    def active_sessions(self) -> Iterable[SessionSnapshot]:
        return (s for s in self._sessions.values() if s.state == "in_progress")
