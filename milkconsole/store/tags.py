"""Who was milked, in the store: a tag -> the animal wearing it, and sessions given their cow.

* `resolve_animal(tx, rfid)` finds the animal wearing a tag in any form the meters or Odoo
  write (`milkconsole.meters.rfid.normalize_tag`), as primary or alternative tag. A malformed or
  unknown tag gives None: the session keeps its raw tag and shows as unknown.
* `associate_pending(tx)` gives every session still without an animal the one its tag now
  points to (a new cow was added, the herd list was refreshed) and tells Odoo through the
  outbox (the pending create is amended, so it goes out associated), and rules again on where
  a finished one's milk should have gone. A session whose identity
  a person set (`id_source` 'manual') is never touched: the console's choice wins.
* `assign_session(tx, key, animal_id)`: a tag registered at the stall makes the session read
  with it hers.

Tags in the `animals` and `animal_tags` tables are kept as Odoo has them; they are normalised
here, once per change of the herd list (`TagCache`). Whether a milking fits the cow its tag
names (a cow swap) is `milkconsole.herd.identity`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from milkconsole.meters.rfid import (
    AnimalTags,
    InvalidTag,
    TagForm,
    TagIndex,
    TagMatch,
    normalize_tag,
)
from milkconsole.store.outbound import queue_session_identity
from milkconsole.store.schema import Animal, AnimalTag, SessionRow
from milkconsole.store.separation import review_destination

log = logging.getLogger(__name__)


class TagCache:
    """The herd list's tags as a `TagIndex`, rebuilt only when the tables changed.

    Thread-safe; the tables are read (cheap) on every call and compared with what the index
    was built from, so an animal pull is seen at the next lookup.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._source: tuple[Any, ...] | None = None
        self._index = TagIndex([])

    def index(self, tx: Session) -> TagIndex:
        animals: tuple[tuple[int, str | None, bool], ...] = tuple(
            (aid, tag, bool(active))
            for aid, tag, active in tx.execute(select(Animal.id, Animal.rfid_tag, Animal.active))
        )
        tags: tuple[tuple[int, str], ...] = tuple(
            (aid, tag) for aid, tag in tx.execute(select(AnimalTag.animal_id, AnimalTag.rfid_tag))
        )
        source = (animals, tags)
        with self._lock:
            if source != self._source:
                alternatives: dict[int, list[str]] = {}
                for animal_id, tag in tags:
                    alternatives.setdefault(animal_id, []).append(tag)
                self._index = TagIndex(
                    AnimalTags(aid, primary, tuple(alternatives.get(aid, ())), active)
                    for aid, primary, active in animals
                )
                self._source = source
                for r in self._index.refused:
                    log.debug(
                        "herd list tag %r of animal %s refused: %s", r.text, r.animal_id, r.reason
                    )
            return self._index


_CACHE = TagCache()


def identify(
    tx: Session, rfid: str | None, *, form: TagForm = "auto", cache: TagCache | None = None
) -> TagMatch | None:
    """The animal a tag belongs to (which animal, canonical tag, primary or not), or None."""
    if not rfid or not rfid.strip():
        return None
    try:
        canonical = normalize_tag(rfid, form=form)
    except InvalidTag as exc:
        log.debug("tag not identified: %s", exc)
        return None
    return (cache or _CACHE).index(tx).lookup_canonical(canonical)


def animal_resolver(tx: Session) -> Callable[[str | None], int | None]:
    """`resolve_animal` for many tags in one transaction: the herd's tags are read once (the
    recorder writes a batch of completions with it, not a read of the herd per session)."""
    index = _CACHE.index(tx)

    def resolve(rfid: str | None) -> int | None:
        if not rfid or not rfid.strip():
            return None
        try:
            canonical = normalize_tag(rfid)
        except InvalidTag:
            return None
        match = index.lookup_canonical(canonical)
        return None if match is None else match.animal_id

    return resolve


def resolve_animal(tx: Session, rfid: str | None, *, form: TagForm = "auto") -> int | None:
    """The id of the animal wearing `rfid` (any written form, primary or alternative tag)."""
    match = identify(tx, rfid, form=form)
    return None if match is None else match.animal_id


def associate_pending(tx: Session, *, since: datetime | None = None) -> list[str]:
    """Give sessions without an animal the animal their tag now names; their keys.

    Only sessions nobody identified by hand (`id_source` is None) and that carry a tag are
    looked at (those started at or after `since`, when given). Each one found gets
    `id_source` 'rfid' and its Odoo record is amended in the same transaction.
    """
    query = select(SessionRow).where(
        SessionRow.animal_id.is_(None),
        SessionRow.id_source.is_(None),
        SessionRow.rfid.is_not(None),
    )
    if since is not None:
        query = query.where(SessionRow.started_at >= since)
    done: list[str] = []
    for row in tx.scalars(query.order_by(SessionRow.started_at)):
        animal_id = resolve_animal(tx, row.rfid)
        if animal_id is None:
            continue
        row.animal_id, row.id_source = animal_id, "rfid"
        queue_session_identity(tx, row)
        # A finished milking of a cow whose milk had to be kept out: ruled again (the alert
        # is raised now if nobody diverted it).
        review_destination(tx, row)
        done.append(row.key)
    if done:
        tx.flush()
    return done


def assign_session(tx: Session, session_key: str | None, animal_id: int) -> bool:
    """The session read with a tag just registered to a cow is hers (unless a person said whose
    it is): Odoo is told and where its milk should go is ruled again. True when it changed."""
    row = tx.get(SessionRow, session_key) if session_key else None
    if row is None or row.id_source == "manual" or row.animal_id == animal_id:
        return False
    row.animal_id, row.id_source = animal_id, "rfid"
    row.updated_at = datetime.now(UTC)
    tx.flush()
    queue_session_identity(tx, row)
    review_destination(tx, row)
    return True
