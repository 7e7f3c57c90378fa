"""The [web] section: defaults, plain HTTP only when asked, and every bad key refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from milkconsole.config import load_config
from milkconsole.errors import ConfigError
from milkconsole.web.settings import WebSettings, parse_web_settings
from simulators.demo import make_demo_config


def test_an_empty_section_serves_https_on_every_address_with_defaults():
    s = parse_web_settings({}, "parlour.toml")
    assert s == WebSettings()
    assert (s.host, s.port, s.tls, s.scheme) == ("0.0.0.0", 8443, True, "https")
    assert s.cert_dir_for(Path("/data/milkconsole.sqlite")) == Path("/data/web-tls")


def test_plain_http_only_when_the_file_says_so_and_then_port_8080():
    s = parse_web_settings({"tls": False}, "parlour.toml")
    assert (s.tls, s.port, s.scheme) == (False, 8080, "http")


def test_every_key_is_read(tmp_path):
    s = parse_web_settings(
        {
            "host": "192.168.1.20",
            "port": 9000,
            "tls": True,
            "url_host": "parlour-pc.local",
            "cert_dir": "certs",
            "max_clients": 25,
            "allow_acknowledge": False,
        },
        str(tmp_path / "parlour.toml"),
    )
    assert s.host == "192.168.1.20" and s.port == 9000 and s.url_host == "parlour-pc.local"
    assert s.cert_dir == tmp_path / "certs"  # relative to the config file
    assert s.max_clients == 25 and s.allow_acknowledge is False


@pytest.mark.parametrize(
    ("section", "key", "words"),
    [
        ({"prot": 80}, "web.prot", "unknown key"),
        ({"port": 70000}, "web.port", "integer from 0 to 65535"),
        ({"port": "8443"}, "web.port", "integer"),
        ({"tls": "yes"}, "web.tls", "true or false"),
        ({"host": "not a host!"}, "web.host", "IP address or a host name"),
        ({"url_host": ""}, "web.url_host", "IP address or a host name"),
        ({"max_clients": 0}, "web.max_clients", "from 1 to 1000"),
        ({"allow_acknowledge": 1}, "web.allow_acknowledge", "true or false"),
        ({"cert_dir": ""}, "web.cert_dir", "directory path"),
    ],
)
def test_a_bad_value_names_the_file_and_the_key(section, key, words):
    with pytest.raises(ConfigError) as refused:
        parse_web_settings(section, "farm/parlour.toml")
    assert refused.value.source == "farm/parlour.toml"
    assert refused.value.key == key
    assert words in str(refused.value)


def test_a_cert_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "certs").write_text("not a directory")
    with pytest.raises(ConfigError, match=r"web\.cert_dir: .* is not a directory"):
        parse_web_settings({"cert_dir": "certs"}, str(tmp_path / "parlour.toml"))


def test_the_whole_file_is_refused_at_load_when_web_is_bad(tmp_path):
    path = make_demo_config(tmp_path, stalls=4)
    path.write_text(path.read_text() + '\n[web]\ntls = "no"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert str(path) in str(refused.value) and "web.tls" in str(refused.value)


def test_a_good_section_is_kept_for_the_runtime(tmp_path):
    path = make_demo_config(tmp_path, stalls=4)
    path.write_text(path.read_text() + "\n[web]\nport = 8443\n", encoding="utf-8")
    assert load_config(path).extra["web"] == {"port": 8443}
