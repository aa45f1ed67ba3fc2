# keyrot — the commands a newcomer needs. `make test` and `make demo` install what they use by themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help test lint unit demo fuzz chaos tools clean-tools

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

tools: ## install the Python venv with moto's server and the AWS CLI into .venv
	scripts/tools.sh

lint: ## cargo fmt --check and clippy with warnings as errors, with and without the sim-clock feature
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

unit: ## unit tests only (in-memory fakes, no moto)
	cargo test --lib --locked $(TEST_FEATURES)

# The sim-clock feature lets the tests run the real binaries with their clock moved on (the crash
# harness, tests/moto/crashes.rs); the demo builds the binaries with it too. Release artifacts never have it.
TEST_FEATURES = --features keyrot/sim-clock

# The contract tests read the official provider specs from KEYROT_SPECS_DIR; without it they are skipped.
SPECS_NOTE = [ -n "$$KEYROT_SPECS_DIR" ] || echo "NOTE: KEYROT_SPECS_DIR is unset, so the contract tests against the official provider specs were SKIPPED; run them with: scripts/fetch-specs.sh && KEYROT_SPECS_DIR=.specs make test"

test: lint check-infra ## every test: lint, deployment checks, unit and integration tests (moto + simulator + PostgreSQL), and the end-to-end demo
	@$(SPECS_NOTE)
	scripts/moto.sh scripts/postgres.sh cargo test --workspace --all-targets --locked $(TEST_FEATURES)
	scripts/demo.sh
	@$(SPECS_NOTE)

fuzz: ## build and run the fuzz targets (event and secret parsers); FUZZ_SECONDS per target, default 60. make test replays their corpora
	scripts/fuzz.sh $${FUZZ_SECONDS:-60}

chaos: ## the whole fault matrix: every fault kind at every request, and a SIGKILL on both sides of every request
	KEYROT_CHAOS=1 scripts/moto.sh cargo test --locked $(TEST_FEATURES) --test moto -- wire:: crashes:: --nocapture

demo: ## rotate an OpenAI key with a Vercel target on this machine's stand-ins (also the end-to-end test)
	scripts/demo.sh

clean-tools: ## remove .venv
	rm -rf .venv

# ---- deployment: SAM (template.yaml) and CDK (infra/) ------------------------------------------------------
.PHONY: build build-RotatorFunction build-GraceKeeperFunction check-infra clean-infra

build: ## build both Lambda zips for arm64 (target/lambda/*/bootstrap.zip), print their sizes, check they hold no test key
	scripts/infra-build.sh zip keyrot-rotator keyrot-grace-keeper
	scripts/scan-artifacts.sh target/lambda/keyrot-rotator/bootstrap.zip target/lambda/keyrot-grace-keeper/bootstrap.zip

# `sam build` calls these (BuildMethod: makefile) with ARTIFACTS_DIR; they copy the arm64 bootstrap there.
build-RotatorFunction:
	scripts/infra-build.sh artifacts "$(ARTIFACTS_DIR)" keyrot-rotator

build-GraceKeeperFunction:
	scripts/infra-build.sh artifacts "$(ARTIFACTS_DIR)" keyrot-grace-keeper

check-infra: ## offline checks of the templates: cfn-lint, checkov, tsc, cdk synth + cdk-nag, SAM vs CDK
	scripts/check-infra.sh

clean-infra: ## remove .venv-infra, .venv-sam, infra/node_modules and infra/dist
	rm -rf .venv-infra .venv-sam infra/node_modules infra/cdk.out infra/dist

# ---- performance -------------------------------------------------------------------------------------------
.PHONY: bench

bench: ## build release binaries and arm64 zips, then measure cold start, memory, calls, latency, fleet (target/bench/)
	@scripts/bench.sh $(BENCH_ARGS)
