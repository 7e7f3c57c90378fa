"""Parlour config: the issue's example loads; every bad file is refused naming file and key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from milkconsole.config import load_config
from milkconsole.errors import ConfigError

GOOD = """
[parlour]
name = "Parlour A"
farm_code = "FARM1"
poll_interval_s = 1.0

[[bus]]
id = "rs485-1"
transport = "rtu"
port = "/dev/ttyUSB0"
baudrate = 19200
parity = "E"
stopbits = 1
timeout_s = 0.3

[[bus]]
id = "lan"
transport = "tcp"
host = "10.0.0.5"
port = 502

[[meter]]
id = "MM-01"
bus = "rs485-1"
unit = 1
profile = "delaval-mm27bc"
stall = 1

[[meter]]
id = "AF-02"
bus = "lan"
unit = 1
profile = "afimilk"
stall = 2
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "parlour.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_issue_example_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.name == "Parlour A" and cfg.farm_code == "FARM1"
    rtu, tcp = cfg.buses
    assert (rtu.transport, rtu.port, rtu.baudrate, rtu.parity) == (
        "rtu",
        "/dev/ttyUSB0",
        19200,
        "E",
    )
    assert rtu.char_time_s == pytest.approx(11 / 19200)
    assert (tcp.host, tcp.port) == ("10.0.0.5", 502)
    assert [m.id for m in cfg.meters_on("rs485-1")] == ["MM-01"]
    assert cfg.meters[1].profile == "afimilk"


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        ('name = "Parlour A"', 'name = "Parlour A"\ncolour = "red"', "parlour.colour"),
        ("stall = 2", "stall = 2\nspeed = 3", "meter[1].speed"),
        (
            'id = "AF-02"\nbus = "lan"\nunit = 1',
            'id = "AF-02"\nbus = "rs485-1"\nunit = 1',
            "meter[1].unit",
        ),
        ('profile = "afimilk"', 'profile = "nosuch"', "meter[1].profile"),
        ('port = "/dev/ttyUSB0"', 'port = "ttyUSB0 please"', "bus[0].port"),
        ("baudrate = 19200", "baudrate = 12345", "bus[0].baudrate"),
        ('parity = "E"', 'parity = "X"', "bus[0].parity"),
        ("port = 502", 'port = "502"', "bus[1].port"),
        ('bus = "lan"', 'bus = "wifi"', "meter[1].bus"),
        ("stall = 2", "stall = 1", "meter[1].stall"),
        ('id = "AF-02"', 'id = "MM-01"', "meter[1].id"),
        ("poll_interval_s = 1.0", "poll_interval_s = -1", "parlour.poll_interval_s"),
    ],
)
def test_bad_config_is_refused_naming_file_and_key(
    tmp_path: Path, old: str, new: str, key: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == key
    assert str(err.value).startswith(f"{path}: {key}: ")


def test_invalid_toml_is_refused_with_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "[parlour\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_cli_exits_2_and_names_file_and_key_for_a_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('unit = 1\nprofile = "afimilk"', 'unit = 1\nprofile = "x"'))
    proc = subprocess.run(
        [sys.executable, "-m", "milkconsole", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{path}: meter[1].profile: unknown profile 'x'" in proc.stderr


def test_cli_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "milkconsole", "check-config", str(write(tmp_path, GOOD))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 meters on 2 buses" in proc.stdout


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("[health]\ncolour = 1\n", "health.colour"),
        ("[health.grades]\nfat_a_pct = 'lots'\n", "health.grades.fat_a_pct"),
        (
            '[odoo]\nurl = "https://odoo.example.com"\ndatabase = "farm"\nlogin = "x"\nspeed = 1\n',
            "odoo.speed",
        ),
        ("[separation]\ncolostrum = 8\n", "separation.colostrum"),
        ("[separation]\ncolostrum_milkings = 'eight'\n", "separation.colostrum_milkings"),
        ("[separation]\ncolostrum_milkings = 99\n", "separation"),
    ],
)
def test_sections_other_modules_own_are_checked_at_load(
    tmp_path: Path, section: str, key: str
) -> None:
    path = write(tmp_path, GOOD + "\n" + section)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == key


def test_the_colostrum_period_is_read_from_separation(tmp_path: Path) -> None:
    from milkconsole.herd.separation import SeparationRules

    cfg = load_config(write(tmp_path, GOOD + "\n[separation]\ncolostrum_milkings = 6\n"))
    assert SeparationRules.from_parlour(cfg).colostrum_milkings == 6
    assert SeparationRules.from_parlour(load_config(write(tmp_path, GOOD))).colostrum_milkings == 8
