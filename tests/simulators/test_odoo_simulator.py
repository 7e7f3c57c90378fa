"""The Odoo simulator speaks Odoo's wire protocols over real HTTP, with Odoo's errors and faults.

Raw requests check the shapes (what a real Odoo sends); the odoorpc-based and JSON-2 clients
check that the clients the sync uses are served exactly what they expect.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from milkconsole.sync.client import (
    OdooAuthError,
    OdooRefused,
    OdooUnavailable,
    probe_version,
)
from milkconsole.sync.odoo_json2 import Json2Client
from milkconsole.sync.odoo_rpc import OdooRpcClient
from milkconsole.sync.settings import OdooSettings
from simulators.odoo.server import OdooSimulator


def settings_for(sim: OdooSimulator, **changes: Any) -> OdooSettings:
    values: dict[str, Any] = {
        "url": sim.url,
        "database": sim.database,
        "login": "admin",
        "timeout_s": 5.0,
    }
    values.update(changes)
    return OdooSettings(**values)


def jsonrpc(url: str, path: str, params: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"jsonrpc": "2.0", "method": "call", "params": params, "id": 7}).encode()
    req = urllib.request.Request(
        url + path, data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200
        return json.loads(resp.read())


def execute_kw(sim: OdooSimulator, model: str, method: str, args: list, kwargs: dict | None = None):
    return jsonrpc(
        sim.url,
        "/jsonrpc",
        {
            "service": "object",
            "method": "execute_kw",
            "args": ["farm", 2, "admin", model, method, args, kwargs or {}],
        },
    )


def json2(
    sim: OdooSimulator, model: str, method: str, body: dict[str, Any], key: str | None = None
) -> tuple[int, Any]:
    req = urllib.request.Request(
        f"{sim.url}/json/2/{model}/{method}",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"bearer {key or sim.api_key}",
            "X-Odoo-Database": "farm",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def with_a_meter(sim: OdooSimulator) -> OdooSimulator:
    """A fresh simulator with one registered milk meter (a session requires one): id 1."""
    [device] = sim.seed_devices(["M01"])
    assert sim.create("iot.milk_meter", {"device_id": device, "manufacturer": "gea"}) == [1]
    return sim


@pytest.fixture
def sim() -> Iterator[OdooSimulator]:
    with OdooSimulator(version="17.0") as s:
        yield with_a_meter(s)


@pytest.fixture
def sim19() -> Iterator[OdooSimulator]:
    with OdooSimulator(version="19.0") as s:
        yield with_a_meter(s)


def session_vals(key: str, **more: Any) -> dict[str, Any]:
    return {"name": key, "start_time": "2025-03-01 05:10:00", "meter_id": 1, **more}


def test_version_info_answers_what_odoorpc_reads_first(sim):
    reply = jsonrpc(sim.url, "/web/webclient/version_info", {})
    assert reply["id"] == 7
    assert reply["result"]["server_version"] == "17.0"
    assert reply["result"]["server_version_info"][0] == 17
    assert probe_version(settings_for(sim)).major == 17


def test_odoorpc_logs_in_creates_a_list_in_one_call_and_reads_many2one_as_id_and_name(sim):
    [cow] = sim.seed_herd(1)
    client = OdooRpcClient(settings_for(sim), "admin")
    ids = client.create(
        "milk.session", [session_vals("K1", animal_id=cow), session_vals("K2", total_yield=11.5)]
    )
    assert len(ids) == 2
    assert sim.calls[("milk.session", "create")] == 1
    rows = client.search_read(
        "milk.session", [["name", "in", ["K1", "K2"]]], ["name", "animal_id", "total_yield"]
    )
    by_key = {r["name"]: r for r in rows}
    assert by_key["K1"]["animal_id"] == [cow, "1"]
    assert by_key["K2"]["animal_id"] is False
    assert by_key["K2"]["total_yield"] == 11.5


def test_common_login_returns_false_for_a_wrong_password_and_odoorpc_client_says_so(sim):
    reply = jsonrpc(
        sim.url,
        "/jsonrpc",
        {"service": "common", "method": "login", "args": ["farm", "admin", "x"]},
    )
    assert reply["result"] is False
    with pytest.raises(OdooAuthError, match="wrong login or password"):
        OdooRpcClient(settings_for(sim), "not-the-password")


def test_the_api_key_also_works_as_the_jsonrpc_password_like_a_real_odoo(sim):
    client = OdooRpcClient(settings_for(sim), sim.api_key)
    assert client.search_read("farm.animal", [], ["name"]) == []


def test_a_changed_password_makes_execute_kw_fail_with_access_denied(sim):
    client = OdooRpcClient(settings_for(sim), "admin")
    sim.set_password("rotated")
    reply = execute_kw(sim, "farm.animal", "search", [[]])
    assert reply["error"]["data"]["name"] == "odoo.exceptions.AccessDenied"
    with pytest.raises(OdooAuthError):
        client.search_read("farm.animal", [], ["name"])


def test_one_duplicate_key_fails_the_whole_batch_with_odoo_error_shape(sim):
    execute_kw(sim, "milk.session", "create", [[session_vals("K1")]])
    reply = execute_kw(
        sim,
        "milk.session",
        "create",
        [[session_vals("K2"), session_vals("K1"), session_vals("K3")]],
    )
    err = reply["error"]
    assert reply["id"] == 7 and reply["jsonrpc"] == "2.0"
    assert err["code"] == 200 and err["message"] == "Odoo Server Error"
    assert err["data"]["name"] == "odoo.exceptions.ValidationError"
    assert "must be unique" in err["data"]["message"]
    assert err["data"]["debug"].startswith("Traceback")
    assert sim.count("milk.session") == 1  # K2 did not land either


def test_datetimes_are_odoo_utc_strings_and_iso_with_t_is_refused(sim):
    client = OdooRpcClient(settings_for(sim), "admin")
    [sid] = client.create("milk.session", [session_vals("K1")])
    [row] = client.search_read("milk.session", [["id", "=", sid]], ["start_time", "write_date"])
    assert row["start_time"] == "2025-03-01 05:10:00"
    assert len(row["write_date"]) == 19 and row["write_date"][10] == " "
    with pytest.raises(OdooRefused, match="does not match format"):
        client.create("milk.session", [session_vals("K2", start_time="2025-03-01T05:10:00Z")])


def test_a_selection_value_odoo_does_not_know_is_refused(sim):
    client = OdooRpcClient(settings_for(sim), "admin")
    with pytest.raises(OdooRefused, match=r"Wrong value for milk\.session\.state"):
        client.create("milk.session", [session_vals("K1", state="milking")])


def test_unknown_model_and_field_give_odoo_errors(sim):
    reply = execute_kw(sim, "no.such.model", "search", [[]])
    assert reply["error"]["data"]["message"] == "Object no.such.model doesn't exist"
    reply = execute_kw(sim, "milk.session", "create", [[session_vals("K1", colour="red")]])
    assert "Invalid field 'colour'" in reply["error"]["data"]["message"]


def test_archived_records_are_hidden_unless_active_test_is_off(sim):
    [a, b] = sim.seed_herd(2)
    sim.write("farm.animal", [b], {"active": False})
    client = OdooRpcClient(settings_for(sim), "admin")
    assert [r["id"] for r in client.search_read("farm.animal", [], ["name"])] == [a]
    everyone = client.search_read("farm.animal", [], ["name"], context={"active_test": False})
    assert sorted(r["id"] for r in everyone) == [a, b]


def test_domains_with_prefix_or_and_page_by_write_date_then_id(sim):
    ids = sim.seed_herd(5)
    client = OdooRpcClient(settings_for(sim), "admin")
    [third] = client.search_read("farm.animal", [["id", "=", ids[2]]], ["write_date"])
    wd = third["write_date"]
    after = client.search_read(
        "farm.animal",
        ["|", ["write_date", ">", wd], "&", ["write_date", "=", wd], ["id", ">", ids[2]]],
        ["name"],
        order="write_date asc, id asc",
    )
    assert [r["id"] for r in after] == ids[3:]


def test_json2_uses_bearer_key_named_arguments_and_returns_plain_results(sim19):
    status, ids = json2(sim19, "milk.session", "create", {"vals_list": [session_vals("K1")]})
    assert status == 200 and isinstance(ids, list) and len(ids) == 1
    status, rows = json2(
        sim19,
        "milk.session",
        "search_read",
        {"domain": [["name", "=", "K1"]], "fields": ["name"], "context": {"lang": "en_US"}},
    )
    assert status == 200 and rows == [{"id": ids[0], "name": "K1"}]
    status, ok = json2(sim19, "milk.session", "write", {"ids": ids, "vals": {"total_yield": 9.0}})
    assert status == 200 and ok is True


def test_json2_refuses_a_wrong_key_with_401_and_odoo_error_object(sim19):
    status, err = json2(sim19, "farm.animal", "search", {"domain": []}, key="wrong")
    assert status == 401
    assert err["name"] == "werkzeug.exceptions.Unauthorized"
    assert err["message"] == "Invalid apikey"
    assert set(err) >= {"arguments", "context", "debug"}


def test_json2_validation_error_is_422_and_unknown_model_404(sim19):
    json2(sim19, "milk.session", "create", {"vals_list": [session_vals("K1")]})
    status, err = json2(sim19, "milk.session", "create", {"vals_list": [session_vals("K1")]})
    assert status == 422 and err["name"] == "odoo.exceptions.ValidationError"
    status, err = json2(sim19, "no.model", "search", {"domain": []})
    assert status == 404 and "does not exist" in err["message"]


def test_json2_does_not_exist_before_odoo_19(sim):
    req = urllib.request.Request(
        f"{sim.url}/json/2/farm.animal/search",
        data=b"{}",
        headers={"Content-Type": "application/json", "Authorization": f"bearer {sim.api_key}"},
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 404


def test_odoo_22_without_jsonrpc_still_serves_json2():
    with OdooSimulator(version="22.0", jsonrpc_enabled=False) as sim:
        client = Json2Client(settings_for(sim), sim.api_key, None)
        assert client.search("farm.animal", []) == []
        assert probe_version(settings_for(sim)).major == 22
        with pytest.raises(urllib.error.HTTPError):
            execute_kw(sim, "farm.animal", "search", [[]])


def test_refuse_fault_refuses_only_the_chosen_value(sim):
    sim.refuse("milk.session", "name", "BAD", "Yield above the physical maximum")
    client = OdooRpcClient(settings_for(sim), "admin")
    client.create("milk.session", [session_vals("GOOD")])
    with pytest.raises(OdooRefused, match="physical maximum"):
        client.create("milk.session", [session_vals("BAD")])


def test_down_server_drops_connections_and_fail_next_answers_500(sim):
    client = OdooRpcClient(settings_for(sim), "admin")
    sim.set_down(True)
    with pytest.raises(OdooUnavailable, match=r"closed the connection|cannot reach"):
        client.search_read("farm.animal", [], ["name"])
    sim.set_down(False)
    sim.fail_next(1, status=502)
    with pytest.raises(OdooUnavailable, match="HTTP 502"):
        client.search_read("farm.animal", [], ["name"])
    assert client.search_read("farm.animal", [], ["name"]) == []


def test_a_slow_server_makes_the_client_time_out(sim):
    client = OdooRpcClient(settings_for(sim, timeout_s=0.2), "admin")
    sim.set_slow(0.6)
    with pytest.raises(OdooUnavailable, match="in time"):
        client.search_read("farm.animal", [], ["name"])


def test_stopped_server_refuses_connections_and_restarts_on_the_same_port(sim):
    port = sim.port
    sim.stop()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
    sim.start()
    assert sim.port == port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/web/version")
    assert conn.getresponse().status == 404  # no /web/version before Odoo 19
    conn.close()


def test_on_commit_hook_runs_after_odoo_committed_the_batch(sim):
    seen: list[tuple[str, int]] = []
    sim.on_commit = lambda model, method, ids: seen.append((model, sim.count(model)))
    execute_kw(sim, "milk.session", "create", [[session_vals("K1"), session_vals("K2")]])
    assert seen == [("milk.session", 2)]
