"""The simulated Modbus slave speaks standard Modbus TCP and RTU: checked with mbpoll (libmodbus),
pymodbus and raw bytes over real sockets and real ptys."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import serial
from pymodbus.client import ModbusSerialClient, ModbusTcpClient

from milkconsole.meters.decode import decode_reading
from milkconsole.meters.profiles import Profile, load_profiles
from simulators.meter import SimulatedMeter, fdx_b_code
from simulators.modbus.registers import RegisterBank
from simulators.modbus.rtu import ModbusRtuServer, crc16, crc_ok, with_crc
from simulators.modbus.tcp import ModbusTcpServer

TAG = f"{fdx_b_code(982, 123_456_789_012):016X}"


@pytest.fixture(scope="module")
def profiles() -> dict[str, Profile]:
    return load_profiles()


@pytest.fixture
def bank() -> RegisterBank:
    return RegisterBank()


@pytest.fixture
def delaval(bank: RegisterBank, profiles: dict[str, Profile]) -> SimulatedMeter:
    meter = SimulatedMeter(bank, 1, profiles["delaval-mm27bc"], meter_id="MM-01")
    meter.set_values(
        yield_l=12.5,
        flow_l_min=3.25,
        conductivity_ms_cm=5.125,
        temperature_c=37.5,
        session_time_s=321,
        rfid=TAG,
        status=1,
    )
    return meter


@pytest.fixture
def tcp(bank: RegisterBank) -> Iterator[ModbusTcpServer]:
    with ModbusTcpServer(bank) as server:
        yield server


@pytest.fixture
def rtu(bank: RegisterBank, tmp_path: Path) -> Iterator[ModbusRtuServer]:
    with ModbusRtuServer(bank, link=tmp_path / "ttyBUS") as server:
        yield server


def mbpoll(*args: str) -> dict[int, str]:
    out = subprocess.run(
        ["mbpoll", "-1", "-o", "1", *args], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return {int(m[1]): m[2] for m in re.finditer(r"^\[(\d+)\]:\s+(\S+)", out.stdout, re.M)}


def mbpoll_error(*args: str) -> str:
    out = subprocess.run(
        ["mbpoll", "-1", "-o", "0.3", *args], capture_output=True, text=True, timeout=20
    )
    assert out.returncode != 0
    return out.stdout + out.stderr


def tcp_exchange(port: int, unit: int, pdu: bytes, timeout: float = 1.0) -> bytes:
    """One raw MBAP request; the reply PDU."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">HHHB", 7, 0, len(pdu) + 1, unit) + pdu)
        head = s.recv(7, socket.MSG_WAITALL)
        tid, proto, length, reply_unit = struct.unpack(">HHHB", head)
        assert (tid, proto, reply_unit) == (7, 0, unit)
        return s.recv(length - 1, socket.MSG_WAITALL)


def read_pdu(address: int, count: int, fc: int = 3) -> bytes:
    return struct.pack(">BHH", fc, address, count)


def rtu_exchange(port: serial.Serial, frame: bytes, reply_len: int) -> bytes:
    port.reset_input_buffer()
    port.write(frame)
    return port.read(reply_len)


def expected_rfid_words() -> list[int]:
    return list(struct.unpack(">4H", int(TAG, 16).to_bytes(8, "big")))


def test_crc16_matches_the_modbus_check_value() -> None:
    assert crc16(b"123456789") == 0x4B37
    assert with_crc(bytes.fromhex("010300000002")).hex() == "010300000002c40b"


