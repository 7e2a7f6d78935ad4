package ecse2e

import (
	"slices"
	"testing"
	"time"

	"fluidity/internal/agent"
)

// BenchmarkWake measures what Fluidity adds to an exit's cold start, with
// every part a real process against the fake: an asleep agent gets a curl,
// wakes the exit through the function URL (bootstrap processes serving
// the Runtime API), waits for it, connects and relays. Each round reports
//
//   - overhead: curl's time to its first byte less the fake's task start
//     (RunTask to RUNNING, which on AWS is the 30-90 s Fargate takes), so
//     the control plane's calls, its polling, the exit's start (loading its
//     certificates from SSM) and the agent's connection;
//   - sleep: from the last stream's close to the task's stop, with
//     exit_when_idle 1s.
//
// Run it with a fixed count, as each round waits for the exit to sleep:
//
//	go test -run '^$' -bench Wake -benchtime 20x ./internal/ecse2e/
func BenchmarkWake(b *testing.B) {
	d := deploy(b, deployOptions{exitFlags: []string{"--exit-when-idle", "1s"}})
	a := d.startAgent(b, aliceKey)
	var overhead, sleep []time.Duration
	for b.Loop() {
		res := d.mustCurl(b, a.addr)
		closed := time.Now()
		tasks := d.cloud.Tasks()
		task := tasks[len(tasks)-1]
		overhead = append(overhead, res.firstByte-task.StartedAt.Sub(task.CreatedAt))
		stopped := d.waitStopped(b, task.ID)
		sleep = append(sleep, stopped.StoppingAt.Sub(closed))
		waitReport(b, a, "asleep", func(r agent.Report) bool { return asleep(r) })
	}
	b.ReportMetric(ms(percentile(overhead, 50)), "overhead-p50-ms")
	b.ReportMetric(ms(percentile(overhead, 95)), "overhead-p95-ms")
	b.ReportMetric(ms(percentile(sleep, 50)), "sleep-p50-ms")
	b.ReportMetric(ms(percentile(sleep, 95)), "sleep-p95-ms")
	b.ReportMetric(0, "ns/op") // a round is mostly waiting for the idle time
}

func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, (len(s)*p+99)/100-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
