# Names for the everyday commands. The README's test command is `make test`.
GO ?= go

.PHONY: test test-portable check bench fuzz build dist

build:
	$(GO) build -o bin/fluidity ./cmd/fluidity

# The full test suite, race detector on: what CI runs.
test:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l cmd internal); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) test -race -count=1 ./...

# The suite again with the portable socket code (see internal/sockio), as
# Windows and macOS run it; CI runs both.
test-portable:
	$(GO) test -race -count=1 -tags fluidity_portable ./...

check: test
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

# Performance: separate processes on loopback, each figure beside its baseline
# from the same run, and ssh -D beside them where sshd is installed (.ci/sshd
# installs it when missing and run as root). See docs/performance.md.
bench:
	bash .ci/sshd
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/bench/

# Longer fuzzing of the parsers of untrusted input (ten times CI's budget).
fuzz:
	bash .ci/fuzz 10

# Release archives for every platform (Windows, macOS and Linux, amd64 and
# arm64), version and commit stamped, with SHA256SUMS; each is checked
# (headers, stamps, sums) once built. Nothing is published.
dist:
	$(GO) run ./internal/dist/distcmd -dir dist
