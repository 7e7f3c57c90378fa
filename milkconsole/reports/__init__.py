"""Reports, trends and data exchange: what a farmer asks of the milkings already recorded.

Pure core (no Qt): each module reads the store through `milkconsole.store.history` (the
dashboard through `store.dashboard`) and returns frozen dataclasses the console shows, the PDF
renderer (`ui/`) prints and `csv_out` writes.

- `dashboard`: the console's production figures now (today, the milking going on, alerts);
- `periods`: milkings (shifts), days and ranges in the farm's local time;
- `milking`: the milking report (one shift, or any period) and `day`: a day's milkings;
- `cow`: one cow's lactation trend; `herd`: the herd day by day;
- `meters`: meters compared with each other, each cow her own control (`stats`);
- `csv_out`: the one CSV writer (rounded to the meter's precision); `ade`: ICAR ADE export;
- `cli`: `milkconsole report ...` and `milkconsole export ...`.
"""
