package controlplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"fluidity/internal/controlapi"
)

// SSM is the part of the SSM API the daily limit uses (*ssm.Client).
type SSM interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	PutParameter(context.Context, *ssm.PutParameterInput, ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
}

// usage is one owner's exit time on one day (UTC), as the ledger keeps it:
// the seconds each task ran that day. ECS forgets a stopped task after
// about an hour; the sweep, which runs more often than that, writes each
// task's time down before it is forgotten.
type usage struct {
	Day   string             `json:"day"`   // 2006-01-02
	Tasks map[string]float64 `json:"tasks"` // task ID → seconds that day
}

func (u usage) total() time.Duration {
	var s float64
	for _, v := range u.Tasks {
		s += v
	}
	return time.Duration(s * float64(time.Second))
}

// ledgerName is the SSM parameter holding an owner's usage.
func (p *Plane) ledgerName(o owner) string {
	return strings.TrimSuffix(p.cfg.LedgerPrefix, "/") + "/" + o.key
}

// readLedger returns an owner's usage for day; a missing or unreadable
// parameter, or one of another day, is an empty record.
func (p *Plane) readLedger(ctx context.Context, o owner, day string) (usage, error) {
	u := usage{Day: day, Tasks: map[string]float64{}}
	out, err := p.cfg.SSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(p.ledgerName(o))})
	var nf *ssmtypes.ParameterNotFound
	switch {
	case errors.As(err, &nf):
		return u, nil
	case err != nil:
		return u, awsError(err)
	}
	var stored usage
	if out.Parameter == nil || json.Unmarshal([]byte(aws.ToString(out.Parameter.Value)), &stored) != nil || stored.Day != day || stored.Tasks == nil {
		return u, nil
	}
	return stored, nil
}

func (p *Plane) writeLedger(ctx context.Context, o owner, u usage) error {
	data, _ := json.Marshal(u)
	_, err := p.cfg.SSM.PutParameter(ctx, &ssm.PutParameterInput{
		Name:        aws.String(p.ledgerName(o)),
		Value:       aws.String(string(data)),
		Type:        ssmtypes.ParameterTypeString,
		Overwrite:   aws.Bool(true),
		Description: aws.String("fluidity: exit time today of " + o.arn),
	})
	if err != nil {
		return awsError(err)
	}
	return nil
}

// dayOf is the UTC day of t and when it began.
func dayOf(t time.Time) (string, time.Time) {
	t = t.UTC()
	start := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return start.Format("2006-01-02"), start
}

// ranToday is how long task t ran on the day that began at dayStart, up to
// now: from its creation (billing starts about then) to its stop.
func ranToday(t ecstypes.Task, dayStart, now time.Time) float64 {
	from := aws.ToTime(t.CreatedAt)
	if from.Before(dayStart) {
		from = dayStart
	}
	to := now
	if t.StoppedAt != nil {
		to = *t.StoppedAt
	}
	if !to.After(from) {
		return 0
	}
	return to.Sub(from).Seconds()
}

// checkDailyLimit refuses a wake when the owner's exit has run its daily
// limit today.
func (p *Plane) checkDailyLimit(ctx context.Context, o owner) error {
	if p.cfg.DailyLimit <= 0 {
		return nil
	}
	now := p.cfg.Now()
	day, start := dayOf(now)
	u, err := p.readLedger(ctx, o, day)
	if err != nil {
		return err
	}
	// Tasks the ledger does not have yet (stopped since the last sweep).
	stopped, err := p.ownerTasks(ctx, o, ecstypes.DesiredStatusStopped)
	if err != nil {
		return err
	}
	for _, t := range stopped {
		id := shortID(aws.ToString(t.TaskArn))
		u.Tasks[id] = max(u.Tasks[id], ranToday(t, start, now))
	}
	if used := u.total(); used >= p.cfg.DailyLimit {
		reset := start.Add(24 * time.Hour)
		return controlapi.Errorf(http.StatusTooManyRequests, controlapi.CodeDailyLimit,
			"your exit has run %v today, its daily limit; it may run again from %s (in %v)",
			used.Round(time.Minute), reset.Format("15:04 MST"), reset.Sub(now).Round(time.Minute))
	}
	return nil
}

// keepLedgers writes down, for every owner whose tasks ran today, how long
// each ran, and returns each owner's total, by owner key. The sweep calls
// it with the live tasks it has described; it lists the stopped ones
// itself.
func (p *Plane) keepLedgers(ctx context.Context, live []ecstypes.Task, now time.Time) (map[string]time.Duration, error) {
	arns, err := p.listTasks(ctx, &ecs.ListTasksInput{DesiredStatus: ecstypes.DesiredStatusStopped})
	if err != nil {
		return nil, err
	}
	stopped, err := p.describe(ctx, arns)
	if err != nil {
		return nil, err
	}
	day, start := dayOf(now)
	byOwner := map[string][]ecstypes.Task{}
	owners := map[string]owner{}
	for _, t := range append(stopped, live...) {
		key, arn := aws.ToString(t.StartedBy), tagValue(t.Tags, OwnerTag)
		if !strings.HasPrefix(key, StartedByPrefix) || arn == "" || ownerFor(arn).key != key || ranToday(t, start, now) == 0 {
			continue
		}
		byOwner[key] = append(byOwner[key], t)
		owners[key] = ownerFor(arn)
	}
	totals := map[string]time.Duration{}
	var errs []error
	for key, tasks := range byOwner {
		o := owners[key]
		u, err := p.readLedger(ctx, o, day)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		changed := false
		for _, t := range tasks {
			id := shortID(aws.ToString(t.TaskArn))
			if s := ranToday(t, start, now); s > u.Tasks[id] {
				u.Tasks[id], changed = s, true
			}
		}
		if changed {
			if err := p.writeLedger(ctx, o, u); err != nil {
				errs = append(errs, err)
			}
		}
		totals[key] = u.total()
	}
	if len(errs) > 0 {
		return totals, fmt.Errorf("keeping the daily ledgers: %w", errors.Join(errs...))
	}
	return totals, nil
}
