"""`[mqtt]` in the parlour config: validated at load, every refusal naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from milkconsole.config import load_config, with_sections_of
from milkconsole.errors import ConfigError
from milkconsole.mqtt.settings import load_mqtt_settings, parse_mqtt_settings
from simulators.demo import make_demo_config

PARLOUR = """
[parlour]
name = "Parlour A"
farm_code = "FARM1"

[[bus]]
id = "lan"
transport = "tcp"
host = "10.0.0.5"
port = 502

[[meter]]
id = "{meter}"
bus = "lan"
unit = 1
profile = "gea"
stall = 1
"""


def config_with(tmp_path: Path, mqtt: str, meter: str = "M01") -> Path:
    path = tmp_path / "parlour.toml"
    path.write_text(PARLOUR.replace("{meter}", meter) + "\n[mqtt]\n" + mqtt, encoding="utf-8")
    return path


def refused(tmp_path: Path, mqtt: str, meter: str = "M01") -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_config(config_with(tmp_path, mqtt, meter))
    assert str(tmp_path / "parlour.toml") in str(err.value)
    return err.value


def test_a_plain_section_loads_with_the_parlours_farm_code_and_port_1883(tmp_path: Path) -> None:
    cfg = load_config(config_with(tmp_path, 'host = "broker.farm.lan"\n'))
    s = parse_mqtt_settings(cfg.extra["mqtt"], cfg.source, cfg.farm_code)
    assert (s.host, s.port, s.tls, s.verify_tls, s.farm_code) == (
        "broker.farm.lan",
        1883,
        False,
        True,
        "FARM1",
    )
    assert s.client_id.startswith("milkconsole-FARM1-")
    assert s.topic("M01", "events") == "dairy/FARM1/milk_meters/M01/events"


def test_a_ca_file_turns_tls_on_with_port_8883_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "farm-ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    path = config_with(
        tmp_path, 'host = "broker.farm.lan"\nca_file = "farm-ca.pem"\nusername = "parlour"\n'
    )
    s = load_mqtt_settings(path)
    assert s is not None
    assert (s.tls, s.port, s.ca_file) == (True, 8883, tmp_path / "farm-ca.pem")
    assert s.account == "parlour@broker.farm.lan:8883"


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("port = 1883\n", "mqtt.host", "host name"),
        ('host = "mqtt://broker"\n', "mqtt.host", "not a URL"),
        ('host = "b"\npassword = "x"\n', "mqtt.password", "mqtt login"),
        ('host = "b"\nport = 70000\n', "mqtt.port", "1 to 65535"),
        ('host = "b"\ntls = "yes"\n', "mqtt.tls", "true or false"),
        ('host = "b"\nverify_tls = 0\n', "mqtt.verify_tls", "true or false"),
        ('host = "b"\nca_file = "missing.pem"\n', "mqtt.ca_file", "is not a file"),
        ('host = "b"\nkeepalive_s = 1\n', "mqtt.keepalive_s", "5 to 3600"),
        ('host = "b"\nfarm_code = "a/b"\n', "mqtt.farm_code", "letters, digits"),
        ('host = "b"\nclient_id = "has space"\n', "mqtt.client_id", "letters, digits"),
        ('host = "b"\nqos = 2\n', "mqtt.qos", "unknown key"),
        ('host = "b"\nusername = ""\n', "mqtt.username", "non-empty"),
    ],
)
def test_a_bad_key_is_refused_naming_it(tmp_path: Path, text: str, key: str, words: str) -> None:
    err = refused(tmp_path, text)
    assert err.key == key
    assert words in err.problem


def test_a_password_over_plain_tcp_to_another_host_is_refused_unless_allowed(
    tmp_path: Path,
) -> None:
    err = refused(tmp_path, 'host = "10.0.0.9"\nusername = "parlour"\n')
    assert err.key == "mqtt.tls" and "readable" in err.problem
    # This machine's own broker, or a farm that says it accepts it, is fine.
    load_config(config_with(tmp_path, 'host = "127.0.0.1"\nusername = "parlour"\n'))
    load_config(
        config_with(
            tmp_path,
            'host = "10.0.0.9"\nusername = "parlour"\nallow_plaintext_password = true\n',
        )
    )


def test_a_meter_id_that_cannot_be_a_topic_level_is_refused(tmp_path: Path) -> None:
    err = refused(tmp_path, 'host = "b"\n', meter="stall/1")
    assert "'/'" in err.problem and "stall/1" in err.problem
    err = refused(tmp_path, 'host = "b"\n', meter="M+1")
    assert "'+'" in err.problem


def test_the_demo_takes_the_mqtt_section_of_a_farms_config(tmp_path: Path) -> None:
    demo = load_config(make_demo_config(tmp_path / "demo", stalls=4))
    farm = tmp_path / "farm.toml"
    farm.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 1884\n', encoding="utf-8")
    merged = with_sections_of(demo, farm)
    assert merged.extra["mqtt"] == {"host": "127.0.0.1", "port": 1884}
    farm.write_text('[mqtt]\nhost = "127.0.0.1"\nport = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"mqtt\.port"):
        with_sections_of(demo, farm)
