"""The herd file: a farm's cows as CSV, read and checked row by row, and written back.

`read_herd_csv` turns a file into `HerdRow`s or refuses it as a whole with every bad cell named
by line and column (`HerdFileError`); nothing is imported from a file with one bad row. The
store merges the rows with what it holds (`milkconsole.store.herd.import_rows`), in one
transaction. Columns (a header row is required; only `number` is mandatory; order free):

    number, name, rfid_tag, other_tags, group, birth_date, lactation_number, last_calving_date

Tags are normalised (`milkconsole.meters.rfid.normalize_tag`: ISO decimal, FDX-B hex, ASCII), so the
same tag written two ways is one tag. `other_tags` holds several, separated by `|` (or `;` in a
comma-separated file). Dates are ISO (`2021-03-14`). The delimiter is `,` or `;` (as Excel
writes it in much of Europe), found from the header; a UTF-8 byte-order mark is skipped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TextIO

from milkconsole.errors import MilkConsoleError
from milkconsole.meters.rfid import InvalidTag, format_display, normalize_tag

COLUMNS: tuple[str, ...] = (
    "number",
    "name",
    "rfid_tag",
    "other_tags",
    "group",
    "birth_date",
    "lactation_number",
    "last_calving_date",
)
MAX_TEXT = 64
MAX_NUMBER = 32
MAX_LACTATION = 20
OLDEST_BIRTH = date(1990, 1, 1)
_TAG_SPLIT = re.compile(r"[|;]")
MAX_REPORTED = 50

Bad = Callable[[str, str], None]  # (column, message): note a refused cell


@dataclass(frozen=True, slots=True)
class HerdRow:
    """One cow as the file gives her; tags canonical. `line` is where she is in the file (for
    messages; 0 for rows that come from elsewhere)."""

    number: str
    name: str | None = None
    rfid_tag: str | None = None
    other_tags: tuple[str, ...] = ()
    group: str | None = None
    birth_date: date | None = None
    lactation_number: int | None = None
    last_calving_date: date | None = None
    line: int = 0

    @property
    def tags(self) -> tuple[str, ...]:
        return ((self.rfid_tag,) if self.rfid_tag else ()) + self.other_tags


@dataclass(frozen=True, slots=True)
class RowProblem:
    """One refused cell: its line in the file, its column's name, and why."""

    line: int
    column: str
    message: str


class HerdFileError(MilkConsoleError):
    """A herd file refused as a whole; `problems` names every bad cell by line and column."""

    def __init__(self, source: str, problems: Sequence[RowProblem], header: Sequence[str] = ()):
        self.source = source
        self.problems = tuple(problems)
        self.header = tuple(header)
        shown = [self.describe(p) for p in self.problems[:MAX_REPORTED]]
        more = len(self.problems) - len(shown)
        tail = f"\n... and {more} more" if more > 0 else ""
        lead = f"{source}: nothing imported, {len(self.problems)} problem(s):\n"
        super().__init__(lead + "\n".join(shown) + tail)

    def describe(self, p: RowProblem) -> str:
        where = f"line {p.line}"
        if p.column:
            index = self.header.index(p.column) + 1 if p.column in self.header else None
            where += f", column {index} ({p.column})" if index else f", column {p.column}"
        return f"{self.source}: {where}: {p.message}"


@dataclass(frozen=True, slots=True)
class HerdFile:
    """A checked herd file: its rows, and the header as the file spelled it (lower case)."""

    source: str
    header: tuple[str, ...]
    rows: tuple[HerdRow, ...]


