# keyrot — the commands a newcomer needs. `make test` and `make demo` install what they use by themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help test lint unit demo tools clean-tools

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

tools: ## install the Python venv with moto's server and the AWS CLI into .venv
	scripts/tools.sh

lint: ## cargo fmt --check and clippy with warnings as errors
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

unit: ## unit tests only (in-memory fakes, no moto)
	cargo test --lib --locked

test: lint ## every test: lint, unit tests, and integration tests against a fresh moto_server
	scripts/moto.sh cargo test --workspace --all-targets --locked

demo: ## rotate a key on this machine's stand-ins
	scripts/demo.sh

clean-tools: ## remove .venv
	rm -rf .venv
