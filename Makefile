# Fasten Desktop.
#   make run    installs what it needs, builds the frontend and the app, opens the window
#   make test   installs what it needs and runs every test (Go, frontend, browser e2e, desktop smoke)
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := build/bin/fasten-desktop
TAGS := desktop,production,webkit2_41
# The version shown by `version`, in Settings and in the User-Agent (main.version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: the window (GTK + WebKitGTK 4.1), browser tests (chromium), the desktop smoke
# test (Xvfb, ImageMagick for screenshots, xwininfo), the real keyring (gnome-keyring under a dbus
# session) and PostgreSQL for the Lighthouse gateway tests.
RUN_PKGS := libgtk-3-dev libwebkit2gtk-4.1-dev pkg-config
# `make dist`: the Windows installer (nsis), icons (imagemagick), package checks.
DIST_PKGS := $(RUN_PKGS) nsis imagemagick desktop-file-utils appstream
TEST_PKGS := $(RUN_PKGS) chromium xvfb xauth imagemagick x11-utils gnome-keyring dbus-x11 postgresql python3-aiosmtpd nsis desktop-file-utils appstream

.PHONY: run build build-headless frontend deps-run deps-test deps-dist dist test test-go test-frontend test-e2e test-dist test-desktop vet fmt bench clean

run: deps-run build
	./$(BIN)

build: frontend
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN) .

# A server build without the window (no cgo): serve, import, sync, lighthouse, sandbox.
build-headless: frontend
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o build/bin/fasten-desktop-headless .

# The installable packages in build/dist/: .deb, Windows installer and .exe, headless tarballs for
# linux-amd64 and darwin-arm64, SHA256SUMS (build/dist.sh says what each is).
dist: deps-dist frontend
	VERSION="$(VERSION)" GO="$(GO)" build/dist.sh

frontend: frontend/node_modules/.installed
	cd frontend && npm run build

frontend/node_modules/.installed: frontend/package.json frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund
	touch $@

define apt_install
	missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  $(SUDO) apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps-run:
	@$(call apt_install,$(RUN_PKGS))

deps-test:
	@$(call apt_install,$(TEST_PKGS))

deps-dist:
	@$(call apt_install,$(DIST_PKGS))

test: deps-test vet build test-go test-frontend test-e2e test-dist
	@echo "All tests passed."

vet:
	@out="$$(gofmt -l main.go app internal build)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags $(TAGS) ./app/ .

# Go tests with -race, inside a private D-Bus session with a fresh unlocked gnome-keyring (the
# real keyring tests must run, not skip), a throwaway PostgreSQL for the gateway, and the built
# binary for the desktop smoke test under Xvfb.
test-go: build
	dsn="$$(.ci/postgres.sh | tail -n1)"; trap '.ci/postgres.sh stop >/dev/null 2>&1 || true' EXIT; \
	FASTEN_TEST_POSTGRES_DSN="$$dsn" FASTEN_REQUIRE_KEYRING=1 FASTEN_DESKTOP_BIN="$(CURDIR)/$(BIN)" \
	  .ci/with-keyring.sh $(GO) test -race -timeout 25m ./...
	# The SIGKILL crash tests re-execute the test binary many times; they skip under -race (a
	# race-instrumented child is several times slower and proves nothing more), so run them here.
	$(GO) test -count=1 -run 'TestSIGKILLDuringImport|TestCrashMidSync|TestIssue13_A_UploadSurvivesSecondProcesses|TestSIGKILLDuringRestore' ./internal/importer ./internal/syncer ./internal/cli ./internal/restore

test-frontend: frontend/node_modules/.installed
	cd frontend && npm test

test-e2e: build
	cd frontend && FASTEN_BIN="$(CURDIR)/$(BIN)" FASTEN_REQUIRE_KEYRING=1 ../.ci/with-keyring.sh npm run e2e

# The packages as a user gets them: builds `make dist`, checks the .deb's contents, desktop entry
# and AppStream data, installs it, runs the installed binary (version, `sandbox` from an empty
# folder, the desktop smoke test under Xvfb with a screenshot, the demo hospital connect in the
# browser e2e), removes it; checks the Windows executables' headers and that every package
# compiles for Windows (vet and test binaries).
test-dist: dist
	FASTEN_REQUIRE_KEYRING=1 build/test-dist.sh

bench:
	.ci/bench.sh

clean:
	rm -rf build/bin build/dist frontend/test-results
