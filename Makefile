# UAB developer commands. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help setup generate lint breaking test dev bench migrate build clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install pnpm, the packages and build (add protoc with `make setup DEV_TOOLS=1`)
	@bash scripts/setup.sh $(if $(DEV_TOOLS),--dev-tools,)

generate: ## regenerate TypeScript contracts, the descriptor image, Envoy config and Helm files from proto/
	@bash scripts/setup.sh --dev-tools
	node scripts/proto.mjs generate
	node deploy/envoy/generate.mjs
	node helm/uab/sync.mjs

lint: ## buf lint, generated code up to date, biome (warnings are errors), type check
	@bash scripts/setup.sh --dev-tools
	node scripts/proto.mjs lint
	node scripts/proto.mjs check
	pnpm exec biome ci --error-on-warnings .
	pnpm exec tsc -b

breaking: ## buf breaking against main (or REF=...)
	node scripts/proto.mjs breaking $(or $(REF),main)

test: ## run every test against the local PostgreSQL and NATS JetStream (installs/starts them)
	@bash scripts/setup.sh
	@bash scripts/services.sh
	node scripts/test.mjs

dev: ## run all of UAB in one process (embedded PostgreSQL, in-process events unless DATABASE_URL/NATS_URL)
	@bash scripts/setup.sh
	node libs/cli/dist/bin.js dev

bench: ## run the benchmarks and print a table
	@bash scripts/setup.sh
	@bash bench/setup.sh
	node bench/dist/run.js

migrate: ## run migrations against DATABASE_URL (SERVICE=name for one)
	@bash scripts/setup.sh
	node libs/cli/dist/bin.js migrate $(if $(SERVICE),--service $(SERVICE),)

build: ## type check and compile every package
	pnpm exec tsc -b

clean: ## remove build output and the dev server's data (.uab/)
	rm -rf build .uab libs/*/dist services/*/dist bench/dist
	find . -name '*.tsbuildinfo' -not -path './node_modules/*' -delete
