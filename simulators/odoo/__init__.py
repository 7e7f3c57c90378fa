"""A simulated Odoo 17/19 server that speaks Odoo's wire protocols over real HTTP, for tests and
the demo; its data lives in SQLite.

It serves what odoorpc 0.10.1 and Odoo 19's JSON-2 clients send:

- `POST /web/webclient/version_info` (JSON-RPC): the server version, which odoorpc asks first.
- `POST /jsonrpc`: services `common` (login, authenticate, version), `object` (execute,
  execute_kw) and `db` (list, server_version). Odoo 19 deprecates it; `jsonrpc_enabled=False`
  plays the Odoo 22 that removes it.
- `POST /web/session/authenticate` (JSON-RPC), for clients of Odoo < 10 habits.
- `POST /json/2/<model>/<method>` (Odoo >= 19): `Authorization: bearer <api key>`, named
  arguments in the JSON body, the plain result or an error object with a 4xx/5xx status.
- `GET /web/version` (Odoo >= 19).

Modules: `server` (`OdooSimulator`: lifecycle, injected faults, cost model, seeding, `main`),
`http` (the routes), `records` (`Store`: Odoo's ORM methods on SQLite), `sql` (domains, orders
and field values as SQL), `models` (`FieldDef`, `ModelDef`, `contract_models()`), `errors`
(`OdooFault` and its wire shapes), `tls` (a throw-away certificate). Import from the module that
holds a name; this package re-exports nothing.

`python -m simulators.odoo --port 8069 --animals 500` runs one standalone.
"""
