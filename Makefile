# Ephemeral Chat. The two commands that matter: `make run` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := run

# Builds go to CARGO_TARGET_DIR when it is set (CI keeps one outside the clone), else ./target.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
export CARGO_TARGET_DIR := $(TARGET_DIR)
# cargo-leptos writes the site (JS, WASM, CSS) here: see site-root in Cargo.toml.
SITE_ROOT := $(CURDIR)/target/site
SERVER_BIN := $(TARGET_DIR)/release/server
ENV := source scripts/env.sh &&
# The static bundle the browser tests use: its relay is the one they start on port 3110.
E2E_DIST := $(TARGET_DIR)/static-e2e
E2E_RELAY_ORIGIN := http://127.0.0.1:3110

.PHONY: run setup setup-build setup-static build install-cli watch dist dist-check static static-e2e test vectors check-format lint deny unit-and-integration e2e bench bench-smoke fuzz fuzz-smoke test-faults faults-smoke test-hostile hostile-smoke soak screenshots clean

## Build the release app and serve it on http://127.0.0.1:3000 with SQLite under ./data.
run: build
	LEPTOS_SITE_ROOT=$(SITE_ROOT) $(SERVER_BIN)

## Install the toolchains and tools this project needs (idempotent, in parallel where it helps):
## `setup-build` only what building and serving need (`make run`), `setup-static` that and the
## static bundle's, `setup` everything `make test` uses (cargo-deny, cargo-fuzz, the browsers).
setup:
	@scripts/setup.sh

setup-build:
	@EC_SETUP_E2E=0 EC_SETUP_TRUNK=0 EC_SETUP_TEST=0 scripts/setup.sh

setup-static:
	@EC_SETUP_E2E=0 EC_SETUP_TEST=0 scripts/setup.sh

## The release build: server binary and wasm-opt'd WASM bundle (the steps of `cargo leptos build
## --release`, without compiling cargo-leptos: scripts/build_release.sh says why).
build: setup-build
	scripts/build_release.sh $(SITE_ROOT)
	scripts/precompress.sh $(SITE_ROOT)/pkg

## The terminal client, `ephemeral-chat` (cli/), into cargo's bin directory (~/.cargo/bin).
install-cli: setup-build
	$(ENV) cargo install --path cli --locked

## The dev loop: cargo-leptos (installed on first use) rebuilds and reloads on every change.
watch:
	@EC_SETUP_LEPTOS=1 EC_SETUP_E2E=0 EC_SETUP_TRUNK=0 EC_SETUP_TEST=0 scripts/setup.sh
	$(ENV) cargo leptos watch

## The release tarball for operators (target/dist/ephemeral-chat-VERSION-ARCH-linux.tar.gz): the
## server, the terminal client, the site, the sandboxed systemd unit, env.sample, OPERATING.md and
## SHA256SUMS.
DIST_DIR := $(TARGET_DIR)/dist
CLI_BIN := $(TARGET_DIR)/release/ephemeral-chat
dist: build
	$(ENV) cargo build -q --release -p ephemeral-chat-cli
	scripts/dist.sh $(SERVER_BIN) $(SITE_ROOT) $(DIST_DIR) $(CLI_BIN)

## The tarball as an operator uses it: unpacked into an empty directory, its checksums and
## systemd unit verified, the relay started from it alone to carry message journeys.
dist-check: dist
	$(ENV) cargo build -q --release -p loadgen
	python3 scripts/check_dist.py $$(ls $(DIST_DIR)/ephemeral-chat-*-linux.tar.gz | head -1) $(TARGET_DIR)/release/loadgen

## The client-only static bundle in dist/ (Trunk, release), for hosting the UI on any static
## host apart from the relay: `EC_RELAY_ORIGIN=https://relay.example make static`. Publish
## dist/SHA256SUMS; scripts/check_bundle.py checks a served copy against it. Built only with the
## pinned compiler and tools (scripts/bundle_toolchain.sh, which prints what it expected and
## found when they differ), so that anyone can rebuild the same hashes.
static: setup-static
	@python3 scripts/static_bundle.py --check-origin
	$(ENV) source scripts/bundle_toolchain.sh && ec_bundle_toolchain strict && trunk build --release

## The bundle the browser tests use, after the build scripts' own tests (scripts/test_*.py). It
## says so, and builds anyway, where the pinned toolchain is missing.
static-e2e: setup-static
	PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover --start-directory scripts --pattern 'test_*.py'
	$(ENV) source scripts/bundle_toolchain.sh && ec_bundle_toolchain lenient && \
		EC_RELAY_ORIGIN=$(E2E_RELAY_ORIGIN) trunk build --release --dist $(E2E_DIST)

## Every check: formatting, lints (app without features, server, wasm32), unit and integration
## tests on SQLite and PostgreSQL, then Playwright in Chromium against the release build.
test: setup check-format lint deny vectors unit-and-integration fuzz-smoke build dist-check bench-smoke faults-smoke hostile-smoke static-e2e e2e

## The published crypto vectors (docs/vectors.json), computed again by the independent Python
## implementation (the Rust tests do the same in `unit-and-integration`).
vectors:
	@python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install --quiet cryptography
	python3 tools/crypto_vectors.py

check-format:
	$(ENV) cargo fmt --all --check

