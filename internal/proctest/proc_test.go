package proctest

import (
	"strings"
	"testing"
)

func TestMetricValue(t *testing.T) {
	const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines_total{kind="x"} 7
go_goroutines 42
`
	tests := []struct {
		name    string
		metric  string
		want    float64
		wantErr bool
	}{
		{"an unlabelled sample is read", "go_goroutines", 42, false},
		{"a missing metric is an error", "go_threads", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := metricValue(strings.NewReader(exposition), tc.metric)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("metricValue(%q) = %v, %v; want %v, error %v", tc.metric, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestMiB(t *testing.T) {
	if got, want := MiB(3<<19), "1.5 MiB"; got != want {
		t.Errorf("MiB(3<<19) = %q, want %q", got, want)
	}
}
