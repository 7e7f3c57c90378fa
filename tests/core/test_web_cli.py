"""`milkconsole web token`: phone access for a headless gateway, from the terminal."""

from __future__ import annotations

import io

from milkconsole.app.cli import build_parser
from milkconsole.store.web_tokens import WebTokenStore
from milkconsole.web.cli import run_web
from tests.helpers.web_helpers import SUPERVISOR, database_with_users, web_config


def test_new_list_and_revoke_from_the_terminal_with_a_supervisors_pin(tmp_path):
    config = web_config(tmp_path, 'port = 8443\nurl_host = "192.168.1.20"\n')
    db_path = tmp_path / "gw.sqlite"
    database_with_users(db_path).close()
    base = ["--config", config.source, "--db", str(db_path)]

    def run(*argv: str, pin: str = "") -> tuple[int, str]:
        args = build_parser().parse_args(["web", "token", *argv, *base])
        out = io.StringIO()
        return run_web(args, config, out=out, stdin=io.StringIO(pin + "\n")), out.getvalue()

    status, text = run("new", "Vet phone", "--as", "Ann", "--pin-stdin", pin=SUPERVISOR[1])
    assert status == 0
    assert "https://192.168.1.20:8443/?token=" in text and "█" in text  # link and QR code
    secret = text.split("?token=", 1)[1].split()[0]
    status, text = run("new", "Office", "--as", "Ann", "--pin-stdin", pin="0000")
    assert status == 4
    status, text = run("list")
    assert status == 0 and "Vet phone\tAnn" in text and "active" in text
    token_id = text.split("\t", 1)[0]
    status, text = run("revoke", token_id, "--as", "Ann", "--pin-stdin", pin=SUPERVISOR[1])
    assert status == 0 and "revoked" in text

    from milkconsole.store import open_database

    db = open_database(db_path)
    try:
        found = WebTokenStore(db).check(secret)
        assert found is not None and not found.active
    finally:
        db.close()