lint:
	$(ENV) cargo clippy -p app -p server -p loadgen -p ephemeral-chat-cli --all-targets -- -D warnings
	$(ENV) cargo clippy -p app --no-default-features --all-targets -- -D warnings
	$(ENV) cargo clippy -p frontend --features hydrate,bench --target wasm32-unknown-unknown -- -D warnings
	$(ENV) cargo clippy -p frontend --features csr --target wasm32-unknown-unknown -- -D warnings

## cargo-deny: licenses, bans and duplicate versions, sources, and advisories where the RustSec
## database can be had (deny.toml, scripts/deny.sh).
deny:
	scripts/deny.sh

## Unit tests (app, server, loadgen, cli) and the integration tests (server/tests, and the
## terminal client's in cli/tests, as a process against the relay), both backends.
## PostgreSQL: TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/postgres.
## The flood tests run last and alone: their bounds are on an honest room's journeys during a
## flood, which the other tests running beside them on two cores would measure instead. (The
## same packages and targets both times: another set would resolve features anew and rebuild.)
unit-and-integration:
	$(ENV) cargo test -p app -p server --lib --test integration -- --skip flood::
	$(ENV) cargo test -p app -p server --lib --test integration flood:: -- --test-threads=1
	$(ENV) cargo test -p loadgen --lib --bins
	$(ENV) cargo test -p ephemeral-chat-cli

## Playwright in Chromium, every test on the server-rendered build and on the static bundle (and
## the terminal client beside them: end2end/tests/cli.spec.ts).
e2e:
	$(ENV) cargo build -q --release -p ephemeral-chat-cli
	cd end2end && SERVER_BIN=$(SERVER_BIN) LEPTOS_SITE_ROOT=$(SITE_ROOT) STATIC_DIST=$(E2E_DIST) CLI_BIN=$(CLI_BIN) \
		npx playwright test --project=ssr --project=static

## The load generator's whole run at tiny sizes, against the release server (part of `make test`):
## every benchmark code path, failing on any lost, duplicated or left-behind message.
bench-smoke: build
	scripts/ensure-postgres.sh
	$(ENV) cargo build -q --release -p loadgen
	$(TARGET_DIR)/release/loadgen bench --smoke --server-bin $(SERVER_BIN) --out $(TARGET_DIR)/bench-smoke.json

## Faults under load (`faults run`, the load generator package's second binary): kill -9 of
## servers, restarts of a PostgreSQL cluster of its own (initdb in a temp dir, own port), cut
## LISTEN connections; then every message accounted for. `faults-smoke` is the size that fits in
## `make test`. Building the package builds both binaries.
test-faults: build
	$(ENV) cargo build -q --release -p loadgen
	$(TARGET_DIR)/release/faults run --server-bin $(SERVER_BIN) --out $(TARGET_DIR)/faults.json

faults-smoke: build
	$(ENV) cargo build -q --release -p loadgen
	$(TARGET_DIR)/release/faults run --smoke --server-bin $(SERVER_BIN) --out $(TARGET_DIR)/faults-smoke.json

## Hostile clients (`faults hostile`): slowloris, WebSockets that never read, the per-address
## quota (one address, and one IPv6 /64 through a trusted proxy) and the storage total, each
## against a fresh release server while honest pages make journeys; fails if a bound breaks.
## `hostile-smoke` is the size that fits in `make test` (short timeouts, small quotas);
## `test-hostile` uses the relay's defaults and 1,000 slow connections (open-file limit raised).
test-hostile: build
	$(ENV) cargo build -q --release -p loadgen
	[ "$$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 || true; \
		$(TARGET_DIR)/release/faults hostile --server-bin $(SERVER_BIN) --out $(TARGET_DIR)/hostile.json

hostile-smoke: build
	$(ENV) cargo build -q --release -p loadgen
	$(TARGET_DIR)/release/faults hostile --smoke --server-bin $(SERVER_BIN) --out $(TARGET_DIR)/hostile-smoke.json

## Ten minutes of steady load (`faults soak`, not part of `make test`): server memory and open
## files stay flat, nothing is left behind. SOAK_BACKEND=postgres for PostgreSQL.
SOAK_SECONDS ?= 600
SOAK_BACKEND ?= sqlite
soak: build
	scripts/ensure-postgres.sh
	$(ENV) cargo build -q --release -p loadgen
	$(TARGET_DIR)/release/faults soak --server-bin $(SERVER_BIN) --backend $(SOAK_BACKEND) --seconds $(SOAK_SECONDS)

## Fuzzing (cargo-fuzz, libFuzzer): every target for FUZZ_SECONDS each from the committed corpus
## in fuzz/corpus; `fuzz-smoke` is the short run in `make test`.
FUZZ_SECONDS ?= 300
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-smoke:
	scripts/fuzz.sh 20

## Benchmarks (not part of `make test`): writes BENCHMARKS.md. See its Method section.
bench: setup build static-e2e
	SITE_ROOT=$(SITE_ROOT) STATIC_DIST=$(E2E_DIST) scripts/bench.sh

## The README's pictures (docs/screenshots/), from the real app in Chromium.
screenshots: setup build static-e2e
	cd end2end && SERVER_BIN=$(SERVER_BIN) LEPTOS_SITE_ROOT=$(SITE_ROOT) STATIC_DIST=$(E2E_DIST) \
		npx playwright test --project=screenshots

clean:
	rm -rf target end2end/test-results
