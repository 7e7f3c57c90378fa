"""Modbus transports against our own Modbus slave, over a real TCP socket and a real pty."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from milkconsole.errors import TransportError
from milkconsole.meters.decode import Value, decode_reading
from milkconsole.meters.parlour import BusConfig
from milkconsole.meters.profiles import Profile, load_profiles
from milkconsole.meters.transport import ModbusTransport, inter_frame_gap_s, open_transport
from simulators.meter import SimulatedMeter
from simulators.modbus.registers import RegisterBank
from simulators.modbus.rtu import ModbusRtuServer
from simulators.modbus.tcp import ModbusTcpServer

PROFILES = load_profiles()
NOW = datetime(2026, 3, 2, 5, 12, tzinfo=UTC)
VALUES: dict[str, Value] = {
    "yield_l": 12.25,
    "flow_l_min": 3.5,
    "conductivity_ms_cm": 5.25,
    "temperature_c": 37.5,
    "session_time_s": 241,
    "rfid": "83D6000012345678",
    "status": 1,
    "vacuum_kpa": 44.5,
    "pulsation_cpm": 61.0,
}


def tcp_bus(port: int, **kw: object) -> BusConfig:
    opts: dict = {"timeout_s": 0.15, "retries": 0, "reconnect_max_s": 1.0} | kw
    return BusConfig("tcp-1", "tcp", port, "127.0.0.1", **opts)


def rtu_bus(path: str, **kw: object) -> BusConfig:
    opts: dict = {"baudrate": 115200, "parity": "E", "timeout_s": 0.15, "retries": 0} | kw
    return BusConfig("rtu-1", "rtu", path, **opts)


def read_meter(t: ModbusTransport, unit: int, profile: Profile) -> dict[str, object]:
    """Every field of a meter, read block by block and decoded as the poller does."""
    regs = {b: t.read_registers(unit, b.register, b.address, b.count) for b in profile.blocks()}
    reading, refusals = decode_reading(profile, regs, meter_id="m", stall=1, t_mono=0.0, t_utc=NOW)
    assert refusals == []
    return {name: getattr(reading, name) for name in profile.fields}


@pytest.fixture
def bank() -> RegisterBank:
    return RegisterBank()


@pytest.fixture
def meter(bank: RegisterBank) -> SimulatedMeter:
    m = SimulatedMeter(bank, 1, PROFILES["delaval-mm27bc"], meter_id="MM-01")
    m.set_values(**VALUES)
    return m


@pytest.fixture
def tcp_server(bank: RegisterBank, meter: SimulatedMeter) -> Iterator[ModbusTcpServer]:
    with ModbusTcpServer(bank) as server:
        yield server


@pytest.fixture
def rtu_server(bank: RegisterBank, meter: SimulatedMeter) -> Iterator[ModbusRtuServer]:
    with ModbusRtuServer(bank, baudrate=115200, parity="E") as server:
        yield server


@pytest.fixture
def transports() -> Iterator[list[ModbusTransport]]:
    made: list[ModbusTransport] = []
    yield made
    for t in made:
        t.close()


def connect(transports: list[ModbusTransport], bus: BusConfig) -> ModbusTransport:
    t = open_transport(bus)
    assert isinstance(t, ModbusTransport)
    transports.append(t)
    t.connect()
    return t


def expected(meter: SimulatedMeter) -> dict[str, object]:
    return {name: meter.shown(name, value) for name, value in VALUES.items()}


def test_tcp_read_gives_the_meter_values_back_through_decode(tcp_server, meter, transports):
    t = connect(transports, tcp_bus(tcp_server.port))
    assert read_meter(t, 1, meter.profile) == expected(meter)
    assert tcp_server.stats[1].requests == len(meter.profile.blocks()) == 1


def test_rtu_read_over_a_pty_gives_the_meter_values_back(rtu_server, meter, transports):
    t = connect(transports, rtu_bus(rtu_server.port_path))
    assert read_meter(t, 1, meter.profile) == expected(meter)
    assert rtu_server.stats[1].requests == 1


def test_silent_unit_fails_as_timeout_after_the_bus_retries(tcp_server, meter, transports):
    t = connect(transports, tcp_bus(tcp_server.port, retries=2))
    meter.set_silent(True)
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    assert err.value.kind == "timeout"
    assert "3 tries" in str(err.value)
    assert tcp_server.stats[1].requests == 3
    meter.set_silent(False)
    assert t.read_registers(1, "holding", 0, 2) == meter.bank.read(1, "holding", 0, 2)


def test_silent_unit_on_rtu_times_out_and_the_line_stays_usable(rtu_server, meter, transports):
    t = connect(transports, rtu_bus(rtu_server.port_path, retries=1))
    meter.set_silent(True)
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    assert err.value.kind == "timeout"
    assert rtu_server.stats[1].requests == 2
    meter.set_silent(False)
    assert read_meter(t, 1, meter.profile) == expected(meter)


def test_undefined_register_fails_as_exception_02(tcp_server, transports):
    t = connect(transports, tcp_bus(tcp_server.port, retries=2))
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 200, 4)
    assert err.value.kind == "exception"
    assert err.value.exception_code == 2
    assert "illegal data address" in str(err.value)
    # A definite answer is not retried.
    assert tcp_server.stats[1].requests == 1


def test_exception_answer_over_rtu_carries_its_code(rtu_server, bank, transports):
    t = connect(transports, rtu_bus(rtu_server.port_path, retries=1))
    bank.set_faults(1, exception_code=4)
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    assert (err.value.kind, err.value.exception_code) == ("exception", 4)


def test_corrupted_crc_fails_as_crc_without_waiting_for_the_timeout(rtu_server, meter, transports):
    # A 30 s timeout: a bad frame must fail the request at once, not after the timeout.
    t = connect(transports, rtu_bus(rtu_server.port_path, retries=0, timeout_s=30.0))
    meter.corrupt_crc(1)
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    assert err.value.kind == "crc"
    assert rtu_server.stats[1].crc_corrupted == 1
    assert t.stats.crc_errors == 1
    assert read_meter(t, 1, meter.profile) == expected(meter)


def test_one_corrupted_reply_is_recovered_by_a_retry_and_still_counted(
    rtu_server, meter, transports
):
    t = connect(transports, rtu_bus(rtu_server.port_path, retries=1))
    meter.corrupt_crc(1)
    assert read_meter(t, 1, meter.profile) == expected(meter)
    assert rtu_server.stats[1].requests == 2
    assert t.stats.crc_errors == 1


def test_late_reply_is_not_taken_for_the_answer_to_the_next_request(
    rtu_server, meter, bank, transports
):
    t = connect(transports, rtu_bus(rtu_server.port_path, timeout_s=0.1))
    bank.set_faults(1, reply_delay_s=0.2)
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    assert err.value.kind == "timeout"
    bank.clear_faults(1)
    time.sleep(0.25)  # the late 17-register reply is now waiting in the pty
    assert t.read_registers(1, "holding", 2, 2) == bank.read(1, "holding", 2, 2)


def test_several_units_share_one_rtu_line(bank, transports):
    meters = [
        SimulatedMeter(bank, unit, PROFILES[pid], meter_id=f"MM-{unit}")
        for unit, pid in ((1, "delaval-mm27bc"), (2, "afimilk"), (3, "gea"))
    ]
    for i, m in enumerate(meters):
        m.set_values(yield_l=10.0 + i, flow_l_min=1.5 + i, conductivity_ms_cm=4.5 + i)
    with ModbusRtuServer(bank, baudrate=115200) as server:
        t = connect(transports, rtu_bus(server.port_path))
        meters[1].set_silent(True)
        for m in meters:
            if m.unit == 2:
                with pytest.raises(TransportError):
                    read_meter(t, m.unit, m.profile)
                continue
            got = read_meter(t, m.unit, m.profile)
            for name in ("yield_l", "flow_l_min", "conductivity_ms_cm"):
                assert got[name] == m.reported(name)
        meters[1].set_silent(False)
        assert read_meter(t, 2, meters[1].profile)["yield_l"] == 11.0
        assert {u: s.requests for u, s in server.stats.items()} == {1: 1, 2: 2, 3: 1}


def test_tcp_link_reconnects_with_backoff_after_the_server_restarts(bank, meter, transports):
    server = ModbusTcpServer(bank).start()
    port = server.port
    t = connect(transports, tcp_bus(port, reconnect_max_s=0.4))
    assert t.read_registers(1, "holding", 0, 2) == bank.read(1, "holding", 0, 2)
    server.stop()

    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 2)
    assert err.value.kind == "connection"
    delays = [t.reconnect_delay_s]
    assert delays == [0.1]  # the dropped link was retried at once, then backs off
    # While the backoff runs, a read fails at once without trying the network.
    with pytest.raises(TransportError, match="is down"):
        t.read_registers(1, "holding", 0, 2)
    assert t.reconnect_delay_s == 0.1
    while len(delays) < 4:
        time.sleep(t.reconnect_delay_s)
        with pytest.raises(TransportError) as err:
            t.read_registers(1, "holding", 0, 2)
        assert err.value.kind == "connection"
        delays.append(t.reconnect_delay_s)
    assert delays == [0.1, 0.2, 0.4, 0.4]  # doubling, capped at reconnect_max_s

    with ModbusTcpServer(bank, port=port):
        time.sleep(t.reconnect_delay_s)
        assert t.read_registers(1, "holding", 0, 2) == bank.read(1, "holding", 0, 2)
        assert t.stats.connects == 2
        assert t.reconnect_delay_s == 0.0


def test_unplugged_rtu_adapter_is_reopened_when_it_comes_back(
    bank, meter, transports, tmp_path: Path
):
    link = tmp_path / "ttyMETERS"
    server = ModbusRtuServer(bank, link=link, baudrate=115200).start()
    t = connect(transports, rtu_bus(str(link)))
    assert read_meter(t, 1, meter.profile) == expected(meter)
    server.stop()
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    assert err.value.kind == "connection"
    with ModbusRtuServer(bank, link=link, baudrate=115200):
        for _ in range(50):
            time.sleep(max(t.reconnect_delay_s, 0.05))
            try:
                got = read_meter(t, 1, meter.profile)
                break
            except TransportError as exc:
                assert exc.kind == "connection"
        else:
            pytest.fail("the transport never reopened the port")
    assert got == expected(meter)


def test_connect_to_a_closed_port_fails_as_connection(transports):
    server = ModbusTcpServer(RegisterBank()).start()
    port = server.port
    server.stop()
    t = open_transport(tcp_bus(port))
    assert isinstance(t, ModbusTransport)
    transports.append(t)
    with pytest.raises(TransportError) as err:
        t.connect()
    assert err.value.kind == "connection"
    assert f"127.0.0.1:{port}" in str(err.value)


def test_write_reaches_a_writable_register_and_a_read_only_one_is_refused(
    tcp_server, bank, transports, caplog
):
    bank.define(1, "holding", range(300, 302), writable=True)
    t = connect(transports, tcp_bus(tcp_server.port))
    with caplog.at_level(logging.INFO, logger="milkconsole.meters.transport"):
        t.write_registers(1, 300, [0x3F8C, 0xCCCD])
    assert bank.read(1, "holding", 300, 2) == [0x3F8C, 0xCCCD]
    assert any("300" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    with pytest.raises(TransportError) as err:
        t.write_registers(1, 0, [1])
    assert err.value.exception_code == 2


def test_write_over_rtu(rtu_server, bank, transports):
    bank.define(1, "holding", [400], writable=True)
    t = connect(transports, rtu_bus(rtu_server.port_path))
    t.write_registers(1, 400, [1234])
    assert bank.read(1, "holding", 400, 1) == [1234]


def test_interrupt_aborts_a_request_waiting_for_a_silent_meter(tcp_server, meter, transports):
    t = connect(transports, tcp_bus(tcp_server.port, timeout_s=30.0))
    meter.set_silent(True)
    timer = threading.Timer(0.2, t.interrupt)
    timer.start()
    with pytest.raises(TransportError) as err:
        t.read_registers(1, "holding", 0, 17)
    timer.join()
    assert err.value.kind == "connection"
    assert "interrupted" in str(err.value)


def test_a_second_thread_may_not_use_the_transport(tcp_server, transports):
    t = connect(transports, tcp_bus(tcp_server.port))
    errors: list[BaseException] = []

    def use() -> None:
        try:
            t.read_registers(1, "holding", 0, 2)
        except BaseException as exc:
            errors.append(exc)

    th = threading.Thread(target=use)
    th.start()
    th.join()
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)


def test_failures_do_not_reach_the_log_above_debug(tcp_server, meter, transports, caplog):
    """Failures are states: pymodbus's own ERROR lines for a silent unit are demoted."""
    t = connect(transports, tcp_bus(tcp_server.port, retries=1))
    meter.set_silent(True)
    with caplog.at_level(logging.DEBUG), pytest.raises(TransportError):
        t.read_registers(1, "holding", 0, 17)
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert any(r.name.startswith("pymodbus") for r in caplog.records)


def test_inter_frame_gap_follows_the_spec():
    assert inter_frame_gap_s(rtu_bus("/dev/null", baudrate=9600, parity="E")) == pytest.approx(
        3.5 * 11 / 9600
    )
    assert inter_frame_gap_s(rtu_bus("/dev/null", baudrate=19200, parity="N")) == pytest.approx(
        3.5 * 10 / 19200
    )
    assert inter_frame_gap_s(rtu_bus("/dev/null", baudrate=38400)) == 0.00175
    assert inter_frame_gap_s(rtu_bus("/dev/null", baudrate=115200)) == 0.00175


def test_requests_outside_modbus_limits_are_refused_before_sending(tcp_server, transports):
    t = connect(transports, tcp_bus(tcp_server.port))
    with pytest.raises(ValueError, match="126"):
        t.read_registers(1, "holding", 0, 126)
    with pytest.raises(ValueError, match="unit"):
        t.read_registers(0, "holding", 0, 1)
    with pytest.raises(ValueError, match="register"):
        t.read_registers(1, "coil", 0, 1)  # type: ignore[arg-type]
    assert tcp_server.stats == {}
