package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"fluidity/internal/agent"
	"fluidity/internal/lifecycle"
	"fluidity/internal/tunnel"
)

// statusTimeout bounds the question to the agent.
const statusTimeout = 5 * time.Second

func runStatus(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "status", "status [--admin ADDR] [--json]", `
Ask the running agent how its link is: state and since when, the exit's
address, the identity it proves, open streams, bytes carried, reconnects,
the last error and the round-trip time. The agent answers on its admin
listener (--admin on 'fluidity agent', 127.0.0.1:8081 by default; the
environment variable FLUIDITY_ADMIN is read too). --json prints the
agent's answer as it is, for scripts. Pointed at an exit server's admin
listener, it prints the exit's streams, how long it has been idle, when it
stops by itself and its lease.`)
	addr := fs.String("admin", "", "the agent's admin address, HOST:PORT (default "+defaultAgentAdmin+", or FLUIDITY_ADMIN)")
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "fluidity status: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *addr == "" {
		*addr = lookupEnv(env.Environ, "FLUIDITY_ADMIN")
	}
	if *addr == "" {
		*addr = defaultAgentAdmin
	}
	body, err := fetchStatus(ctx, *addr)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := env.Stdout.Write(body)
		return err
	}
	var keys map[string]any
	if json.Unmarshal(body, &keys) == nil && isExitReport(keys) {
		var r exitReport
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("the exit at %s answered a status that does not parse: %w", *addr, err)
		}
		printExitReport(env.Stdout, r, time.Now())
		return nil
	}
	var r agent.Report
	if err := json.Unmarshal(body, &r); err != nil {
		return fmt.Errorf("the agent at %s answered something that is not its status: %w", *addr, err)
	}
	printReport(env.Stdout, r, time.Now())
	return nil
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return v
		}
	}
	return ""
}

// fetchStatus asks the agent at addr for its /status.
func fetchStatus(ctx context.Context, addr string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/status", nil)
	if err != nil {
		return nil, fmt.Errorf("admin address %q: %w (example: 127.0.0.1:8081)", addr, err)
	}
	tr := &http.Transport{Proxy: nil}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("no agent at %s: is it running? Start it with 'fluidity agent --server HOST:PORT --certs DIR' (or 'fluidity up'), or point to its admin listener with --admin ADDR (%v)", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the status from %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s answered %s to /status: is it the admin listener of a fluidity agent or exit server?", addr, resp.Status)
	}
	return body, nil
}

// printReport writes r for a person.
func printReport(w io.Writer, r agent.Report, now time.Time) {
	line := func(k, format string, a ...any) { fmt.Fprintf(w, "%-12s %s\n", k+":", fmt.Sprintf(format, a...)) }
	since := ""
	if !r.Since.IsZero() {
		since = fmt.Sprintf(" for %s (since %s)", humanDuration(now.Sub(r.Since)), r.Since.Local().Format("2006-01-02 15:04:05"))
	}
	line("Link", "%s%s", r.State, since)
	exit := r.Exit
	if r.RTTSeconds > 0 {
		exit += fmt.Sprintf(", round trip %s", humanRTT(time.Duration(r.RTTSeconds*float64(time.Second))))
	}
	line("Exit", "%s", exit)
	if len(r.Links) > 1 {
		line("Links", "%s", describeLinks(r.Links))
	}
	if lc := r.Lifecycle; lc != nil {
		printLifecycle(line, *lc, now)
	}
	id := r.Identity
	if id == "" {
		id = "(unknown)"
	}
	line("Identity", "%s (client certificate)", id)
	if r.IAM != "" {
		line("IAM", "%s", r.IAM)
	}
	if r.Verified != "" {
		line("Verified as", "%s (by the exit)", r.Verified)
	}
	if r.Listen != "" {
		line("Proxy", "%s", r.Listen)
	}
	line("Streams", "%d open, %d since start", r.OpenStreams, r.StreamsTotal)
	line("Clients", "%d connections open", r.Connections)
	line("Traffic", "%s up, %s down", humanBytes(r.BytesUp), humanBytes(r.BytesDown))
	line("Reconnects", "%d", r.Reconnects)
	if r.LastError != "" {
		line("Last error", "%s", r.LastError)
	}
}

// describeLinks sums up the agent's pool of links: how many are up, the
// streams each carries, and the state of those that are not up.
func describeLinks(links []agent.LinkReport) string {
	var streams, others []string
	for i, l := range links {
		if l.State == string(tunnel.StateUp) {
			streams = append(streams, strconv.Itoa(l.Streams))
		} else {
			others = append(others, fmt.Sprintf("link %d %s", i, l.State))
		}
	}
	s := fmt.Sprintf("%d of %d up", len(streams), len(links))
	if len(streams) > 0 {
		s += " (streams " + strings.Join(streams, ", ") + ")"
	}
	if len(others) > 0 && len(streams) > 0 {
		s += "; " + strings.Join(others, ", ")
	}
	return s
}

// printLifecycle writes the exit on demand's lines of a status report.
func printLifecycle(line func(k, format string, a ...any), lc lifecycle.Status, now time.Time) {
	state := string(lc.State)
	switch lc.State {
	case lifecycle.StateWaking:
		state = fmt.Sprintf("waking for %s", humanDuration(now.Sub(lc.Since)))
		if lc.TaskStatus != "" {
			state += " (task " + lc.TaskStatus + ")"
		}
	case lifecycle.StateReady:
		state = fmt.Sprintf("running for %s", humanDuration(now.Sub(lc.Since)))
		if lc.LastWake > 0 {
			state += fmt.Sprintf(", woke in %s", humanDuration(lc.LastWake))
		}
	case lifecycle.StateAsleep:
		state = "asleep; the next connection wakes it"
	}
	line("On demand", "%s", state)
	if lc.Task != "" {
		line("Task", "%s", lc.Task)
	}
	if lc.Reason != "" {
		line("Why asleep", "%s", lc.Reason)
	}
	if u := lc.Usage; u != nil {
		line("This month", "%.1f exit hours in %d tasks, about $%.2f at list price (compute and address)", u.Hours, u.Tasks, u.CostUSD)
	}
}

// humanDuration is d to the second, in its two largest units.
func humanDuration(d time.Duration) string {
	d = max(d, 0).Round(time.Second)
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h, m, s := d/time.Hour, (d%time.Hour)/time.Minute, (d%time.Minute)/time.Second
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, h)
	case h > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case m > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%ds", s)
}

func humanRTT(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(100 * time.Microsecond).String()
}

// humanBytes is n in B, KiB, MiB, GiB or TiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGT"[i-1])
}
