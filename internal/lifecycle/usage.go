package lifecycle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"fluidity/internal/atomicfile"
	"fluidity/internal/controlapi"
)

// Prices at AWS list price (us-east-1, Linux/ARM64 Fargate, December 2026)
// for the task size 'fluidity aws deploy' uses. They are the one place
// the agent's cost estimate comes from; docs/aws.md shows the sum line by
// line.
const (
	TaskVCPU          = 0.25    // vCPU per task
	TaskMemoryGB      = 0.5     // GB per task
	PriceVCPUHour     = 0.03238 // USD per vCPU-hour, Fargate ARM64
	PriceGBHour       = 0.00356 // USD per GB-hour, Fargate ARM64
	PricePublicIPHour = 0.005   // USD per public IPv4 address-hour
)

// HourlyCost is what one exit costs per hour it runs, at list price.
func HourlyCost() float64 {
	return TaskVCPU*PriceVCPUHour + TaskMemoryGB*PriceGBHour + PricePublicIPHour
}

// MonthUsage is the exit's hours in the current calendar month (UTC), as
// far as this agent saw them.
type MonthUsage struct {
	Month string  `json:"month"` // 2026-12
	Tasks int     `json:"tasks"` // tasks that ran in the month
	Hours float64 `json:"hours"`
	// CostUSD is Hours at HourlyCost: compute and the public address only;
	// logs, the image and the control plane add cents (docs/aws.md).
	CostUSD float64 `json:"cost_usd"`
}

// Usage is a small local record of the exit tasks this agent saw: when
// each was created and when it stopped (or was last seen running). AWS
// bills a Fargate task from about its creation until it stops; tasks this
// agent never saw (started from elsewhere) are not counted, and a task that
// ran on after the agent stopped counts until it was last seen.
type Usage struct {
	path string
	log  *slog.Logger

	mu    sync.Mutex          // guards tasks and saved
	tasks map[string]*taskUse // by task ARN
	saved time.Time           // when the file was last written
}

type taskUse struct {
	Task    string     `json:"task"`
	Created time.Time  `json:"created"`
	Seen    time.Time  `json:"seen"`              // last seen running
	Stopped *time.Time `json:"stopped,omitempty"` // when it stopped, as ECS says
}

type usageFile struct {
	Version int        `json:"version"`
	Tasks   []*taskUse `json:"tasks"`
}

// keepUsage is how long a task's record is kept.
const keepUsage = 400 * 24 * time.Hour

// saveEvery bounds how often a task merely seen again is written down.
const saveEvery = time.Minute

// OpenUsage reads the record at path; a missing file is an empty record.
// A damaged file is set aside (path + ".bad") and a new record begun, so
// a bad file never stops the agent.
func OpenUsage(path string, log *slog.Logger) (*Usage, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &Usage{path: path, log: log, tasks: map[string]*taskUse{}}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return u, nil
	case err != nil:
		return nil, fmt.Errorf("usage record: %w", err)
	}
	var f usageFile
	if err := json.Unmarshal(data, &f); err != nil || f.Version != 1 {
		log.Warn("the usage record is damaged; starting a new one", "path", path, "kept_as", path+".bad")
		os.Rename(path, path+".bad")
		return u, nil
	}
	for _, t := range f.Tasks {
		if t != nil && t.Task != "" && !t.Created.IsZero() {
			u.tasks[t.Task] = t
		}
	}
	return u, nil
}

// Observe records what a state from the control plane says of its task.
func (u *Usage) Observe(st controlapi.State) {
	if st.Task == "" || st.CreatedAt == nil {
		return
	}
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	t, known := u.tasks[st.Task]
	if !known {
		t = &taskUse{Task: st.Task, Created: *st.CreatedAt, Seen: now}
		u.tasks[st.Task] = t
	}
	changed := !known
	if st.StoppedAt != nil && t.Stopped == nil {
		stopped := *st.StoppedAt
		t.Stopped, changed = &stopped, true
	}
	if st.State != controlapi.Stopped {
		t.Seen = now
	}
	u.saveLocked(changed, now)
}

// Alive records that task is running now.
func (u *Usage) Alive(task string) {
	now := time.Now()
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.tasks[task]; ok && t.Stopped == nil {
		t.Seen = now
		u.saveLocked(false, now)
	}
}

// Flush writes the record now.
func (u *Usage) Flush() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.saveLocked(true, time.Now())
}

// saveLocked writes the record if it changed, or if a minute has passed.
func (u *Usage) saveLocked(changed bool, now time.Time) {
	if !changed && now.Sub(u.saved) < saveEvery {
		return
	}
	f := usageFile{Version: 1}
	for id, t := range u.tasks {
		if now.Sub(t.end()) > keepUsage {
			delete(u.tasks, id)
			continue
		}
		f.Tasks = append(f.Tasks, t)
	}
	slices.SortFunc(f.Tasks, func(a, b *taskUse) int { return a.Created.Compare(b.Created) })
	data, _ := json.MarshalIndent(f, "", "  ")
	if err := atomicfile.Write(u.path, data); err != nil {
		u.log.Warn("could not write the usage record", "path", u.path, "err", err)
		return
	}
	u.saved = now
}

func (t *taskUse) end() time.Time {
	if t.Stopped != nil {
		return *t.Stopped
	}
	return t.Seen
}

// Month sums the hours of the calendar month (UTC) that holds now.
func (u *Usage) Month(now time.Time) MonthUsage {
	now = now.UTC()
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 1, 0)
	u.mu.Lock()
	defer u.mu.Unlock()
	m := MonthUsage{Month: from.Format("2006-01")}
	for _, t := range u.tasks {
		start, end := t.Created, t.end()
		if start.Before(from) {
			start = from
		}
		if end.After(to) {
			end = to
		}
		if end.After(start) {
			m.Tasks++
			m.Hours += end.Sub(start).Hours()
		}
	}
	m.CostUSD = m.Hours * HourlyCost()
	return m
}
