# One command surface for people and CI. `make test` and `make demo` set up what they need.
.PHONY: test test-core demo lint bench bench-year deb wheelhouse clean

test:
	bash scripts/test.sh

# The core's tests alone, in .venv-core where PySide6 and pyqtgraph are not installed.
test-core:
	bash scripts/test_core.sh

demo:
	bash scripts/demo.sh

lint:
	bash scripts/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	bash scripts/bootstrap.sh
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/polling.py
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui.py
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/tile_latency.py
	.venv/bin/python bench/health.py --tuning
	.venv/bin/python bench/sync.py
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/lan.py
	.venv/bin/python bench/mqtt_load.py
	.venv/bin/python bench/installer.py

# A year of 1,000 cows (bench/yeardb.py builds it once, ~30 min, then it is cached): the scale
# and the reports on it.
bench-year:
	bash scripts/bootstrap.sh
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/scale.py
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/reports.py

# What a farm installs (installer/README.md): dist/milkconsole_<version>_<arch>.deb, and the
# wheelhouse for installing with pip on Python 3.11-3.13.
deb:
	bash scripts/bootstrap.sh
	.venv/bin/python installer/build.py deb

wheelhouse:
	bash scripts/bootstrap.sh
	.venv/bin/python installer/build.py wheelhouse

clean:
	rm -rf .venv .venv-core build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
