# The two commands: `make dev` (run everything locally) and `make test` (every test tier).
# `make test` installs what it needs itself: a Python venv (.venv) with pinned moto, SAM CLI and
# cfn-lint from tests/requirements.txt. Nothing else beyond Rust, Python 3 and make is assumed.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed
CARGO  ?= cargo
# Extra flags for the devstack, e.g. `make dev ARGS="--port 3100"`.
ARGS   ?=

.PHONY: help dev test test-prerequisites audit browser venv build-tools fmt lint features template-lint build-checks supply-chain bootstraps emulator invoke build unit bench clean

# The functions' binaries (one per crate in functions/); the template maps them to its functions.
FUNCTIONS := token-mint jwks key-rotation issue status-poller callback-receiver
BUILD_STAMP := $(VENV)/.build-tools

# Offline, dummy credentials, no telemetry: linting must never reach AWS.
AWS_OFFLINE := AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
	SAM_CLI_TELEMETRY=0 AWS_EC2_METADATA_DISABLED=true

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

dev: ## Run the devstack: every handler, the platform simulator, embedded storage
	$(CARGO) run -p devstack -- $(ARGS)

test: ## Run every test tier (installs its own tools first)
	$(MAKE) --no-print-directory -j2 --output-sync=target test-prerequisites
	infra/scripts/contained.sh infra/scripts/with-moto.sh $(CARGO) test --workspace --all-features --all-targets
	infra/scripts/with-moto.sh $(CARGO) test --workspace --all-features --doc

# What runs before the tests, two at a time: installing the venv (mostly downloads) overlaps
# clippy (CPU), which needs nothing from it. The cargo steps still run one after another: they
# share one build directory and its lock. `--output-sync` keeps each step's output in one piece.
test-prerequisites: venv browser fmt lint features template-lint build-checks supply-chain

venv: $(STAMP) ## Create .venv with the pinned Python tools

# The audit's HTML report is checked in a real headless browser: Debian's Chromium, installed when
# missing (needs root or sudo, and the Debian package registry).
CHROMIUM ?= $(firstword $(wildcard /usr/bin/chromium /usr/bin/chromium-browser))
browser: ## Install headless Chromium (Debian's package) if it is missing
	@if [ -z "$(CHROMIUM)" ]; then \
		sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	fi

# Extra flags for `opsctl audit`, e.g. `make audit AUDIT_ARGS="--format html --out audit.html"`.
AUDIT_ARGS ?=
audit: ## Start a devstack, audit it against the security checklists (opsctl audit), stop it
	$(DEV_BOOTSTRAPS)
	TARGET_DIR=$(TARGET_DIR) infra/scripts/audit-devstack.sh $(AUDIT_ARGS)

$(STAMP): tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

build-tools: $(BUILD_STAMP) ## Add cargo-lambda (and its zig) to .venv for `make build`

$(BUILD_STAMP): infra/requirements-build.txt $(STAMP)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/requirements-build.txt
	touch $@

fmt: ## Check formatting
	$(CARGO) fmt --all -- --check

lint: ## Clippy on every target, warnings are errors
	$(CARGO) clippy --workspace --all-features --all-targets -- -D warnings

# `sam build` compiles each function alone, with only the shared crate's features it names; the
# workspace builds above unify them all. This catches shared code that uses a feature-gated module
# without its feature (a binary that would build here and fail to deploy).
features: ## Each function's binary checked alone, with only its own features (as sam build builds it)
	for f in $(FUNCTIONS); do $(CARGO) check --quiet --bins -p $$f; done

# The transforms themselves also run, offline, with the default parameters, with every optional
# feature switched on, and with that on Lambda Managed Instances (infra/scripts/sam-transform.py
# also checks that every function runs on the capacity provider there, with at least 2,048 MB,
# and on none elsewhere; the last set leaves the memory per vCPU to the provider):
# cfn-lint and sam validate accept some templates the transform then refuses.
TRANSFORM_SET := PollerShardGroups=4 UserIssueTokens=true TokenMintReservedConcurrency=5 \
	AllowedOrigins=https://app.example.com CustomDomainName=api.example.com \
	CustomDomainCertificateArn=arn:aws:acm:us-east-1:123456789012:certificate/abc \
	CustomDomainHostedZoneId=Z123 CustomDomainBasePath=partner
