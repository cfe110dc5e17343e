# isobar — the two commands: `make run` and `make test`.
.PHONY: run test build frontend frontend-deps lint clean

CARGO ?= cargo

## Build everything and start the daemon with the simulator and the dashboard.
run:
	./scripts/run.sh

## Every check CI runs: formatting, lints, Rust tests, dashboard build and tests.
test:
	./scripts/test.sh

## The daemon (debug build) and the dashboard.
build: frontend
	$(CARGO) build

## The dashboard's static files (frontend/dist), installing packages if needed.
frontend: frontend-deps
	cd frontend && npm run build

frontend-deps:
	./scripts/frontend-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --all-features -- -D warnings

clean:
	$(CARGO) clean
	rm -rf frontend/dist frontend/node_modules