@dataclass(frozen=True, slots=True)
class ImportReport:
    """What an import did. `conflicts`: fields where the file and Odoo disagree (Odoo's kept),
    in words; `identified`: sessions recorded under a tag no cow had, now hers."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    tags_added: int = 0
    conflicts: tuple[str, ...] = ()
    identified: int = 0
    notes: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        parts = [f"{self.added} added", f"{self.updated} updated", f"{self.unchanged} unchanged"]
        if self.tags_added:
            parts.append(f"{self.tags_added} tag(s) added")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} field(s) kept as Odoo has them")
        if self.identified:
            parts.append(f"{self.identified} earlier milking(s) now identified")
        return ", ".join(parts)


def tag_text(canonical: str) -> str:
    """A canonical tag as people read it."""
    return format_display(canonical)


def _delimiter(first_line: str) -> str:
    return ";" if first_line.count(";") > first_line.count(",") else ","


def read_herd_csv(stream: TextIO, source: str, *, today: date | None = None) -> HerdFile:
    """Read and check a herd file; HerdFileError naming every bad cell (nothing is returned
    half-checked). `today` bounds dates (none may be in the future)."""
    text = stream.read()
    if text.startswith("\ufeff"):
        text = text[1:]
    first = text.splitlines()[0] if text.strip() else ""
    if not first.strip():
        raise HerdFileError(source, [RowProblem(1, "", "the file is empty: a header is needed")])
    delimiter = _delimiter(first)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    problems: list[RowProblem] = []
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise HerdFileError(source, [RowProblem(1, "", f"not CSV: {exc}")]) from exc
    for i, h in enumerate(header):
        if h not in COLUMNS:
            problems.append(
                RowProblem(1, "", f"column {i + 1} {h!r} is unknown (known: {', '.join(COLUMNS)})")
            )
        elif header.index(h) != i:
            problems.append(RowProblem(1, "", f"column {i + 1} {h!r} appears twice"))
    if "number" not in header:
        problems.append(RowProblem(1, "", "no 'number' column: every cow needs her herd number"))
    if problems:
        raise HerdFileError(source, problems, header)
    rows: list[HerdRow] = []
    numbers: dict[str, int] = {}
    tags: dict[str, tuple[int, str]] = {}
    try:
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # a blank line (Excel leaves them at the end)
            if len(record) != len(header):
                problems.append(
                    RowProblem(line, "", f"{len(record)} cells for {len(header)} columns")
                )
                continue
            cells = dict(zip(header, (c.strip() for c in record), strict=True))
            number = cells.get("number", "")
            if number and number in numbers:
                problems.append(
                    RowProblem(line, "number", f"cow {number} is already on line {numbers[number]}")
                )
            numbers.setdefault(number, line)
            row = _row(cells, line, problems, today or date.today())
            if row is None:
                continue
            for column, tag in _tag_cells(row):
                if tag in tags and tags[tag][0] != line:
                    other_line, other = tags[tag]
                    problems.append(
                        RowProblem(
                            line,
                            column,
                            f"tag {tag_text(tag)} is also cow {other}'s (line {other_line})",
                        )
                    )
                tags.setdefault(tag, (line, row.number))
            rows.append(row)
    except csv.Error as exc:
        problems.append(RowProblem(reader.line_num, "", f"not CSV: {exc}"))
    if problems:
        raise HerdFileError(source, problems, header)
    return HerdFile(source, tuple(header), tuple(rows))


def _tag_cells(row: HerdRow) -> Iterable[tuple[str, str]]:
    if row.rfid_tag:
        yield "rfid_tag", row.rfid_tag
    for t in row.other_tags:
        yield "other_tags", t


def _row(
    cells: dict[str, str], line: int, problems: list[RowProblem], today: date
) -> HerdRow | None:
    before = len(problems)

    def bad(column: str, message: str) -> None:
        problems.append(RowProblem(line, column, message))

    number = cells.get("number", "")
    if not number:
        bad("number", "empty: every cow needs her herd number")
    elif len(number) > MAX_NUMBER:
        bad("number", f"{number[:40]!r} is longer than {MAX_NUMBER} characters")
    texts: dict[str, str | None] = {}
    for column in ("name", "group"):
        value = cells.get(column) or None
        if value is not None and len(value) > MAX_TEXT:
            bad(column, f"longer than {MAX_TEXT} characters")
        texts[column] = value
    primary = _tag(cells.get("rfid_tag", ""), "rfid_tag", bad)
    others: list[str] = []
    for raw in _TAG_SPLIT.split(cells.get("other_tags", "")):
        tag = _tag(raw, "other_tags", bad)
        if tag is not None and tag != primary and tag not in others:
            others.append(tag)
    birth = _date(cells.get("birth_date", ""), "birth_date", bad, today)
    calving = _date(cells.get("last_calving_date", ""), "last_calving_date", bad, today)
    lactation: int | None = None
    raw_lact = cells.get("lactation_number", "")
    if raw_lact:
        try:
            lactation = int(raw_lact)
        except ValueError:
            bad("lactation_number", f"{raw_lact!r} is not a whole number")
        else:
            if not 0 <= lactation <= MAX_LACTATION:
                bad("lactation_number", f"{lactation} is not from 0 to {MAX_LACTATION}")
    if birth is not None and birth < OLDEST_BIRTH:
        bad("birth_date", f"{birth.isoformat()} is before {OLDEST_BIRTH.isoformat()}")
    if birth is not None and calving is not None and calving <= birth:
        bad("last_calving_date", f"{calving.isoformat()} is not after her birth {birth}")
    if lactation == 0 and calving is not None:
        bad("last_calving_date", "lactation 0 (a heifer) but a calving date: which is right?")
    if len(problems) > before:
        return None
    return HerdRow(
        number=number,
        name=texts["name"],
        rfid_tag=primary,
        other_tags=tuple(others),
        group=texts["group"],
        birth_date=birth,
        lactation_number=lactation,
        last_calving_date=calving,
        line=line,
    )


def _tag(raw: str, column: str, bad: Bad) -> str | None:
    raw = raw.strip()
    if not raw:
        return None
    digits = raw.replace(" ", "")
    if digits.isdigit() and len(digits) not in (8, 15, 16):
        # Typed digits are an ISO number (15) or a meter's 8-character tag; anything else is
        # a digit too many or too few, not a short hex code.
        bad(column, f"{raw!r} is not a tag: an ISO tag is 15 digits ({len(digits)} here)")
        return None
    try:
        return normalize_tag(raw)
    except InvalidTag as exc:
        bad(column, f"{raw!r} is not a tag: {exc.reason}")
        return None


def _date(raw: str, column: str, bad: Bad, today: date) -> date | None:
    if not raw:
        return None
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        bad(column, f"{raw!r} is not a date like 2021-03-14")
        return None
    if value > today:
        bad(column, f"{value.isoformat()} is in the future")
        return None
    return value


def write_herd_csv(rows: Iterable[HerdRow], out: TextIO) -> int:
    """Write rows as a herd file `read_herd_csv` reads back (tags canonical, other tags
    joined by `|`); returns how many. Open `out` with newline=""."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    n = 0
    for r in rows:
        writer.writerow(
            [
                r.number,
                r.name or "",
                r.rfid_tag or "",
                "|".join(r.other_tags),
                r.group or "",
                r.birth_date.isoformat() if r.birth_date else "",
                "" if r.lactation_number is None else str(r.lactation_number),
                r.last_calving_date.isoformat() if r.last_calving_date else "",
            ]
        )
        n += 1
    return n


def days_in_milk(calved_on: date | None, today: date) -> int | None:
    """Days since her last calving (None when unknown or in the future)."""
    if calved_on is None or calved_on > today:
        return None
    return (today - calved_on).days