def test_mbpoll_reads_a_simulated_delaval_meter_over_tcp(
    delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    # mbpoll counts references from 1 by default: reference 1 is register 0.
    regs = mbpoll("-m", "tcp", "-p", str(tcp.port), "-a", "1", "-r", "1", "-c", "17", "-t", "4",
                  "127.0.0.1")  # fmt: skip
    assert len(regs) == 17
    assert [int(regs[r]) for r in (11, 12, 13, 14)] == expected_rfid_words()
    assert int(regs[15]) == 1  # status, bit 0: milking
    assert int(regs[9]) == 321  # session time
    assert int(regs[16]) == 450  # vacuum in tenths of kPa
    floats = mbpoll("-m", "tcp", "-p", str(tcp.port), "-a", "1", "-0", "-r", "0", "-c", "2",
                    "-t", "4:float", "-B", "127.0.0.1")  # fmt: skip
    assert float(floats[0]) == 12.5
    assert float(floats[2]) == 3.25


def test_mbpoll_reads_a_simulated_delaval_meter_over_rtu_on_a_pty_link(
    delaval: SimulatedMeter, rtu: ModbusRtuServer
) -> None:
    assert rtu.link is not None
    assert Path(rtu.link).resolve() == Path(rtu.port_path)
    common = ["-m", "rtu", "-b", "19200", "-P", "even", "-a", "1"]
    regs = mbpoll(*common, "-r", "1", "-c", "17", "-t", "4", str(rtu.link))
    assert [int(regs[r]) for r in (11, 12, 13, 14)] == expected_rfid_words()
    assert int(regs[15]) == 1
    floats = mbpoll(*common, "-0", "-r", "0", "-c", "4", "-t", "4:float", "-B", str(rtu.link))
    assert (float(floats[0]), float(floats[2])) == (12.5, 3.25)
    assert rtu.stats[1].replies == 2


def test_pymodbus_client_decodes_what_the_meter_was_set_to_over_tcp_and_rtu(
    delaval: SimulatedMeter, profiles: dict[str, Profile], tcp_and_rtu_clients: list[Any]
) -> None:
    profile = profiles["delaval-mm27bc"]
    (block,) = profile.blocks()
    for client in tcp_and_rtu_clients:
        rr = client.read_holding_registers(block.address, count=block.count, device_id=1)
        assert not rr.isError()
        reading, refusals = decode_reading(
            profile,
            {block: rr.registers},
            meter_id="MM-01",
            stall=1,
            t_mono=0.0,
            t_utc=datetime.now(UTC),
        )
        assert refusals == []
        assert reading.yield_l == 12.5
        assert reading.flow_l_min == 3.25
        assert reading.rfid == TAG
        assert reading.milking is True
        assert reading.session_time_s == 321
        assert reading.vacuum_kpa == pytest.approx(45.0)
        assert reading.pulsation_cpm == 60.0


@pytest.fixture
def tcp_and_rtu_clients(
    bank: RegisterBank, tmp_path: Path, tcp: ModbusTcpServer
) -> Iterator[list[Any]]:
    # pymodbus reconfigures the port right after opening it, which a pty refuses when the
    # only change asked for is parity: the RTU client runs 8N1 (see simulators/demo.py).
    with ModbusRtuServer(bank, link=tmp_path / "ttyN", parity="N") as server:
        tcp_client = ModbusTcpClient("127.0.0.1", port=tcp.port, timeout=1, retries=0)
        rtu_client = ModbusSerialClient(
            str(server.link), baudrate=19200, parity="N", timeout=1, retries=0
        )
        assert tcp_client.connect() and rtu_client.connect()
        yield [tcp_client, rtu_client]
        tcp_client.close()
        rtu_client.close()


def test_read_of_an_undefined_register_answers_illegal_data_address(
    delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    assert tcp_exchange(tcp.port, 1, read_pdu(0, 18)) == b"\x83\x02"  # one past the map
    assert tcp_exchange(tcp.port, 1, read_pdu(17, 1)) == b"\x83\x02"
    assert tcp_exchange(tcp.port, 1, read_pdu(0, 1, fc=4)) == b"\x84\x02"  # no input registers
    assert "Illegal data address" in mbpoll_error(
        "-m", "tcp", "-p", str(tcp.port), "-a", "1", "-r", "1", "-c", "18", "127.0.0.1"
    )
    assert tcp.stats[1].exceptions == 4


def test_afimilk_answers_the_reserved_gap_between_its_fields_but_not_past_its_map(
    bank: RegisterBank, profiles: dict[str, Profile], tcp: ModbusTcpServer
) -> None:
    SimulatedMeter(bank, 3, profiles["afimilk"], meter_id="MM-03")
    (block,) = profiles["afimilk"].blocks()
    reply = tcp_exchange(tcp.port, 3, read_pdu(block.address, block.count))
    assert reply[:2] == bytes((3, 2 * block.count))
    assert tcp_exchange(tcp.port, 3, read_pdu(115, 5)) == b"\x03\x0a" + bytes(10)
    assert tcp_exchange(tcp.port, 3, read_pdu(99, 1)) == b"\x83\x02"
    assert tcp_exchange(tcp.port, 3, read_pdu(124, 1)) == b"\x83\x02"


def test_unknown_function_answers_illegal_function_over_tcp_and_rtu(
    delaval: SimulatedMeter, tcp: ModbusTcpServer, rtu: ModbusRtuServer
) -> None:
    assert tcp_exchange(tcp.port, 1, read_pdu(0, 1, fc=1)) == b"\x81\x01"  # read coils
    assert tcp_exchange(tcp.port, 1, b"\x2b\x0e\x01\x00") == b"\xab\x01"
    with serial.Serial(str(rtu.link), 19200, parity="E", timeout=1) as port:
        # 0x11 (report server id) has no length rule: the frame ends on silence.
        reply = rtu_exchange(port, with_crc(b"\x01\x11"), 5)
        assert crc_ok(reply)
        assert reply[:3] == b"\x01\x91\x01"
        reply = rtu_exchange(port, with_crc(b"\x01" + read_pdu(0, 1, fc=2)), 5)
        assert reply[:3] == b"\x01\x82\x01"


def test_read_of_more_than_125_registers_answers_illegal_data_value(
    bank: RegisterBank, tcp: ModbusTcpServer
) -> None:
    bank.define(5, "input", range(200))
    assert tcp_exchange(tcp.port, 5, read_pdu(0, 125, fc=4))[:2] == b"\x04\xfa"
    assert tcp_exchange(tcp.port, 5, read_pdu(0, 126, fc=4)) == b"\x84\x03"
    assert tcp_exchange(tcp.port, 5, read_pdu(0, 0, fc=4)) == b"\x84\x03"


def test_master_writes_reach_only_registers_the_unit_marks_writable(
    bank: RegisterBank, delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    bank.define(1, "holding", [200, 201], writable=True)
    assert tcp_exchange(tcp.port, 1, struct.pack(">BHH", 6, 200, 1234)) == struct.pack(
        ">BHH", 6, 200, 1234
    )
    assert tcp_exchange(tcp.port, 1, struct.pack(">BHHBHH", 16, 200, 2, 4, 7, 8)) == (
        struct.pack(">BHH", 16, 200, 2)
    )
    assert bank.read(1, "holding", 200, 2) == [7, 8]
    # The measured values are read-only, and a write running past the writable range fails whole.
    assert tcp_exchange(tcp.port, 1, struct.pack(">BHH", 6, 0, 1)) == b"\x86\x02"
    assert tcp_exchange(tcp.port, 1, struct.pack(">BHHBHHH", 16, 200, 3, 6, 1, 2, 3)) == (
        b"\x90\x02"
    )
    assert bank.read(1, "holding", 200, 2) == [7, 8]
    assert delaval.reported("yield_l") == 12.5


def test_tcp_request_for_a_unit_the_server_lacks_answers_gateway_target_failed(
    delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    assert tcp_exchange(tcp.port, 9, read_pdu(0, 1)) == b"\x83\x0b"


def test_exception_code_fault_answers_every_request_with_it(
    bank: RegisterBank, delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    bank.set_faults(1, exception_code=0x06)  # server device busy
    assert tcp_exchange(tcp.port, 1, read_pdu(0, 2)) == b"\x83\x06"
    bank.set_faults(1, exception_code=None)
    assert tcp_exchange(tcp.port, 1, read_pdu(0, 2))[:2] == b"\x03\x04"


def test_corrupt_crc_fault_makes_the_client_see_crc_errors_for_n_replies(
    delaval: SimulatedMeter, rtu: ModbusRtuServer
) -> None:
    delaval.corrupt_crc(2)
    request = with_crc(b"\x01" + read_pdu(0, 2))
    with serial.Serial(str(rtu.link), 19200, parity="E", timeout=1) as port:
        first = rtu_exchange(port, request, 9)
        second = rtu_exchange(port, request, 9)
        third = rtu_exchange(port, request, 9)
    assert len(first) == len(second) == 9
    assert not crc_ok(first) and not crc_ok(second)
    assert first[:7] == third[:7] == b"\x01\x03\x04" + struct.pack(">f", 12.5)
    assert crc_ok(third)
    assert rtu.stats[1].crc_corrupted == 2
    delaval.corrupt_crc(1)
    assert "Invalid CRC" in mbpoll_error(
        "-m", "rtu", "-b", "19200", "-P", "even", "-a", "1", "-r", "1", str(rtu.link)
    )


def test_silent_unit_never_replies_so_the_client_times_out(
    delaval: SimulatedMeter, tcp: ModbusTcpServer, rtu: ModbusRtuServer
) -> None:
    delaval.set_silent(True)
    with pytest.raises(TimeoutError):
        tcp_exchange(tcp.port, 1, read_pdu(0, 2), timeout=0.3)
    request = with_crc(b"\x01" + read_pdu(0, 2))
    with serial.Serial(str(rtu.link), 19200, parity="E", timeout=0.3) as port:
        assert rtu_exchange(port, request, 9) == b""
        delaval.set_silent(False)
        assert crc_ok(rtu_exchange(port, request, 9))
    assert tcp_exchange(tcp.port, 1, read_pdu(0, 2))[:2] == b"\x03\x04"
    assert rtu.stats[1].requests == 2 and rtu.stats[1].replies == 1


def test_reboot_goes_silent_then_answers_with_counters_at_zero(
    delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    delaval.reboot(0.4)
    with pytest.raises(TimeoutError):
        tcp_exchange(tcp.port, 1, read_pdu(0, 2), timeout=0.1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            reply = tcp_exchange(tcp.port, 1, read_pdu(0, 17), timeout=0.1)
            break
        except TimeoutError:
            continue
    else:
        pytest.fail("meter never came back from its reboot")
    values = struct.unpack(">17H", reply[2:])
    assert values[0:4] == (0, 0, 0, 0)  # yield and flow
    assert values[8] == 0  # session time
    assert list(values[10:14]) == expected_rfid_words()  # the tag reader kept its read


def test_units_sharing_one_pty_bus_answer_only_their_own_id(
    bank: RegisterBank, profiles: dict[str, Profile], rtu: ModbusRtuServer
) -> None:
    for unit in (1, 2, 3):
        meter = SimulatedMeter(bank, unit, profiles["delaval-mm27bc"], meter_id=f"MM-{unit}")
        meter.set_values(yield_l=float(unit))
    with serial.Serial(str(rtu.link), 19200, parity="E", timeout=0.3) as port:
        for unit in (2, 3, 1):
            reply = rtu_exchange(port, with_crc(bytes((unit,)) + read_pdu(0, 2)), 9)
            assert crc_ok(reply) and reply[0] == unit
            assert struct.unpack(">f", reply[3:7])[0] == float(unit)
        assert rtu_exchange(port, with_crc(b"\x09" + read_pdu(0, 2)), 9) == b""
        assert crc_ok(rtu_exchange(port, with_crc(b"\x02" + read_pdu(0, 2)), 9))
    assert set(rtu.stats) == {1, 2, 3}
    assert rtu.ignored_frames == 1


def test_request_with_a_bad_crc_is_dropped_and_the_next_one_answered(
    delaval: SimulatedMeter, rtu: ModbusRtuServer
) -> None:
    good = with_crc(b"\x01" + read_pdu(0, 2))
    bad = good[:-1] + bytes((good[-1] ^ 0xFF,))
    with serial.Serial(str(rtu.link), 19200, parity="E", timeout=0.3) as port:
        assert rtu_exchange(port, bad, 9) == b""
        assert crc_ok(rtu_exchange(port, good, 9))
    assert rtu.bad_frames == 1
    assert rtu.stats[1].requests == 1


def test_broadcast_write_changes_every_unit_that_accepts_it_without_a_reply(
    bank: RegisterBank, rtu: ModbusRtuServer
) -> None:
    for unit in (1, 2):
        bank.define(unit, "holding", [50], writable=True)
    bank.define(3, "holding", [50])  # read-only there
    with serial.Serial(str(rtu.link), 19200, parity="E", timeout=0.3) as port:
        assert rtu_exchange(port, with_crc(b"\x00" + struct.pack(">BHH", 6, 50, 99)), 8) == b""
        reply = rtu_exchange(port, with_crc(b"\x02" + read_pdu(50, 1)), 7)
    assert reply[:5] == b"\x02\x03\x02\x00\x63"
    assert [bank.read(u, "holding", 50, 1)[0] for u in (1, 2, 3)] == [99, 99, 0]


def test_wire_time_holds_each_reply_at_least_its_time_on_the_line(
    bank: RegisterBank, tmp_path: Path
) -> None:
    bank.define(1, "holding", range(125))
    with ModbusRtuServer(bank, link=tmp_path / "ttyW", baudrate=9600, wire_time=True) as server:
        request = with_crc(b"\x01" + read_pdu(0, 125))
        reply_len = 5 + 250
        # Request on the wire, the 3.5-character gap, then the reply's own wire time.
        minimum = (len(request) + 3.5 + reply_len) * server.char_time_s
        assert server.char_time_s == 11 / 9600
        with serial.Serial(str(server.link), 9600, parity="E", timeout=2) as port:
            for _ in range(3):
                port.reset_input_buffer()
                t0 = time.monotonic()
                port.write(request)
                reply = port.read(reply_len)
                elapsed = time.monotonic() - t0
                assert crc_ok(reply)
                assert elapsed >= minimum


def test_tcp_server_serves_many_concurrent_clients(
    delaval: SimulatedMeter, tcp: ModbusTcpServer
) -> None:
    errors: list[str] = []

    def client() -> None:
        with socket.create_connection(("127.0.0.1", tcp.port), timeout=5) as s:
            for tid in range(50):
                s.sendall(struct.pack(">HHHB", tid, 0, 6, 1) + read_pdu(0, 17))
                head = s.recv(7, socket.MSG_WAITALL)
                body = s.recv(struct.unpack(">HHHB", head)[2] - 1, socket.MSG_WAITALL)
                if struct.unpack(">H", head[:2])[0] != tid or body[:2] != b"\x03\x22":
                    errors.append(f"bad reply {head.hex()} {body[:4].hex()}")

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert tcp.stats[1].replies == 20 * 50


def test_stopping_the_rtu_server_removes_its_link_and_frees_the_tcp_port(
    bank: RegisterBank, tmp_path: Path
) -> None:
    link = tmp_path / "ttyGONE"
    link.symlink_to("/nonexistent")  # a stale link from a crashed run is replaced
    server = ModbusRtuServer(bank, link=link).start()
    assert link.is_symlink() and Path(link).resolve() == Path(server.port_path)
    server.stop()
    assert not link.exists() and not link.is_symlink()
    tcp = ModbusTcpServer(bank).start()
    port = tcp.port
    tcp.stop()
    with ModbusTcpServer(bank, port=port) as again:
        assert again.port == port


def test_rtu_server_refuses_to_replace_a_file_that_is_not_a_link(
    bank: RegisterBank, tmp_path: Path
) -> None:
    real = tmp_path / "ttyUSB0"
    real.write_text("not a link")
    with pytest.raises(FileExistsError):
        ModbusRtuServer(bank, link=real).start()
    assert real.read_text() == "not a link"


def test_nan_in_a_float_register_is_refused_by_the_decoder(
    delaval: SimulatedMeter, profiles: dict[str, Profile]
) -> None:
    delaval.set_nan("conductivity_ms_cm")
    assert delaval.reported("conductivity_ms_cm") is None
    raw = delaval.raw("conductivity_ms_cm")
    assert isinstance(raw, float) and raw != raw
    delaval.set_values(conductivity_ms_cm=5.5)
    assert delaval.reported("conductivity_ms_cm") == 5.5
    with pytest.raises(ValueError):
        delaval.set_nan("status")


def test_meter_error_scales_reported_yield_and_flow(
    bank: RegisterBank, profiles: dict[str, Profile]
) -> None:
    meter = SimulatedMeter(bank, 4, profiles["gea"], meter_id="MM-04", error_pct=4.0)
    meter.set_values(yield_l=10.0, flow_l_min=2.0, conductivity_ms_cm=5.0, not_a_field=1)
    assert meter.reported("yield_l") == pytest.approx(10.4, abs=1e-5)
    assert meter.reported("flow_l_min") == pytest.approx(2.08, abs=1e-6)
    assert meter.reported("conductivity_ms_cm") == 5.0
    meter.vacuum_kpa = 38.0
    meter.pulsation_cpm = 72.0
    assert meter.reported("vacuum_kpa") == pytest.approx(38.0)
    assert meter.reported("pulsation_cpm") == 72.0


def test_rfid_is_hex16_on_delaval_and_gea_and_ascii_on_afimilk_and_blank_when_missed(
    bank: RegisterBank, profiles: dict[str, Profile]
) -> None:
    code = fdx_b_code(982, 1234)
    meters = {
        pid: SimulatedMeter(bank, i + 1, profiles[pid], meter_id=pid)
        for i, pid in enumerate(("delaval-mm27bc", "gea", "afimilk"))
    }
    for meter in meters.values():
        meter.set_values(rfid=meter.tag_for(code, 1234))
    assert meters["delaval-mm27bc"].reported("rfid") == f"{code:016X}"
    assert meters["gea"].reported("rfid") == f"{code:016X}"
    assert meters["afimilk"].reported("rfid") == "C0001234"
    for meter in meters.values():
        meter.set_values(rfid=None)
        assert meter.reported("rfid") is None
    assert bank.read(3, "holding", 120, 4) == [0, 0, 0, 0]
