"""The technician's tools: meter calibration and equipment diagnostics."""
