"""The record table every console view starts from: column headers, no row numbers, read-only
unless asked, alternating rows. Views add their own selection and column sizing."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import QAbstractItemView, QTableWidget


def record_table(
    columns: Sequence[str],
    *,
    row_height_px: int | None = None,
    read_only: bool = True,
    alternating: bool = True,
) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.verticalHeader().setVisible(False)
    if row_height_px is not None:
        t.verticalHeader().setDefaultSectionSize(row_height_px)
    if read_only:
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setAlternatingRowColors(alternating)
    return t
