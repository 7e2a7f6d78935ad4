package cli

import (
	"io"
	"log/slog"
	"testing"
)

func TestApplyProcs(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name    string
		environ []string
		procs   int
		want    int // 0: left alone
	}{
		{"the default", nil, defaultProcs, 1},
		{"configured", []string{"HOME=/root"}, 3, 3},
		{"0 leaves the runtime's default", nil, 0, 0},
		{"GOMAXPROCS in the environment wins", []string{"GOMAXPROCS=4"}, defaultProcs, 0},
		{"an empty GOMAXPROCS does not", []string{"GOMAXPROCS="}, 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := 0
			env := Env{Environ: tc.environ, SetProcs: func(n int) int { got = n; return 0 }}
			applyProcs(env, tc.procs, log)
			if got != tc.want {
				t.Fatalf("set %d threads, want %d (0: not set)", got, tc.want)
			}
		})
	}
}
