# The two commands a newcomer needs: `make demo` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: demo test lint typecheck unit deps-matrix browser-deps dashboard-screenshots bench-dashboard bench bench-pipeline bench-roundtrip bench-beat chaos chaos-soak soak clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -U pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

demo: $(STAMP)  ## the tutorial end to end on the embedded SQLite broker
	$(BIN)/python examples/meiduo_sms/run_demo.py

test: lint typecheck $(STAMP)  ## lint, types, then every test (servers: see DEVELOPERS.md)
	$(BIN)/python -m pytest -q

unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/contract

lint: $(STAMP)
	$(BIN)/ruff check src tests examples $(wildcard bench)

typecheck: $(STAMP)
	$(BIN)/mypy

# `make browser-deps`: Debian's chromium for tests/browser (playwright drives the system
# browser through executable_path: no browser download) and the fonts the screenshots
# use. Installs only when missing (as root, else through sudo). To see what it would
# do on a machine without chromium: make browser-deps CHROMIUM=none APT_INSTALL_FLAGS=-s
CHROMIUM ?= chromium
APT_INSTALL_FLAGS ?= -y -qq
browser-deps:
	@if command -v $(CHROMIUM) >/dev/null 2>&1; then \
	  echo "browser-deps: $$($(CHROMIUM) --version 2>/dev/null)"; \
	else \
	  echo "browser-deps: installing Debian's chromium"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install $(APT_INSTALL_FLAGS) \
	    --no-install-recommends chromium fonts-liberation && \
	  echo "browser-deps: $$(chromium --version 2>/dev/null)"; \
	fi

# `make dashboard-screenshots`: the browser test, saving the views into docs/dashboard/
dashboard-screenshots: browser-deps $(STAMP)
	DASHBOARD_SCREENSHOTS=docs/dashboard $(BIN)/python -m pytest -q tests/browser

# `make deps-matrix`: the Redis and RabbitMQ suites against the lowest and the newest
# redis-py and aiormq inside pyproject's ranges, each set in its own venv under
# .deps-envs/ (.ci/deps_matrix.py says how); prints the versions tested. CI runs it.
deps-matrix:
	$(PYTHON) .ci/deps_matrix.py

# `make bench`: celeriac, Celery and Dramatiq on this machine (docs/benchmarks.md). Each
# system gets its own venv under .bench-envs/ from bench/requirements/<system>.txt.
BENCH_ENVS := .bench-envs
BENCH_SYSTEMS_ALL := celeriac celery dramatiq

$(BENCH_ENVS)/%/.installed: bench/requirements/%.txt pyproject.toml
	@test -x $(BENCH_ENVS)/$*/bin/python || $(PYTHON) -m venv $(BENCH_ENVS)/$*
	$(BENCH_ENVS)/$*/bin/python -m pip install -q --disable-pip-version-check -U pip
	$(BENCH_ENVS)/$*/bin/python -m pip install -q --disable-pip-version-check -r $<
	@touch $@

bench: $(foreach s,$(BENCH_SYSTEMS_ALL),$(BENCH_ENVS)/$(s)/.installed)  ## BENCH_N=5000 for a quick run
	$(BENCH_ENVS)/celeriac/bin/python bench/run.py

# `make bench-chord`: only the chord row of `make bench` (celeriac and Celery, Redis and
# RabbitMQ brokers, results in Redis): a chord of 1,000 no-op tasks, send to body done
.PHONY: bench-chord
bench-chord: $(BENCH_ENVS)/celeriac/.installed $(BENCH_ENVS)/celery/.installed
	$(BENCH_ENVS)/celeriac/bin/python bench/run.py --only chord

# `make bench-pipeline`: the worker's own instructions per task, no broker (valgrind's
# callgrind counts them: repeatable on a VM whose speed drifts; docs/benchmarks.md)
bench-pipeline: $(BENCH_ENVS)/celeriac/.installed
	$(BENCH_ENVS)/celeriac/bin/python bench/pipeline.py --count

# `make bench-roundtrip BROKER=redis|amqp|sqlite`: a delay().get() round trip split into
# delay(), the task's start and get()'s return (p50/p99; docs/benchmarks.md)
bench-roundtrip: $(STAMP)
	$(BIN)/python bench/roundtrip.py $(or $(BROKER),redis)

# `make bench-dashboard`: the dashboard fed 10,000 task events/s over Redis for 30 s:
# does it see every one, and does its memory stay flat (docs/dashboard.md)
bench-dashboard: $(STAMP)
	$(BIN)/python bench/dashboard.py

# `make bench-beat BROKER=redis|amqp|sqlite`: 1,000 beat entries due every second, the
# lateness of each run's publish (p50/p99) and an idle scheduler's CPU (docs/beat.md)
bench-beat: $(STAMP)
	$(BIN)/python bench/beat.py $(or $(BROKER),redis)

# `make chaos`: the fault suite (docs/reliability.md) and its table: fault, broker, sent,
# completed, duplicates, lost. The quick part also runs in `make test`; soak is separate.
CHAOS_TABLE ?= /tmp/celeriac-chaos-table.txt

chaos: $(STAMP)
	CHAOS_TABLE=$(CHAOS_TABLE) $(BIN)/python -m pytest -q -p no:cacheprovider -m "not soak" tests/chaos
	@echo; cat $(CHAOS_TABLE)

soak: $(STAMP)  ## every soak test (chaos soaks, three beats with kills, ...)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m soak tests

chaos-soak: $(STAMP)  ## minutes: repeated kills and link faults over thousands of tasks
	CHAOS_TABLE=$(CHAOS_TABLE) $(BIN)/python -m pytest -q -p no:cacheprovider -m soak tests/chaos
	@echo; cat $(CHAOS_TABLE)

clean:
	rm -rf $(VENV) .deps-envs .pytest_cache .mypy_cache .ruff_cache
