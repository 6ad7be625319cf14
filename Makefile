# E-Key: the two commands of the README, and the pieces they are built from.
#   make up     run the local stack (installs what it needs first)
#   make test   run the whole test suite (installs what it needs first)
#   make deploy-check   only the deployment checks (compose, k8s renders, alert rules)

APT_PACKAGES := libhiredis-dev libnghttp2-dev pkg-config redis-server redis-tools openssl python3 python3-venv nginx curl
PYTHON_PACKAGES := joserfc==1.6.5 "httpx[http2]==0.28.1" pytest==9.2.0 openapi-core==0.23.1 opentelemetry-proto==1.45.2 grpcio==1.85.4 grpcio-tools==1.85.4
VENV := .build-venv
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export EKEY_PYTHON := $(CURDIR)/$(VENV)/bin/python

.PHONY: up test deploy-check deps apt-deps python-deps build bench-verify spec-vectors config-docs grpc-generate clean

# One debug build of every product: half the time of a release build on two cores, and
# `make test` reuses it. Benchmarks (loadtest/) and images (compose/) build release.
up: apt-deps
	swift build
	.build/debug/ekey up

test: deps
	swift build --build-tests
	swift test
	EKEY_BIN_DIR=$(CURDIR)/.build/debug $(EKEY_PYTHON) -m pytest -q Tests/interop
	Tests/deploy/check.sh
	Tests/tls/check.sh

# compose/ and k8s/ (issue 8): docker-compose config, kustomize renders validated and
# checked, alert rules, `ekey config check` on the shipped stack configs.
deploy-check: apt-deps
	Tests/deploy/check.sh

deps: apt-deps python-deps

apt-deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

python-deps:
	@[ -x $(VENV)/bin/python ] || python3 -m venv $(VENV)
	@$(VENV)/bin/python -c "import joserfc, httpx, h2, pytest, openapi_core, opentelemetry.proto, grpc, grpc_tools" 2>/dev/null || $(VENV)/bin/python -m pip install -q $(PYTHON_PACKAGES)

build:
	swift build

bench-verify: deps
	loadtest/verify-bench

# docs/spec/vectors/: rewritten from the real code (keys.json kept); `make test` checks them.
spec-vectors: apt-deps
	EKEY_WRITE_SPEC_VECTORS=1 swift test --filter SpecVectorTests/theFilesAreWhatTheGeneratorMakes

# docs/configuration.md's key tables: rewritten from Sources/EKeyConfig/ConfigKeys.swift; `make test` checks them.
config-docs:
	EKEY_WRITE_CONFIG_DOCS=1 swift test --filter ConfigReferenceTests/testTheDocsTablesAreWhatTheDeclarationsMake

# The Swift code of Sources/EKeyEnvoyAuth/Protos (Envoy's ext_authz subset), checked in
# under Sources/EKeyEnvoyAuth/Generated. Never run by `make test` or CI: the first run
# builds the two protoc plugins (release, about 10 minutes on two cores) in $(GRPC_PLUGINS).
GRPC_PLUGINS ?= /tmp/ekey-protoc-plugins
GRPC_PROTOS := Sources/EKeyEnvoyAuth/Protos
GRPC_SWIFT_OUT := Sources/EKeyEnvoyAuth/Generated
grpc-generate: python-deps
	@mkdir -p $(GRPC_PLUGINS)/Sources/Plugins
	@printf '%s\n' '// swift-tools-version:6.1' 'import PackageDescription' \
		'let package = Package(name: "protoc-plugins", dependencies: [' \
		'    .package(url: "https://github.com/apple/swift-protobuf.git", exact: "1.39.0"),' \
		'    .package(url: "https://github.com/grpc/grpc-swift-protobuf.git", exact: "2.4.1"),' \
		'    .package(url: "https://github.com/grpc/grpc-swift-2.git", exact: "2.4.3"),' \
		'], targets: [.target(name: "Plugins")])' > $(GRPC_PLUGINS)/Package.swift
	@touch $(GRPC_PLUGINS)/Sources/Plugins/Plugins.swift
	cd $(GRPC_PLUGINS) && swift build -c release --product protoc-gen-swift && swift build -c release --product protoc-gen-grpc-swift-2
	rm -f $(GRPC_SWIFT_OUT)/*.swift
	mkdir -p $(GRPC_SWIFT_OUT)
	$(VENV)/bin/python -m grpc_tools.protoc -I $(GRPC_PROTOS) \
		--plugin=protoc-gen-swift=$(GRPC_PLUGINS)/.build/release/protoc-gen-swift \
		--plugin=protoc-gen-grpc-swift=$(GRPC_PLUGINS)/.build/release/protoc-gen-grpc-swift-2 \
		--swift_out=$(GRPC_SWIFT_OUT) --swift_opt=Visibility=Public,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true \
		$$(cd $(GRPC_PROTOS) && find . -name '*.proto' | sed 's|^\./||' | sort)
	$(VENV)/bin/python -m grpc_tools.protoc -I $(GRPC_PROTOS) \
		--plugin=protoc-gen-grpc-swift=$(GRPC_PLUGINS)/.build/release/protoc-gen-grpc-swift-2 \
		--grpc-swift_out=$(GRPC_SWIFT_OUT) \
		--grpc-swift_opt=Visibility=Public,Server=true,Client=true,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true \
		envoy/service/auth/v3/external_auth.proto

clean:
	rm -rf .build $(VENV) .build-venv-deploy .build-venv-deploy-compose .build-deploy
