"""A whole simulated parlour from a parlour config: servers, meters and the scenario together.

`make_demo_config` writes a herringbone parlour TOML whose meters the simulators can serve (half
on Modbus TCP gateways, half on two RS-485 buses that are pty links in the work directory, all
three meter profiles). `SimulatedParlour` reads any parlour config and stands up what it
describes: one `RegisterBank` and server per bus, one `SimulatedMeter` per meter, one
`ParlourScenario` milking cows through them.
"""

from __future__ import annotations

import contextlib
import math
import socket
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

from milkconsole.config import ParlourConfig, load_config
from milkconsole.errors import ConfigError
from milkconsole.meters.parlour import BusConfig
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer
from simulators.parlour import FaultPlan, ParlourScenario

TCP_UNITS_PER_GATEWAY = 4
DEMO_HOST = "127.0.0.1"


def _free_tcp_ports(n: int, host: str) -> list[int]:
    """`n` distinct ports free right now (all held open together so none repeats)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def make_demo_config(
    workdir: Path,
    *,
    stalls: int = 24,
    tcp_port_base: int | None = None,
    time_scale: float = 20.0,
    simulated_clock: bool = False,
) -> Path:
    """Write `workdir/parlour.toml` for a herringbone parlour of `stalls` stalls; its path.

    Stalls 1..stalls/2 are TCP meters (DeLaval then GEA) behind gateways of up to four units;
    the other half sit on two RS-485 buses (`workdir/ttyMILK-A`: Afimilk, `workdir/ttyMILK-B`:
    DeLaval) at 19200 8E1. Free TCP ports are picked when `tcp_port_base` is None. The file is
    validated before returning.

    Tracking thresholds: with `simulated_clock` the console stamps readings with the scenario's
    own time (`milkconsole.clock.ScaledClock(time_scale)`), so the farm's thresholds apply as
    they are (a milking under 2 minutes is short) and only the meter-silence timeout is
    stretched to ten wall seconds. Without it (tests that compare with the scenario's wall-time
    truth) the thresholds are shrunk to suit a scenario run at `time_scale` on the wall clock.
    """
    if not 4 <= stalls <= 200 or stalls % 2:
        raise ValueError(f"stalls must be an even number from 4 to 200, not {stalls}")
    if not time_scale > 0:
        raise ValueError(f"time_scale must be above 0, not {time_scale}")
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    tcp_meters = stalls // 2
    gateways = math.ceil(tcp_meters / TCP_UNITS_PER_GATEWAY)
    if tcp_port_base is None:
        ports = _free_tcp_ports(gateways, DEMO_HOST)
    else:
        if not 1 <= tcp_port_base <= 65535 - gateways:
            raise ValueError(f"tcp_port_base {tcp_port_base} leaves no room for {gateways} ports")
        ports = [tcp_port_base + i for i in range(gateways)]
    poll_s = 0.25 if time_scale > 60 else 0.5
    lines = [
        "# Demo herringbone parlour for the simulators (simulators/demo.py).",
        "[parlour]",
        'name = "Demo herringbone"',
        'farm_code = "DEMO"',
        f"poll_interval_s = {poll_s}",
        'layout = "herringbone"',
        "",
    ]
    if simulated_clock:
        lines += [
            f"# Readings carry the scenario's own time ({time_scale:g} x the wall clock): the",
            "# farm's thresholds as they are; a meter is silent after ten wall seconds.",
            "[tracking]",
            f"comm_timeout_s = {_clamp(10.0 * time_scale, 60.0, 3600.0):.1f}",
            "",
        ]
    else:
        lines += [
            f"# Thresholds for a scenario at {time_scale:g} simulated seconds per wall second.",
            "[tracking]",
            "comm_timeout_s = 10.0",
            f"min_duration_s = {_clamp(60.0 / time_scale, 0.5, 60.0):.3f}",
            "min_yield_l = 2.0",
            f"sample_interval_s = {poll_s}",
            f"end_after_s = {_clamp(20.0 / time_scale, 1.0, 20.0):.3f}",
            "",
        ]
    for g, port in enumerate(ports):
        lines += [
            "[[bus]]",
            f'id = "tcp-{g + 1}"',
            'transport = "tcp"',
            f'host = "{DEMO_HOST}"',
            f"port = {port}",
            "timeout_s = 0.3",
            "",
        ]
    rtu_meters = stalls - tcp_meters
    rtu_a = math.ceil(rtu_meters / 2)
    for letter in ("A", "B"):
        lines += [
            "[[bus]]",
            f'id = "rs485-{letter.lower()}"',
            'transport = "rtu"',
            f'port = "{workdir / f"ttyMILK-{letter}"}"',
            "baudrate = 19200",
            'parity = "E"',
            "timeout_s = 0.3",
            "",
        ]
    for stall in range(1, stalls + 1):
        if stall <= tcp_meters:
            i = stall - 1
            bus = f"tcp-{i // TCP_UNITS_PER_GATEWAY + 1}"
            unit = i % TCP_UNITS_PER_GATEWAY + 1
            profile = "delaval-mm27bc" if stall <= math.ceil(tcp_meters / 2) else "gea"
        elif stall <= tcp_meters + rtu_a:
            bus, unit, profile = "rs485-a", stall - tcp_meters, "afimilk"
        else:
            bus, unit, profile = "rs485-b", stall - tcp_meters - rtu_a, "delaval-mm27bc"
        lines += [
            "[[meter]]",
            f'id = "MM-{stall:02d}"',
            f'bus = "{bus}"',
            f"unit = {unit}",
            f'profile = "{profile}"',
            f"stall = {stall}",
            f'name = "Stall {stall}"',
            "",
        ]
    path = workdir / "parlour.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    load_config(path)
    return path


class SimulatedParlour:
    """Every bus and meter of `config`, simulated, with cows milked through them.

    TCP buses get a `ModbusTcpServer` on the bus's host and port; RTU buses a `ModbusRtuServer`
    whose pty is linked at the bus's `port` path (which must be free or a stale link), with the
    bus's serial settings. `start()` starts the servers, then the scenario (unless
    `scenario=False`: the meters then stand idle until `scenario.start()`, so a console can
    be up before the first cow comes in). `meter_errors` makes meters misread (meter id ->
    error in %, e.g. -4.0 reads 4 % low); `rounds`, `cow_yield_cv` and `gap_s` go to the
    `ParlourScenario`.
    """

    def __init__(
        self,
        config: ParlourConfig,
        *,
        cows: int,
        seed: int,
        time_scale: float,
        faults: FaultPlan | None = None,
        wire_time: bool = False,
        group_size: int | None = None,
        meter_errors: Mapping[str, float] | None = None,
        rounds: int = 1,
        cow_yield_cv: float | None = None,
        gap_s: float = 120.0,
    ) -> None:
        self.config = config
        self.banks: dict[str, RegisterBank] = {}
        self.servers: dict[str, ModbusTcpServer | ModbusRtuServer] = {}
        self.meters: dict[str, SimulatedMeter] = {}
        for i, bus in enumerate(config.buses):
            bank = RegisterBank()
            self.banks[bus.id] = bank
            self.servers[bus.id] = self._server(i, bus, bank, wire_time)
        for m in config.meters:
            self.meters[m.id] = SimulatedMeter(
                self.banks[m.bus],
                m.unit,
                config.profiles[m.profile],
                meter_id=m.id,
                stall=m.stall,
                error_pct=(meter_errors or {}).get(m.id, 0.0),
            )
        unknown = set(meter_errors or {}) - set(self.meters)
        if unknown:
            raise ValueError(f"meter_errors names meters the config lacks: {sorted(unknown)}")
        self.scenario = ParlourScenario(
            list(self.meters.values()),
            cows=cows,
            seed=seed,
            time_scale=time_scale,
            group_size=group_size,
            faults=faults,
            rounds=rounds,
            cow_yield_cv=cow_yield_cv,
            gap_s=gap_s,
        )
        self._started: list[ModbusTcpServer | ModbusRtuServer] = []

    def _server(
        self, i: int, bus: BusConfig, bank: RegisterBank, wire_time: bool
    ) -> ModbusTcpServer | ModbusRtuServer:
        if bus.transport == "tcp":
            return ModbusTcpServer(bank, host=bus.host or DEMO_HOST, port=int(bus.port))
        link = Path(str(bus.port))
        if link.exists() and not link.is_symlink():
            raise ConfigError(
                self.config.source,
                f"bus[{i}].port",
                f"{link} exists and is not a link: the simulator serves a pty linked at a free"
                " path (it cannot stand in for a real serial port)",
            )
        return ModbusRtuServer(
            bank,
            link=link,
            baudrate=bus.baudrate,
            parity=bus.parity,
            stopbits=bus.stopbits,
            bytesize=bus.bytesize,
            wire_time=wire_time,
        )

    def endpoints(self) -> dict[str, str]:
        """Where each meter answers: "tcp HOST:PORT unit N" or "rtu LINK unit N"."""
        out = {}
        for m in self.config.meters:
            server = self.servers[m.bus]
            if isinstance(server, ModbusTcpServer):
                where = f"tcp {server.host}:{server.port}"
            else:
                where = f"rtu {server.link}"
            out[m.id] = f"{where} unit {m.unit}"
        return out

    def describe(self) -> list[str]:
        """One line per meter: `MM-01 stall 1 delaval-mm27bc tcp 127.0.0.1:15020 unit 1`."""
        ends = self.endpoints()
        return [f"{m.id} stall {m.stall} {m.profile} {ends[m.id]}" for m in self.config.meters]

    def start(self, *, scenario: bool = True) -> Self:
        try:
            for server in self.servers.values():
                server.start()
                self._started.append(server)
            if scenario:
                self.scenario.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.scenario.stop()
        while self._started:
            with contextlib.suppress(OSError):
                self._started.pop().stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