MI_SET := CapacityProviderArn=arn:aws:lambda:us-east-1:123456789012:capacity-provider:lint \
	ManagedInstancesMaxConcurrency=64 ManagedInstancesMemoryGiBPerVCpu=4
template-lint: venv ## cfn-lint, sam validate --lint and the transforms on template.yaml (standard Lambda and Managed Instances), and the OpenAPI spec; any finding fails
	$(AWS_OFFLINE) $(VENV)/bin/cfn-lint template.yaml
	$(AWS_OFFLINE) $(VENV)/bin/sam validate --lint --template template.yaml
	$(AWS_OFFLINE) $(VENV)/bin/python infra/scripts/sam-transform.py template.yaml \
		--set $(TRANSFORM_SET) --set $(TRANSFORM_SET) $(MI_SET) --set $(MI_SET) \
		--set $(firstword $(MI_SET))
	@# The script's own checks are tested: template.yaml broken in each way they exist for.
	$(AWS_OFFLINE) $(VENV)/bin/python -m unittest --quiet infra/scripts/test_sam_transform.py
	$(VENV)/bin/openapi-spec-validator infra/openapi.yaml

build-checks: venv ## The build's own promises: bootstraps built one way per profile (make -n), host-only crates unoptimised in test builds
	$(VENV)/bin/python -m unittest --quiet infra/scripts/test_makefile.py infra/scripts/test_check_dev_profile.py
	$(VENV)/bin/python infra/scripts/check-dev-profile.py

# The dependency check: cargo-deny, pinned, built once per machine from crates.io (--locked) into a
# tool cache outside the clone (about 3 minutes the first time here), and the RustSec advisory
# database from the snapshot in infra/supply-chain/ — no network is needed for the check itself.
DENY_VERSION        := 0.20.2
TOOL_CACHE          ?= $(HOME)/.cache/partner-bundle-tools
DENY                := $(TOOL_CACHE)/cargo-deny-$(DENY_VERSION)/bin/cargo-deny
ADVISORY_DB_ARCHIVE ?= infra/supply-chain/rustsec-advisory-db-2026-08-21.tar.gz

supply-chain: $(DENY) ## Offline check of advisories, licenses, banned and duplicate crates, sources (deny.toml)
	$(CARGO) fetch --locked --quiet
	infra/scripts/advisory-db.sh $(ADVISORY_DB_ARCHIVE) target/advisory-dbs
	$(DENY) --offline --log-level warn check --hide-inclusion-graph
	@# The gate itself is tested: a fixture that locks a crate with a known advisory must fail it.
	$(CARGO) fetch --locked --quiet --manifest-path infra/supply-chain/fixture/Cargo.toml
	out=$$($(DENY) --offline --log-level error --config deny.toml \
		--manifest-path infra/supply-chain/fixture/Cargo.toml check --hide-inclusion-graph advisories 2>&1) \
		&& { echo "supply-chain: the check passed a crate with a known advisory" >&2; exit 1; }; \
	grep -q "RUSTSEC-2021-0003" <<<"$$out" || { echo "supply-chain: the fixture failed for another reason:" >&2; echo "$$out" >&2; exit 1; }

$(DENY):
	$(CARGO) install --locked --quiet cargo-deny@$(DENY_VERSION) --root $(TOOL_CACHE)/cargo-deny-$(DENY_VERSION)

bootstraps: ## Release bootstraps for this machine (x86_64), with lambda-emu: what `make bench` runs, and `make invoke` after it
	$(RELEASE_BOOTSTRAPS)

# The emulator tier runs the functions' binaries of the profile it is built in (`make test`: the
# debug ones its `--all-targets` build makes anyway); `make emulator PROFILE=release` runs the
# release bootstraps, as `make bench` does.
#
# `make invoke` without PROFILE runs the bootstraps built last: the release ones when
# target/release/lambda-emu is newer than target/debug/lambda-emu (`make bootstraps` or `make bench`
# ran after `make test`), else the debug ones. Either way cargo still rebuilds what changed since.
TARGET_DIR         := $(or $(CARGO_TARGET_DIR),target)
ifeq ($(origin PROFILE),undefined)
INVOKE_PROFILE := $(shell [ $(TARGET_DIR)/release/lambda-emu -nt $(TARGET_DIR)/debug/lambda-emu ] && echo release || echo dev)
else
INVOKE_PROFILE := $(PROFILE)
endif
PROFILE ?= dev
PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,)

