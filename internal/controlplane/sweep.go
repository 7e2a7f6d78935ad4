package controlplane

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/ecs/types"
)

// Decision is what the sweep did with one task.
type Decision struct {
	Task   string `json:"task"`
	Owner  string `json:"owner"`
	Status string `json:"status"` // the task's lastStatus
	Stop   bool   `json:"stop"`
	Reason string `json:"reason"` // why it was stopped, or why it was kept
	Err    string `json:"error,omitempty"`
}

// SweepReport is the outcome of one sweep.
type SweepReport struct {
	Checked   int        `json:"checked"`
	Stopped   int        `json:"stopped"`
	Decisions []Decision `json:"decisions"`
	// LedgerError says what of the daily ledgers could not be kept.
	LedgerError string `json:"ledger_error,omitempty"`
}

// Sweep looks at every live task the control plane started and stops
// those that should not be running: an expired lease, no lease within
// LeaseGrace of running, not started within StartTimeout, older than
// MaxLifetime, or a duplicate of an owner's older task. Each decision is
// logged with the task, its owner and the reason. A task that could not be
// stopped is reported and left for the next sweep; Sweep fails only when it
// cannot list or describe the tasks.
func (p *Plane) Sweep(ctx context.Context) (SweepReport, error) {
	arns, err := p.listTasks(ctx, &ecs.ListTasksInput{DesiredStatus: types.DesiredStatusRunning})
	if err != nil {
		return SweepReport{}, err
	}
	tasks, err := p.describe(ctx, arns)
	if err != nil {
		return SweepReport{}, err
	}
	tasks = slices.DeleteFunc(tasks, func(t types.Task) bool {
		return !strings.HasPrefix(aws.ToString(t.StartedBy), StartedByPrefix) || aws.ToString(t.DesiredStatus) == "STOPPED"
	})
	slices.SortFunc(tasks, func(a, b types.Task) int { return aws.ToTime(a.CreatedAt).Compare(aws.ToTime(b.CreatedAt)) })

	now := p.cfg.Now()
	var rep SweepReport
	var totals map[string]time.Duration
	if p.cfg.DailyLimit > 0 {
		if totals, err = p.keepLedgers(ctx, tasks, now); err != nil {
			// The limit is enforced with what could be read; the stops
			// below must not wait for a ledger.
			p.log.Warn("sweep could not keep every daily ledger", "err", err)
			rep.LedgerError = err.Error()
		}
	}
	seen := map[string]string{} // owner key → the oldest task's ARN
	for _, t := range tasks {
		d := Decision{Task: aws.ToString(t.TaskArn), Owner: tagValue(t.Tags, OwnerTag), Status: aws.ToString(t.LastStatus)}
		key := aws.ToString(t.StartedBy)
		if kept, dup := seen[key]; dup {
			d.Stop, d.Reason = true, "a duplicate exit task for this owner; keeping the older "+shortID(kept)
		} else {
			seen[key] = d.Task
			d.Stop, d.Reason = p.judge(t, now)
			if used, ok := totals[key]; ok && !d.Stop && used >= p.cfg.DailyLimit {
				d.Stop, d.Reason = true, fmt.Sprintf("its owner's exit has run %v today, the daily limit %v", used.Round(time.Minute), p.cfg.DailyLimit)
			}
		}
		rep.Checked++
		if d.Stop {
			if _, err := p.stopTask(ctx, t, "sweep: "+d.Reason); err != nil {
				d.Err = err.Error()
				p.log.Warn("sweep could not stop a task; the next sweep tries again", "task", d.Task, "owner", d.Owner, "reason", d.Reason, "err", err)
			} else {
				rep.Stopped++
				p.log.Info("sweep stopped a task", "task", d.Task, "owner", d.Owner, "status", d.Status, "reason", d.Reason)
			}
		} else {
			p.log.Debug("sweep kept a task", "task", d.Task, "owner", d.Owner, "status", d.Status, "reason", d.Reason)
		}
		rep.Decisions = append(rep.Decisions, d)
	}
	p.log.Info("sweep done", "checked", rep.Checked, "stopped", rep.Stopped)
	return rep, nil
}

// judge decides whether a live task should stop at now, and says why (or
// why not).
func (p *Plane) judge(t types.Task, now time.Time) (stop bool, reason string) {
	created := aws.ToTime(t.CreatedAt)
	if age := now.Sub(created); age > p.cfg.MaxLifetime {
		return true, fmt.Sprintf("older than the maximum lifetime %v (started %s)", p.cfg.MaxLifetime, created.UTC().Format(time.RFC3339))
	}
	if aws.ToString(t.LastStatus) != "RUNNING" {
		if age := now.Sub(created); age > p.cfg.StartTimeout {
			return true, fmt.Sprintf("not running %v after it was started (status %s)", p.cfg.StartTimeout, aws.ToString(t.LastStatus))
		}
		return false, "starting"
	}
	lease, ok := leaseOf(t)
	if !ok {
		running := created
		if t.StartedAt != nil {
			running = *t.StartedAt
		}
		if now.Sub(running) > p.cfg.LeaseGrace {
			if tagValue(t.Tags, LeaseTag) != "" {
				return true, fmt.Sprintf("its lease %q is not a time", tagValue(t.Tags, LeaseTag))
			}
			return true, fmt.Sprintf("no lease %v after it started running (the exit is not renewing it)", p.cfg.LeaseGrace)
		}
		return false, "running, within the grace for its first lease"
	}
	if now.After(lease.Add(p.cfg.LeaseSlack)) {
		return true, "its lease expired at " + lease.UTC().Format(time.RFC3339)
	}
	return false, "leased until " + lease.UTC().Format(time.RFC3339)
}
