package controlplane

import (
	"encoding/json"

	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"fluidity/internal/awsfake"
	"fluidity/internal/controlapi"
)

func TestDailyLimitStopsAnExitAndRefusesWakesUntilTheNextDay(t *testing.T) {
	w := newWorld(t, func(c *Config) { c.DailyLimit = time.Hour })
	ssmC := ssm.NewFromConfig(w.cloud.Config(lambdaKey))
	// Midday, so that the hour below stays within one day.
	now := w.plane.cfg.Now().UTC()
	noon := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC)
	w.advance(noon.Sub(now))

	a := w.running(t, alice, "a")
	b := w.running(t, bobSession, "b")
	lease := func() string { return w.plane.cfg.Now().Add(5 * time.Minute).UTC().Format(time.RFC3339) }

	// Under the limit: the sweep writes the time down and stops nothing.
	w.tag(t, a.Task, LeaseTag, lease())
	w.tag(t, b.Task, LeaseTag, lease())
	rep, err := w.plane.Sweep(ctx(t))
	if err != nil || rep.Stopped != 0 || rep.LedgerError != "" {
		t.Fatalf("sweep under the limit: %+v, %v", rep, err)
	}

	// An hour on, both exits (in use, leased) have run the limit.
	w.advance(time.Hour + time.Minute)
	w.tag(t, a.Task, LeaseTag, lease())
	w.tag(t, b.Task, LeaseTag, lease())
	rep, err = w.plane.Sweep(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range []string{a.Task, b.Task} {
		if d := decisionFor(t, rep, task); !d.Stop || !strings.Contains(d.Reason, "daily limit") {
			t.Fatalf("a task after an hour: %+v", d)
		}
	}
	// The ledger in SSM holds the hour.
	out, err := ssmC.GetParameter(ctx(t), &ssm.GetParameterInput{Name: aws.String("/fluidity/usage/" + ownerFor(alice).key)})
	if err != nil {
		t.Fatal(err)
	}
	var u usage
	if err := json.Unmarshal([]byte(aws.ToString(out.Parameter.Value)), &u); err != nil || u.total() < time.Hour {
		t.Fatalf("ledger %s: %v", aws.ToString(out.Parameter.Value), err)
	}

	_, err = w.plane.Wake(ctx(t), alice, "again")
	ce := wantCode(t, err, http.StatusTooManyRequests, controlapi.CodeDailyLimit)
	if !strings.Contains(ce.Message, "daily limit") || !strings.Contains(ce.Message, "00:00") {
		t.Fatalf("refusal %q does not say when it resets", ce.Message)
	}

	// The next day, alice's exit may run again.
	if _, err := w.cloud.WaitTasks(ctx(t), func(ts []awsfake.Task) bool {
		for _, task := range ts {
			if task.LastStatus != "STOPPED" {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	w.advance(13 * time.Hour)
	if _, err := w.plane.Wake(ctx(t), alice, "tomorrow"); err != nil {
		t.Fatalf("a wake the next day: %v", err)
	}
}

func TestRanTodayCountsOnlyTodaysPart(t *testing.T) {
	day := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) *time.Time {
		t := day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
		return &t
	}
	now := *at(15, 0)
	for _, tc := range []struct {
		name             string
		created, stopped *time.Time
		want             time.Duration
	}{
		{"ran 90 minutes today", at(10, 0), at(11, 30), 90 * time.Minute},
		{"began yesterday", at(-1, 0), at(0, 30), 30 * time.Minute},
		{"still running", at(14, 0), nil, time.Hour},
		{"stopped yesterday", at(-3, 0), at(-2, 0), 0},
	} {
		task := taskAt(tc.created, tc.stopped)
		if got := time.Duration(ranToday(task, day, now) * float64(time.Second)); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func taskAt(created, stopped *time.Time) ecstypes.Task {
	return ecstypes.Task{CreatedAt: created, StoppedAt: stopped}
}
