"""ICAR ADE JSON schema validation for the tests (the one module that imports `jsonschema` and
`referencing`): the schemas in tests/ui/icar_ade/ with their relative `$ref`s resolved."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

SCHEMAS = Path(__file__).resolve().parent / "icar_ade"
BASE = "https://icar.example/ade/"  # any absolute base: the files refer to each other relatively


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resources = []
    for path in SCHEMAS.rglob("*.json"):
        uri = BASE + path.relative_to(SCHEMAS).as_posix()
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT7)))
    return Registry().with_resources(resources)


def errors(document: Any, schema: str) -> list[str]:
    """Every way `document` breaks `schema` (e.g. 'resources/icarMilkingVisitEventResource.json'),
    date-time formats included; [] when it is valid."""
    ref = {"$ref": BASE + schema}
    validator = jsonschema.Draft7Validator(
        ref, registry=_registry(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(document)
    ]
