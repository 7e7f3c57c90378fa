"""The parlour config file (TOML): buses, meters, tracking thresholds. Refused whole on any error.

Every error names the file and the key (`parlour.toml: meter[3].unit: ...`) so a technician can
fix it from the message alone; the CLI turns it into exit status 2.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from milkconsole.config_tables import numbers_from_table
from milkconsole.errors import ConfigError
from milkconsole.health.grades import GradeRules
from milkconsole.health.mastitis import DetectorParams
from milkconsole.herd.separation import SeparationRules
from milkconsole.meters.parlour import LAYOUTS, BusConfig, MeterConfig, TrackingConfig
from milkconsole.meters.profiles import Profile, load_profiles
from milkconsole.mqtt.settings import parse_mqtt_settings
from milkconsole.store.backup import BackupSettings
from milkconsole.store.retention import RetentionPolicy
from milkconsole.sync.settings import parse_odoo_settings
from milkconsole.web.settings import parse_web_settings

BAUDRATES = (9600, 19200, 38400, 57600, 115200)
_SECTIONS = {
    "parlour",
    "tracking",
    "bus",
    "meter",
    "odoo",
    "mqtt",
    "health",
    "calibration",
    "ui",
    "web",
    "separation",
    "retention",
    "backup",
}
_PARLOUR_KEYS = {"name", "farm_code", "poll_interval_s", "layout", "profiles_dir", "timezone"}
_TRACKING_KEYS = {
    "comm_timeout_s",
    "min_duration_s",
    "min_yield_l",
    "sample_interval_s",
    "end_after_s",
    "start_flow_l_min",
    "end_flow_l_min",
}
_BUS_KEYS = {
    "id",
    "transport",
    "port",
    "host",
    "baudrate",
    "parity",
    "stopbits",
    "bytesize",
    "timeout_s",
    "retries",
    "reconnect_max_s",
}
_METER_KEYS = {"id", "bus", "unit", "profile", "stall", "calibration_factor", "name"}
# A device path (/dev/ttyUSB0, or a pty link such as the simulators make) or a Windows COM port.
_SERIAL_PORT = re.compile(r"^(/[\w./+-]+|COM\d+|\\\\\.\\COM\d+)$")


@dataclass(frozen=True, slots=True)
class ParlourConfig:
    source: str
    name: str
    farm_code: str
    poll_interval_s: float
    layout: str
    tracking: TrackingConfig
    buses: tuple[BusConfig, ...]
    meters: tuple[MeterConfig, ...]
    profiles: dict[str, Profile]
    extra: dict[str, Any] = field(default_factory=dict)  # sections other issues own (odoo, ...)

    def bus(self, bus_id: str) -> BusConfig:
        return next(b for b in self.buses if b.id == bus_id)

    def meters_on(self, bus_id: str) -> list[MeterConfig]:
        return [m for m in self.meters if m.bus == bus_id]


class _Reader:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key, problem)

    def keys(self, table: Any, allowed: set[str], where: str) -> dict[str, Any]:
        if not isinstance(table, dict):
            raise self.fail(where, "must be a table")
        for k in table:
            if k not in allowed:
                raise self.fail(
                    f"{where}.{k}" if where else k,
                    f"unknown key (allowed: {', '.join(sorted(allowed))})",
                )
        return table

    def string(
        self, table: dict[str, Any], key: str, where: str, default: str | None = None
    ) -> str:
        v = table.get(key, default)
        if v is None:
            raise self.fail(f"{where}.{key}", "missing")
        if not isinstance(v, str) or not v.strip():
            raise self.fail(f"{where}.{key}", f"must be a non-empty string, not {v!r}")
        return v

    def number(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        default: float | None,
        lo: float,
        hi: float,
    ) -> float:
        v = table.get(key, default)
        if v is None:
            raise self.fail(f"{where}.{key}", "missing")
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            raise self.fail(f"{where}.{key}", f"must be a number from {lo} to {hi}, not {v!r}")
        return float(v)

    def integer(
        self, table: dict[str, Any], key: str, where: str, default: int | None, lo: int, hi: int
    ) -> int:
        v = table.get(key, default)
        if v is None:
            raise self.fail(f"{where}.{key}", "missing")
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise self.fail(f"{where}.{key}", f"must be an integer from {lo} to {hi}, not {v!r}")
        return v


def _bus(r: _Reader, raw: Any, where: str) -> BusConfig:
    t = r.keys(raw, _BUS_KEYS, where)
    bus_id = r.string(t, "id", where)
    transport = t.get("transport")
    if transport not in ("rtu", "tcp"):
        raise r.fail(f"{where}.transport", f"must be rtu or tcp, not {transport!r}")
    timeout = r.number(t, "timeout_s", where, 0.3, 0.01, 30)
    retries = r.integer(t, "retries", where, 1, 0, 10)
    reconnect_max = r.number(t, "reconnect_max_s", where, 30.0, 0.1, 3600)
    if transport == "tcp":
        for k in ("baudrate", "parity", "stopbits", "bytesize"):
            if k in t:
                raise r.fail(f"{where}.{k}", "only applies to an rtu bus")
        host = r.string(t, "host", where)
        port = r.integer(t, "port", where, 502, 1, 65535)
        return BusConfig(
            bus_id,
            "tcp",
            port,
            host,
            timeout_s=timeout,
            retries=retries,
            reconnect_max_s=reconnect_max,
        )
    if "host" in t:
        raise r.fail(f"{where}.host", "only applies to a tcp bus")
    port_s = t.get("port")
    if not isinstance(port_s, str) or not _SERIAL_PORT.match(port_s):
        raise r.fail(
            f"{where}.port", f"must be a serial device like /dev/ttyUSB0 or COM3, not {port_s!r}"
        )
    baud = t.get("baudrate", 19200)
    if baud not in BAUDRATES:
        raise r.fail(
            f"{where}.baudrate", f"must be one of {', '.join(map(str, BAUDRATES))}, not {baud!r}"
        )
    parity = t.get("parity", "E")
    if parity not in ("N", "E", "O"):
        raise r.fail(f"{where}.parity", f"must be N, E or O, not {parity!r}")
    stopbits = r.integer(t, "stopbits", where, 1, 1, 2)
    bytesize = r.integer(t, "bytesize", where, 8, 7, 8)
    return BusConfig(
        bus_id,
        "rtu",
        port_s,
        None,
        baud,
        parity,
        stopbits,
        bytesize,
        timeout,
        retries,
        reconnect_max,
    )


def parse_config(
    data: dict[str, Any], source: str, profile_dirs: tuple[Path, ...] = ()
) -> ParlourConfig:
    """Validate a parlour config already read from TOML."""
    r = _Reader(source)
    r.keys(data, _SECTIONS, "")
    parlour = r.keys(data.get("parlour"), _PARLOUR_KEYS, "parlour") if "parlour" in data else None
    if parlour is None:
        raise r.fail("parlour", "missing")
    name = r.string(parlour, "name", "parlour")
    farm_code = r.string(parlour, "farm_code", "parlour")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", farm_code):
        raise r.fail("parlour.farm_code", "use 1-32 letters, digits, - or _")
    poll = r.number(parlour, "poll_interval_s", "parlour", 1.0, 0.05, 60)
    layout = parlour.get("layout", "herringbone")
    if layout not in LAYOUTS:
        raise r.fail("parlour.layout", f"must be herringbone, parallel or rotary, not {layout!r}")
    dirs = list(profile_dirs)
    if "profiles_dir" in parlour:
        pdir = Path(r.string(parlour, "profiles_dir", "parlour")).expanduser()
        if not pdir.is_absolute():
            pdir = Path(source).parent / pdir
        if not pdir.is_dir():
            raise r.fail("parlour.profiles_dir", f"{pdir} is not a directory")
        dirs.append(pdir)
    profiles = load_profiles(*dirs)

    tr = r.keys(data.get("tracking", {}), _TRACKING_KEYS, "tracking")
    opt = {
        k: r.number(tr, k, "tracking", None, 0, 3600)
        for k in ("end_after_s", "start_flow_l_min", "end_flow_l_min")
        if k in tr
    }
    tracking = TrackingConfig(
        comm_timeout_s=r.number(tr, "comm_timeout_s", "tracking", 60.0, 0.1, 3600),
        min_duration_s=r.number(tr, "min_duration_s", "tracking", 120.0, 0, 3600),
        min_yield_l=r.number(tr, "min_yield_l", "tracking", 2.0, 0, 80),
        sample_interval_s=r.number(tr, "sample_interval_s", "tracking", 2.0, 0, 600),
        **opt,
    )

    raw_buses = data.get("bus", [])
    if not isinstance(raw_buses, list) or not raw_buses:
        raise r.fail("bus", "at least one [[bus]] is needed")
    buses: list[BusConfig] = []
    for i, raw in enumerate(raw_buses):
        b = _bus(r, raw, f"bus[{i}]")
        if any(o.id == b.id for o in buses):
            raise r.fail(f"bus[{i}].id", f"duplicate bus id {b.id!r}")
        if b.transport == "rtu" and any(o.port == b.port for o in buses):
            raise r.fail(
                f"bus[{i}].port",
                f"serial port {b.port} is already used by another bus",
            )
        buses.append(b)

    raw_meters = data.get("meter", [])
    if not isinstance(raw_meters, list) or not raw_meters:
        raise r.fail("meter", "at least one [[meter]] is needed")
    meters: list[MeterConfig] = []
    for i, raw in enumerate(raw_meters):
        where = f"meter[{i}]"
        t = r.keys(raw, _METER_KEYS, where)
        mid = r.string(t, "id", where)
        if any(m.id == mid for m in meters):
            raise r.fail(f"{where}.id", f"duplicate meter id {mid!r}")
        bus_id = r.string(t, "bus", where)
        if not any(b.id == bus_id for b in buses):
            raise r.fail(f"{where}.bus", f"no [[bus]] has id {bus_id!r}")
        unit = r.integer(t, "unit", where, None, 1, 247)
        clash = next((m for m in meters if m.bus == bus_id and m.unit == unit), None)
        if clash is not None:
            raise r.fail(
                f"{where}.unit", f"unit {unit} on bus {bus_id!r} is already meter {clash.id!r}"
            )
        profile = r.string(t, "profile", where)
        if profile not in profiles:
            raise r.fail(
                f"{where}.profile",
                f"unknown profile {profile!r} (known: {', '.join(sorted(profiles))})",
            )
        stall = r.integer(t, "stall", where, None, 1, 200)
        clash = next((m for m in meters if m.stall == stall), None)
        if clash is not None:
            raise r.fail(f"{where}.stall", f"stall {stall} is already meter {clash.id!r}")
        factor = r.number(t, "calibration_factor", where, 1.0, 0.5, 1.5)
        meters.append(
            MeterConfig(mid, bus_id, unit, profile, stall, factor, str(t.get("name", "")))
        )

    extra = {k: v for k, v in data.items() if k not in ("parlour", "tracking", "bus", "meter")}
    config = ParlourConfig(
        source=source,
        name=name,
        farm_code=farm_code,
        poll_interval_s=poll,
        layout=layout,
        tracking=tracking,
        buses=tuple(buses),
        meters=tuple(meters),
        profiles=profiles,
        extra=extra,
    )
    _check_sections(config)
    return config


def _check_sections(config: ParlourConfig) -> None:
    """Validate the sections other modules own with their own parsers, so a bad key anywhere
    refuses the file as a whole at load time, not later when that module starts."""
    extra = config.extra
    if "web" in extra:
        parse_web_settings(extra["web"], config.source)
    if "retention" in extra:
        RetentionPolicy.from_table(extra["retention"], config.source)
    if "backup" in extra:
        BackupSettings.from_table(extra["backup"], config.source)
    if "odoo" in extra:
        parse_odoo_settings(extra["odoo"], config.source)
    if "mqtt" in extra:
        parse_mqtt_settings(
            extra["mqtt"], config.source, config.farm_code, [m.id for m in config.meters]
        )
    if "health" in extra:
        r = _Reader(config.source)
        health = r.keys(extra["health"], {"grades", "mastitis"}, "health")
        GradeRules.from_parlour(config)
        numbers_from_table(
            DetectorParams(), health.get("mastitis"), config.source, "health.mastitis"
        )
    if "separation" in extra:
        SeparationRules.from_parlour(config)


# The parts of a config that describe the parlour itself; the rest are optional sections.
PARLOUR_SECTIONS = ("parlour", "tracking", "bus", "meter")


def with_sections_of(config: ParlourConfig, path: Path) -> ParlourConfig:
    """`config` with the optional sections of the file at `path` ([odoo], [mqtt], [web],
    [health]...) added, validated as they would be in a full config. The file's own parlour
    ([parlour], [[bus]], [[meter]], [tracking]) is not used: the demo keeps its simulated one."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(source, "-", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from exc
    unknown = sorted(set(data) - _SECTIONS)
    if unknown:
        raise ConfigError(
            source, unknown[0], f"unknown section (allowed: {', '.join(sorted(_SECTIONS))})"
        )
    extra = {k: v for k, v in data.items() if k not in PARLOUR_SECTIONS}
    merged = replace(config, source=source, extra={**config.extra, **extra})
    _check_sections(merged)
    return merged


def load_config(path: Path) -> ParlourConfig:
    """Read and validate a parlour config file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, "-", f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "-", f"not valid TOML: {exc}") from exc
    return parse_config(data, source)
