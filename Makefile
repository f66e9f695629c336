# The everyday commands. `make help` lists them.
.DEFAULT_GOAL := help
export CARGO_TARGET_DIR ?= $(HOME)/.cache/tascomi-target

.PHONY: help check test demo

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-6s %s\n", $$1, $$2}'

check: ## formatting and lints, as CI runs them
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

test: ## everything CI runs: fmt, clippy and all tests against a local moto server
	bash scripts/test.sh

demo: ## the whole pipeline in one process on local files, no AWS account needed
	cargo run -p ctl -- demo
