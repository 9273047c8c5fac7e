# Build, test and demo targets. Deno comes from the npm registry (package
# `deno`, pinned below) into .tools/ when no `deno` is on PATH.

DENO_VERSION := 2.9.6
TOOLS_DIR := .tools
LOCAL_DENO := $(TOOLS_DIR)/deno/node_modules/.bin/deno
DENO ?= $(shell command -v deno 2>/dev/null || echo $(LOCAL_DENO))
PREFIX ?= /usr/local
BINARY := horos_vllm_logger

.PHONY: deno deps test fmt lint check unit demo build install clean

deno:
	@if [ "$(DENO)" = "$(LOCAL_DENO)" ] && [ ! -x "$(LOCAL_DENO)" ]; then \
	  echo "Installing Deno $(DENO_VERSION) from the npm registry into $(TOOLS_DIR)/deno"; \
	  npm install --silent --no-audit --no-fund --prefix $(TOOLS_DIR)/deno deno@$(DENO_VERSION); \
	fi
	@"$(DENO)" --version | head -n 1

deps: deno
	"$(DENO)" install --frozen --entrypoint main.ts

fmt: deno
	"$(DENO)" fmt --check

lint: deno
	"$(DENO)" lint

check: deps
	"$(DENO)" check main.ts src/ tests/ bench/

unit: deps
	HOROS_DENO="$(abspath $(DENO))" "$(DENO)" test --allow-all --frozen

test: fmt lint check unit

demo: deps
	HOROS_DENO="$(abspath $(DENO))" bash scripts/demo.sh

build: deps
	DENO="$(DENO)" bash scripts/build.sh $(BINARY)

install: build
	install -d "$(PREFIX)/bin"
	install -m 0755 $(BINARY) "$(PREFIX)/bin/$(BINARY)"

clean:
	rm -rf $(BINARY) demo coverage
