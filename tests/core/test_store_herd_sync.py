"""store/herd_sync.py on a real SQLite store: a pulled page of cows and tags, and what a full
pull finds Odoo deleted (the Odoo side is in test_herd_sync.py and test_sync.py)."""

from __future__ import annotations

from sqlalchemy import select

from milkconsole.store.db import Database
from milkconsole.store.herd import register_tag
from milkconsole.store.herd_sync import (
    CowLink,
    PulledAnimal,
    PulledTag,
    cow_links,
    local_ids,
    mark_gone,
    save_animals,
    save_tags,
)
from milkconsole.store.schema import Animal, AnimalTag
from tests.helpers.odoo_fixtures import FIRST_TAG

TAG_A, TAG_B, TAG_C, TAG_D = (str(FIRST_TAG + i) for i in range(4))


def _tags(db: Database) -> dict[str, int]:
    with db.read() as tx:
        return {t.rfid_tag: t.animal_id for t in tx.scalars(select(AnimalTag))}


def test_a_page_of_tags_moves_a_tag_and_skips_cows_the_herd_lacks(db: Database):
    with db.write() as tx:
        assert save_animals(tx, [PulledAnimal(7, "7", rfid_tag=TAG_A), PulledAnimal(8, "8")]) == 2
        local = local_ids(tx, [7, 8, 9, None])
    assert set(local) == {7, 8}
    with db.write() as tx:
        assert save_tags(tx, [PulledTag(TAG_B, 7), PulledTag(TAG_C, 9), PulledTag(None, 7)]) == (
            1,
            2,
        )
    assert _tags(db) == {TAG_B: local[7]}
    with db.write() as tx:
        assert save_tags(tx, [PulledTag(TAG_B, 8)]) == (1, 0)  # Odoo moved it to cow 8
        assert save_tags(tx, [PulledTag(TAG_B, 8)]) == (0, 0)  # read again: nothing changes
    assert _tags(db) == {TAG_B: local[8]}
    assert cow_links(db, [local[7], local[8], 999]) == {
        local[7]: CowLink(7, "7", TAG_A),
        local[8]: CowLink(8, "8", None),
    }


def test_a_full_pull_removes_tags_odoo_lost_but_not_one_still_on_its_way(db: Database):
    with db.write() as tx:
        save_animals(tx, [PulledAnimal(7, "7", rfid_tag=TAG_A), PulledAnimal(8, "8")])
        cow7 = local_ids(tx, [7])[7]
        save_tags(tx, [PulledTag(TAG_B, 7)])
        register_tag(tx, cow7, TAG_C, primary=False, actor="mary")  # queued for Odoo, unsent
    with db.write() as tx:
        # Odoo still has cow 7 and tag D only: B is gone there, C has not reached it yet.
        assert mark_gone(tx, {7}, {TAG_D}) == (1, 1)  # cow 8 gone, tag B gone
    assert _tags(db) == {TAG_C: cow7}
    with db.read() as tx:
        assert {a.odoo_id: a.active for a in tx.scalars(select(Animal))} == {7: True, 8: False}
    with db.write() as tx:
        assert mark_gone(tx, {7, 8}, None) == (0, 0)  # no tag model: no tag is touched
    assert _tags(db) == {TAG_C: cow7}
