package lifecycle

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"fluidity/internal/controlapi"
)

func TestHourlyCostIsTheListPriceSum(t *testing.T) {
	// 0.25 vCPU × $0.03238 + 0.5 GB × $0.00356 + $0.005 for the address.
	if got := HourlyCost(); math.Abs(got-0.014875) > 1e-9 {
		t.Fatalf("HourlyCost = %v, want 0.014875", got)
	}
	// An hour a day for a month: about fifty cents.
	if month := 30 * HourlyCost(); month < 0.40 || month > 0.50 {
		t.Fatalf("an hour a day costs $%.2f a month", month)
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestUsageCountsEachTaskFromCreationToStopWithinTheMonth(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.json")
	u, err := OpenUsage(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	// A task that ran 90 minutes this month and stopped.
	u.Observe(controlapi.State{State: controlapi.Stopped, Task: "a", CreatedAt: ptr(month.Add(time.Hour)), StoppedAt: ptr(month.Add(150 * time.Minute))})
	// One that began last month and stopped 30 minutes into this one.
	u.Observe(controlapi.State{State: controlapi.Stopped, Task: "b", CreatedAt: ptr(month.Add(-5 * time.Hour)), StoppedAt: ptr(month.Add(30 * time.Minute))})
	// One seen once, stopped before this month: not counted.
	u.Observe(controlapi.State{State: controlapi.Stopped, Task: "c", CreatedAt: ptr(month.Add(-48 * time.Hour)), StoppedAt: ptr(month.Add(-47 * time.Hour))})
	m := u.Month(now)
	if m.Tasks != 2 || math.Abs(m.Hours-2) > 1e-9 || math.Abs(m.CostUSD-2*HourlyCost()) > 1e-9 {
		t.Fatalf("month %+v, want 2 tasks, 2 hours", m)
	}

	// The record survives a restart of the agent.
	again, err := OpenUsage(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m2 := again.Month(now); m2 != m {
		t.Fatalf("after reopening: %+v, want %+v", m2, m)
	}
}

func TestRunningTaskCountsUntilLastSeen(t *testing.T) {
	u, err := OpenUsage(filepath.Join(t.TempDir(), "usage.json"), nil)
	if err != nil {
		t.Fatal(err)
	}
	created := time.Now().Add(-time.Minute)
	u.Observe(controlapi.State{State: controlapi.Ready, Task: "a", CreatedAt: &created})
	u.Alive("a")
	m := u.Month(time.Now())
	if m.Tasks != 1 || m.Hours < time.Minute.Hours()*0.99 || m.Hours > 2*time.Minute.Hours() {
		t.Fatalf("month %+v, want about a minute", m)
	}
}

func TestDamagedUsageRecordIsSetAsideNotFatal(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := OpenUsage(path, nil)
	if err != nil {
		t.Fatalf("OpenUsage of a damaged file: %v", err)
	}
	if m := u.Month(time.Now()); m.Tasks != 0 {
		t.Fatalf("a damaged record gave %+v", m)
	}
	if b, err := os.ReadFile(path + ".bad"); err != nil || string(b) != "{not json" {
		t.Fatalf("the damaged record was not kept aside: %q, %v", b, err)
	}
}
