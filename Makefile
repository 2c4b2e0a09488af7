# The two commands of README.md. Both install what they need and are safe to run twice.
SHELL := /bin/bash
SAMPLE ?= /usr/share/doc/opencv-doc/examples/data/vtest.avi
OUT ?= out

.PHONY: demo test setup build lint

setup:
	./scripts/setup.sh

build: setup
	cargo build --release

# Replays the sample clip with the shipped default model: alert events on stdout, the scores
# and a plot under out/.
demo: build
	mkdir -p $(OUT)
	source target/ort-env.sh && ./target/release/vigil replay $(SAMPLE) \
	  --scores $(OUT)/vtest.scores.jsonl --plot $(OUT)/vtest.svg
	@echo "demo: scores in $(OUT)/vtest.scores.jsonl, plot in $(OUT)/vtest.svg"

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

# Every test: formatting and lints, unit, property and integration tests. Clippy runs as the
# compiler of vigil's own crates inside the test build (clippy-driver as the workspace wrapper,
# the way `cargo clippy` runs it, with the same `-D warnings`), so the dependencies are compiled
# once instead of once for clippy's check build and again for the tests. `make lint` is the same
# lints on their own.
CLIPPY_DENY := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
test: setup
	cargo fmt --check
	@command -v clippy-driver >/dev/null || { echo "make test: clippy-driver not found (rustup component add clippy)" >&2; exit 1; }
	source target/ort-env.sh && RUSTC_WORKSPACE_WRAPPER="$$(command -v clippy-driver)" CLIPPY_ARGS="$(CLIPPY_DENY)" \
	  cargo test --all-targets
