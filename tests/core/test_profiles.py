"""Register-map profiles are data: the bundled ones load, bad ones are refused by file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from milkconsole.errors import ProfileError
from milkconsole.meters.profiles import Block, load_profile_file, load_profiles

MINIMAL = """
[profile]
id = "{id}"
[detection]
mode = "flow"
[fields.yield_l]
register = "holding"
address = 0
type = "float32"
min = 0.0
max = 80.0
[fields.flow_l_min]
register = "holding"
address = 2
type = "float32"
min = 0.0
max = 15.0
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_bundled_profiles_load_with_the_issue_register_maps() -> None:
    profiles = load_profiles()
    assert {"delaval-mm27bc", "afimilk", "gea"} <= set(profiles)
    d = profiles["delaval-mm27bc"]
    assert (d.fields["yield_l"].address, d.fields["rfid"].address, d.fields["status"].address) == (
        0,
        10,
        14,
    )
    assert d.fields["rfid"].data_type == "uint64" and d.fields["rfid"].format == "hex16"
    assert d.detection.mode == "status" and d.detection.status_bit == 0
    a = profiles["afimilk"]
    assert "status" not in a.fields and a.detection.mode == "flow"
    assert a.fields["rfid"].data_type == "string" and a.fields["rfid"].count == 4
    assert a.fields["scc_cells_ml"].address == 110 and a.fields["blood"].address == 114


@pytest.mark.parametrize(
    ("profile", "blocks"),
    [
        ("delaval-mm27bc", [Block("holding", 0, 17)]),
        ("afimilk", [Block("holding", 100, 24)]),
        ("gea", [Block("holding", 0, 25)]),
    ],
)
def test_each_bundled_meter_is_read_with_one_block(profile: str, blocks: list[Block]) -> None:
    assert load_profiles()[profile].blocks() == blocks


def test_gaps_are_not_read_through_when_the_meter_refuses_them(tmp_path: Path) -> None:
    text = MINIMAL.format(id="gappy").replace("address = 2", "address = 10")
    p = load_profile_file(write(tmp_path, "gappy", text))
    assert p.blocks() == [Block("holding", 0, 2), Block("holding", 10, 2)]
    text2 = text.replace("[detection]", "[read]\nspan_gaps = true\n[detection]")
    assert load_profile_file(write(tmp_path, "gappy", text2)).blocks() == [Block("holding", 0, 12)]


def test_blocks_never_exceed_the_profile_limit(tmp_path: Path) -> None:
    text = MINIMAL.format(id="small").replace(
        "[detection]", "[read]\nspan_gaps = true\nmax_registers = 3\n[detection]"
    )
    p = load_profile_file(write(tmp_path, "small", text))
    assert [b.count for b in p.blocks()] == [2, 2]


@pytest.mark.parametrize(
    ("mutation", "key", "words"),
    [
        (("address = 2", "address = 1"), "fields.flow_l_min.address", "overlaps"),
        (
            (
                'type = "float32"\nmin = 0.0\nmax = 15.0',
                'type = "float32"\ncount = 1\nmin = 0.0\nmax = 15.0',
            ),
            "fields.flow_l_min.count",
            "takes 2",
        ),
        (
            ("[fields.flow_l_min]", "[fields.flow_l_min]\ncolour = 1"),
            "fields.flow_l_min.colour",
            "unknown key",
        ),
        (
            (
                "[fields.yield_l]",
                "[fields.milk_colour]\nregister='holding'\naddress=40\ntype='uint16'\n[fields.yield_l]",
            ),
            "fields.milk_colour",
            "unknown field",
        ),
        (('type = "float32"', 'type = "float33"'), "fields.yield_l.type", "unknown data type"),
        (('mode = "flow"', 'mode = "status"'), "detection.status_field", "not a field"),
        (("max = 80.0", "max = -1.0"), "fields.yield_l.min", "above max"),
    ],
)
def test_bad_profile_is_refused_naming_file_and_key(
    tmp_path: Path, mutation: tuple[str, str], key: str, words: str
) -> None:
    text = MINIMAL.format(id="bad").replace(*mutation, 1)
    path = write(tmp_path, "bad", text)
    with pytest.raises(ProfileError) as err:
        load_profile_file(path)
    assert err.value.key == key
    assert str(path) in str(err.value) and words in str(err.value)


def test_profile_id_must_match_its_file_name(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="must match the file name"):
        load_profile_file(write(tmp_path, "other", MINIMAL.format(id="mine")))


def test_a_new_meter_model_is_a_new_file_in_an_extra_directory(tmp_path: Path) -> None:
    write(tmp_path, "lely-mqc", MINIMAL.format(id="lely-mqc"))
    profiles = load_profiles(tmp_path)
    assert profiles["lely-mqc"].detection.mode == "flow"
    assert "delaval-mm27bc" in profiles
