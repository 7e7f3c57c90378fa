"""The technician's tools: meter calibration (`calibration`: the maths, saving, due dates, the
bulk tank) and equipment diagnostics (`diagnostics`). Their records are the store's
(`store.calibrations`, the equipment alerts in `store.alerts`)."""
