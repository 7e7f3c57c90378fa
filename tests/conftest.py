"""Shared test setup. Qt must find no display to need: the offscreen platform is chosen here, at
import time, before any test module loads Qt (else a display-less run dies without a summary)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
