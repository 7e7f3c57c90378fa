"""The phone's link as a QR code. The only module that imports `segno` (pure Python, no image
libraries; pinned in pyproject.toml).

The console paints `qr_matrix` itself (one filled square per dark module), so no image format
is involved; the headless gateway's command prints `qr_text` to the terminal.
"""

from __future__ import annotations

import io

import segno

# M: 15 % of the code may be dirty or torn and it still reads: a smudged parlour screen.
ERROR_LEVEL = "m"


def qr_matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    """Rows of modules (True: dark), the four-module quiet zone included."""
    code = segno.make(text, error=ERROR_LEVEL, micro=False)
    return tuple(tuple(bool(v) for v in row) for row in code.matrix_iter(scale=1, border=4))


def qr_text(text: str) -> str:
    """The code drawn with block characters, for a terminal (two rows per line)."""
    code = segno.make(text, error=ERROR_LEVEL, micro=False)
    out = io.StringIO()
    code.terminal(out=out, compact=True, border=2)
    return out.getvalue()
