package cli

import (
	"strings"
	"testing"

	"fluidity/internal/golden"
)

// TestReferenceIsCurrent keeps docs/configuration.md what WriteReference
// writes: go test ./internal/cli -run Reference -update rewrites it.
func TestReferenceIsCurrent(t *testing.T) {
	var b strings.Builder
	WriteReference(&b)
	golden.CheckFile(t, "../../docs/configuration.md", b.String())
}