# The bootstraps are built one way per profile, and lambda-emu runs the ones built beside it: in
# the dev profile exactly as `make test` builds the workspace (so right after it nothing is
# rebuilt), in the release profile every function together with lambda-emu (`make bootstraps`).
# A function is never built alone: its features would differ and everything would rebuild.
RELEASE_BOOTSTRAPS := $(CARGO) build --release --bins $(addprefix -p ,$(FUNCTIONS)) -p lambda-emu
DEV_BOOTSTRAPS     := $(CARGO) build --workspace --all-features --all-targets
bootstraps_for      = $(if $(filter release,$(1)),$(RELEASE_BOOTSTRAPS),$(DEV_BOOTSTRAPS))
emu_dir_for         = $(TARGET_DIR)/$(if $(filter release,$(1)),release,debug)

emulator: venv ## Only the emulator tier (PROFILE=release for the release bootstraps)
	$(call bootstraps_for,$(PROFILE))
	infra/scripts/contained.sh infra/scripts/with-moto.sh $(CARGO) test $(PROFILE_FLAG) -p emulator-tier

invoke: venv ## One function under the Lambda emulator, on moto and the simulator: make invoke FN=issue EVENT=events/issue.json [PROFILE=dev|release; default: the bootstraps built last]
	@if [ -z "$(FN)" ] || [ -z "$(EVENT)" ]; then echo "usage: make invoke FN=<function> EVENT=events/<file>.json" >&2; exit 2; fi
	@echo "make invoke: the $(INVOKE_PROFILE) bootstraps" >&2
	$(call bootstraps_for,$(INVOKE_PROFILE))
	infra/scripts/contained.sh infra/scripts/with-moto.sh $(call emu_dir_for,$(INVOKE_PROFILE))/lambda-emu invoke --function $(FN) --event $(EVENT)

build: build-tools ## sam build: every function as Lambda runs it (arm64, cargo-lambda from .venv)
	rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(AWS_OFFLINE) $(VENV)/bin/sam build --template template.yaml

# The in-process benches (each crate's benches/).
BENCHES := warm ecies hmac calls verify drain scale reads
bench: venv bootstraps ## Print the performance figures (release build; never part of the tests)
	@# The functions write their EMF lines to stdout as in Lambda; the figures go to stderr.
	@# Cold starts first, on the bootstraps just built (the bench build below relinks them).
	infra/scripts/contained.sh infra/scripts/with-moto.sh $(TARGET_DIR)/release/lambda-emu bench >/dev/null
	@# Every in-process bench in one build of the workspace (one feature set, so nothing is
	@# compiled twice), among them the sharded due index under 100,000 records (embedded) and
	@# 10,000 (DynamoDB on moto).
	infra/scripts/contained.sh infra/scripts/with-moto.sh $(CARGO) bench --workspace --all-features $(addprefix --bench ,$(BENCHES)) >/dev/null
	@# The chaos suite, five times larger than in `make test`, on the embedded store (moto slows down
	@# as its table grows; DynamoDB runs at the make-test size); it prints its counts. Built as
	@# `make test` builds the workspace, so after `make test` nothing is compiled.
	CHAOS_ISSUANCES=1000 CHAOS_CALLBACKS=500 $(CARGO) test -q --workspace --all-features --test it \
		under_chaos_on_the_embedded_store -- --nocapture
	infra/scripts/contained.sh infra/scripts/with-moto.sh $(CARGO) test -q --workspace --all-features --test it \
		under_chaos_on_dynamodb -- --nocapture

unit: ## Only the fast tests that need no moto
	$(CARGO) test --workspace --lib

clean: ## Remove build output, the venv and local data
	rm -rf target $(VENV) .devstack .aws-sam
