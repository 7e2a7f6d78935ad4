package metrics

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestIdentitiesBeyondTheLimitAreOther(t *testing.T) {
	reg := NewRegistry()
	m := NewExit(reg, 3)
	for i := range 5 {
		m.StreamStarted(0)
		m.StreamEnded(fmt.Sprintf("client-%d", i), ReasonOK, true, 10, 20)
	}
	m.StreamStarted(0)
	m.StreamEnded("client-0", ReasonOK, true, 1, 2)
	for _, tc := range []struct {
		id   string
		want float64
	}{{"client-0", 2}, {"client-1", 1}, {"client-2", 1}, {OtherIdentity, 2}} {
		if got := testutil.ToFloat64(m.idStreams.WithLabelValues(tc.id)); got != tc.want {
			t.Errorf("streams of %s: %v, want %v", tc.id, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.idStreams); n != 4 {
		t.Errorf("%d identity series, want 4 (3 identities and other)", n)
	}
	if got := testutil.ToFloat64(m.streamsOpen); got != 0 {
		t.Errorf("open streams %v after all ended", got)
	}
}

func TestEveryMetricHasHelpAndThePrefix(t *testing.T) {
	reg := NewRegistry()
	NewExit(reg, 0)
	NewAgent(reg, func() AgentSnapshot { return AgentSnapshot{LinkState: "up"} })
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		name := mf.GetName()
		if strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
			continue
		}
		n++
		if !strings.HasPrefix(name, "fluidity_") || mf.GetHelp() == "" {
			t.Errorf("metric %s: want the fluidity_ prefix and a help text", name)
		}
	}
	if n < 15 {
		t.Errorf("only %d fluidity metrics gathered", n)
	}
}
