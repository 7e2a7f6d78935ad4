package cli

import (
	"testing"

	"fluidity/internal/agent"
)

func TestDescribeLinks(t *testing.T) {
	for _, c := range []struct {
		states []string
		want   string
	}{
		{[]string{"up", "up", "up"}, "3 of 3 up (streams 2, 0, 5)"},
		{[]string{"up", "down", "connecting"}, "1 of 3 up (streams 2); link 1 down, link 2 connecting"},
		{[]string{"asleep", "asleep"}, "0 of 2 up"},
	} {
		var links []agent.LinkReport
		for i, s := range c.states {
			links = append(links, agent.LinkReport{State: s, Streams: []int{2, 0, 5}[i]})
		}
		if got := describeLinks(links); got != c.want {
			t.Errorf("%v: %q, want %q", c.states, got, c.want)
		}
	}
}
