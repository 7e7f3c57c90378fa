# One command surface for people and CI. `make test` and `make demo` set up what they need.
.PHONY: test demo lint bench clean

test:
	bash scripts/test.sh

demo:
	bash scripts/demo.sh

lint:
	bash scripts/bootstrap.sh
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	bash scripts/bootstrap.sh
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/polling.py
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/ui.py
	.venv/bin/python bench/health.py --tuning
	.venv/bin/python bench/sync.py
	QT_QPA_PLATFORM=offscreen .venv/bin/python bench/scale.py

clean:
	rm -rf .venv build *.egg-info .pytest_cache .mypy_cache .ruff_cache
