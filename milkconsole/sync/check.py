"""Checking the farm's Odoo against the contract before anything is sent.

`check_contract(client, contract)` asks the server for every contract model and field and says,
in words a farm's IT person can act on, what would be refused or linked wrongly:

- a model or field that is missing (with the config line that maps or leaves it out);
- a many2one that points at another model than the one the console sends ids of (a session's
  meter must be an `iot.milk_meter`, an alert's an `iot.device`: an id of the wrong model would
  link the wrong record silently, since Odoo takes any id of the field's own model);
- a selection value the console sends that the server does not offer (Odoo refuses it);
- a field the server requires, has no default for and the console does not fill.

A pushed or registered model with any such problem is suspended: its records wait in the outbox
(sending half a record, or one linked wrongly, would lose data silently). A pulled model missing
an optional field is pulled without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from milkconsole.sync.client import OdooClient
from milkconsole.sync.contract import CONTRACT, REQUIRED_FIELDS, Contract

# Fields Odoo fills itself on every model.
_MAGIC = {"id", "create_uid", "create_date", "write_uid", "write_date", "display_name"}
_FIELD_ATTRIBUTES = ["type", "relation", "selection", "required", "readonly", "related"]


@dataclass(frozen=True, slots=True)
class ContractCheck:
    """What the server lacks of the contract. `suspended`: contract models not synced, with the
    reason; `available`: the server fields each contract model has; `required`: contract fields
    the server requires (a record whose value for one is unknown waits instead of being
    refused)."""

    problems: tuple[str, ...]
    suspended: Mapping[str, str]
    available: Mapping[str, frozenset[str]]
    required: Mapping[str, frozenset[str]]

    @property
    def ok(self) -> bool:
        return not self.problems


def _selection_values(desc: Mapping[str, Any]) -> set[str]:
    return {str(item[0]) for item in desc.get("selection") or () if item}


def check_contract(client: OdooClient, contract: Contract) -> ContractCheck:
    """Ask the server for every contract model and field; say plainly what is wrong."""
    problems: list[str] = []
    suspended: dict[str, str] = {}
    available: dict[str, frozenset[str]] = {}
    required: dict[str, frozenset[str]] = {}
    names = {m: contract.model(m) for m in CONTRACT}
    existing = client.existing_models(sorted(set(names.values())))

    def problem(model: str, text: str, *, suspend: bool) -> None:
        problems.append(text)
        if suspend:
            suspended.setdefault(model, text)

    for m, server_model in names.items():
        spec = CONTRACT[m]
        pushed = spec.direction != "pull"
        if server_model not in existing:
            problem(
                m,
                f"Odoo has no model {server_model!r} (contract model '{m}'; install the "
                f'milkconsole_dairy module or rename it in [odoo.models] {m} = "...")',
                suspend=pushed or m == "animal",
            )
            continue
        described = client.fields_get(server_model, _FIELD_ATTRIBUTES)
        available[m] = frozenset(described)
        mapped = contract.fields(m)
        needed: set[str] = set()
        for f in spec.fields:
            sf = mapped.get(f.name)
            if sf is None:
                continue
            desc = described.get(sf)
            if desc is None:
                must = pushed or f.name in REQUIRED_FIELDS.get(m, ())
                tail = "" if f.required else f' or leave it out with {f.name} = ""'
                problem(
                    m,
                    f"Odoo model {server_model!r} has no field {sf!r} (contract field "
                    f"'{m}.{f.name}'; map it in [odoo.fields.{m}] {f.name} = \"...\"{tail})",
                    suspend=must,
                )
                continue
            if desc.get("required"):
                needed.add(f.name)
            if f.relation is not None:
                want = contract.model(f.relation)
                got = desc.get("relation")
                if got != want:
                    problem(
                        m,
                        f"{server_model}.{sf} points to {got!r}, but the console sends ids of "
                        f"{want!r} there (contract '{m}.{f.name}' -> '{f.relation}'): every "
                        "record would be linked to the wrong one. Fix the module, or map "
                        f"[odoo.models] {f.relation} to {got!r} if that is the same thing",
                        suspend=True,
                    )
            if f.selection and desc.get("type") == "selection":
                offered = _selection_values(desc)
                refused = [v for v in f.selection if v not in offered]
                if refused:
                    problem(
                        m,
                        f"Odoo would refuse {server_model}.{sf} = "
                        f"{', '.join(repr(v) for v in refused)} (it offers "
                        f"{', '.join(sorted(offered)) or 'nothing'}; contract '{m}.{f.name}')",
                        suspend=pushed,
                    )
        required[m] = frozenset(needed)
        if pushed:
            _check_unfilled(client, server_model, m, described, set(mapped.values()), problem)
    return ContractCheck(tuple(problems), suspended, available, required)


def _check_unfilled(
    client: OdooClient,
    server_model: str,
    m: str,
    described: Mapping[str, Mapping[str, Any]],
    sent: set[str],
    problem: Any,
) -> None:
    """A field Odoo requires, has no default for, and the console never fills: every create
    would be refused."""
    candidates = [
        name
        for name, desc in described.items()
        if desc.get("required")
        and name not in sent
        and name not in _MAGIC
        and not desc.get("related")  # an _inherits parent's field: filled through its link
    ]
    if not candidates:
        return
    defaults = client.default_get(server_model, candidates)
    for name in candidates:
        if name in defaults and defaults[name] not in (None, False, ""):
            continue
        problem(
            m,
            f"Odoo requires {server_model}.{name}, which has no default and which the console "
            f"does not send: every {m} record would be refused (give it a default in Odoo, or "
            f"map a contract field onto it in [odoo.fields.{m}])",
            suspend=True,
        )
