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

# Every test: formatting and lints, unit, property and integration tests.
test: setup lint
	source target/ort-env.sh && cargo test --all-targets
