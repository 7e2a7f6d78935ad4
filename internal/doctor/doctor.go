// Package doctor checks, step by step, everything between the agent and a
// working tunnel, and says for each step what it found and how to fix it:
// the configuration and certificates, the proxy settings, reaching the
// exit directly and through the upstream proxy, TLS interception, the
// mutual TLS handshake, the IAM identity, the control plane, a request
// through the tunnel, and the round-trip time.
//
// A step that cannot run because an earlier one failed is skipped with the
// reason, so the first failure is the one to fix.
package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"fluidity/internal/controlapi"
	"fluidity/internal/pki"
	"fluidity/internal/tunnel"
	"fluidity/internal/upstream"
)

// Verdicts.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
	Skip = "skip"
)

// Config is what doctor checks: the agent's configuration.
type Config struct {
	// CertFile, KeyFile and CAFile are the agent's client certificate, its
	// key and the CA the exit's certificate must chain to; ServerName the
	// name it is verified against.
	CertFile, KeyFile, CAFile, ServerName string
	// Exit is the exit's host:port; "" when the control plane says where
	// it is.
	Exit string
	// Dialer reaches the exit (through the upstream proxy, if any).
	Dialer *upstream.Dialer
	// ProxySettings describes the configured and environment proxy
	// settings, one line each, for the proxy-settings step.
	ProxySettings []string
	// Token, if set (IAM on), mints an IAM token for the tunnel's requests.
	Token func(ctx context.Context) (string, error)
	// Locate, if set (an exit on demand), asks the control plane where the
	// exit is, without waking it: "" means asleep.
	Locate func(ctx context.Context) (string, error)
	// Target is the host:port of the test request through the tunnel. If
	// empty, example.com:443.
	Target string
	// StepTimeout bounds each network step. If zero, 10s.
	StepTimeout time.Duration
	// Now is the clock for certificate expiry. If nil, time.Now.
	Now func() time.Time
}

// Step is one check's verdict.
type Step struct {
	Name    string `json:"step"`
	Verdict string `json:"verdict"`
	Detail  string `json:"detail"`
	Fix     string `json:"fix,omitempty"`
}

// Report is every step, in order.
type Report struct {
	Steps []Step `json:"steps"`
	OK    bool   `json:"ok"` // no step failed
}

// Step names, in order.
const (
	StepConfig       = "configuration and certificates"
	StepProxy        = "proxy settings"
	StepDirect       = "reach the exit directly"
	StepViaProxy     = "reach the exit through the upstream proxy"
	StepInterception = "TLS interception"
	StepMTLS         = "mutual TLS handshake"
	StepIAM          = "IAM credentials and token"
	StepControl      = "control plane"
	StepRequest      = "test request through the tunnel"
	StepRTT          = "round-trip time"
)

// run is one doctor's progress.
type run struct {
	cfg      Config
	report   Report
	tls      *tls.Config
	exit     string
	link     *tunnel.Conn
	mtlsStep Step // the mutual TLS verdict, set by checkHandshake
	header   http.Header
}

// Run runs every step and returns the report.
func Run(ctx context.Context, cfg Config) Report {
	if cfg.Target == "" {
		cfg.Target = "example.com:443"
	}
	if cfg.StepTimeout == 0 {
		cfg.StepTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Dialer == nil {
		cfg.Dialer = &upstream.Dialer{}
	}
	r := &run{cfg: cfg, exit: cfg.Exit}
	defer func() {
		if r.link != nil {
			r.link.Close()
		}
	}()
	one := func(f func(context.Context) Step) func(context.Context) []Step {
		return func(ctx context.Context) []Step { return []Step{f(ctx)} }
	}
	steps := []struct {
		names []string
		run   func(context.Context) []Step
	}{
		{[]string{StepConfig}, one(r.checkConfig)},
		{[]string{StepProxy}, one(r.checkProxySettings)},
		{[]string{StepControl}, one(r.checkControlPlane)},
		{[]string{StepDirect}, one(r.checkDirect)},
		{[]string{StepViaProxy}, one(r.checkViaProxy)},
		{[]string{StepInterception, StepMTLS}, r.checkHandshake},
		{[]string{StepIAM}, one(r.checkIAM)},
		{[]string{StepRequest}, one(r.checkRequest)},
		{[]string{StepRTT}, one(r.checkRTT)},
	}
	failed := ""
	for _, step := range steps {
		if failed != "" && step.names[0] != StepIAM {
			// Nothing below can work: say so rather than try.
			for _, name := range step.names {
				r.add(Step{Name: name, Verdict: Skip, Detail: "skipped: " + failed + " failed"})
			}
			continue
		}
		for _, s := range step.run(ctx) {
			r.add(s)
			if s.Verdict == Fail && failed == "" && blocks(s.Name) {
				failed = s.Name
			}
		}
	}
	return r.report
}

// blocks reports whether a failure of the step makes the later network
// steps pointless.
func blocks(name string) bool {
	return name != StepProxy && name != StepIAM
}

func (r *run) add(s Step) {
	r.report.Steps = append(r.report.Steps, s)
	r.report.OK = !slices.ContainsFunc(r.report.Steps, func(s Step) bool { return s.Verdict == Fail })
}

func (r *run) checkConfig(context.Context) Step {
	s := Step{Name: StepConfig}
	tc, err := pki.ClientConfig(r.cfg.CertFile, r.cfg.KeyFile, r.cfg.CAFile, r.cfg.ServerName)
	if err != nil {
		s.Verdict, s.Detail = Fail, err.Error()
		s.Fix = "issue a new client certificate ('fluidity certs issue-client --dir DIR --name NAME') or point --certs, --cert, --key and --ca at the right files"
		return s
	}
	r.tls = tc
	leaf, _ := x509.ParseCertificate(tc.Certificates[0].Certificate[0])
	cas, err := pki.LoadCACertificates(r.cfg.CAFile)
	if err != nil {
		s.Verdict, s.Detail = Fail, err.Error()
		return s
	}
	pool := x509.NewCertPool()
	for _, c := range cas {
		pool.AddCert(c)
	}
	now := r.cfg.Now()
	s.Verdict = OK
	s.Detail = fmt.Sprintf("client certificate %q valid until %s; key matches", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.DateOnly))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		s.Verdict = Warn
		s.Detail += fmt.Sprintf("; it does not chain to %s (%v)", r.cfg.CAFile, err)
		s.Fix = "that is fine only if the exit trusts another CA than the one you verify it with; usually ca.crt, client.crt and client.key come from one 'fluidity certs init'"
	}
	if left := leaf.NotAfter.Sub(now); left < 30*24*time.Hour {
		s.Verdict = Warn
		s.Detail += fmt.Sprintf("; it expires in %d days", int(left.Hours()/24))
		s.Fix = "issue a new client certificate soon ('fluidity certs issue-client')"
	}
	if r.exit == "" && r.cfg.Locate == nil {
		s.Verdict, s.Detail, s.Fix = Fail, "no exit address", "pass --server HOST:PORT, or --lifecycle aws with --control-url"
	}
	return s
}

func (r *run) checkProxySettings(context.Context) Step {
	s := Step{Name: StepProxy, Verdict: OK}
	lines := r.cfg.ProxySettings
	if len(lines) == 0 {
		lines = []string{"no upstream proxy configured, none in the environment"}
	}
	s.Detail = strings.Join(lines, "; ")
	if r.exit != "" {
		route, err := r.cfg.Dialer.Route(r.exit)
		if err != nil {
			s.Verdict, s.Detail = Fail, err.Error()
			return s
		}
		s.Detail += fmt.Sprintf("; the exit %s is reached %s", r.exit, route)
	}
	return s
}

func (r *run) checkControlPlane(ctx context.Context) Step {
	s := Step{Name: StepControl}
	if r.cfg.Locate == nil {
		s.Verdict, s.Detail = Skip, "not configured (the exit has a fixed address)"
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	addr, err := r.cfg.Locate(ctx)
	switch {
	case err != nil:
		s.Verdict, s.Detail = Fail, err.Error()
		s.Fix = controlPlaneFix(err)
	case addr == "":
		s.Verdict, s.Detail = Warn, "the control plane answers; your exit is asleep, so the network steps are skipped"
		s.Fix = "run 'fluidity wake' and then doctor again"
	default:
		s.Verdict, s.Detail = OK, "the control plane answers; your exit runs at "+addr
		r.exit = addr
	}
	return s
}

// controlPlaneFix is what to do about a control plane's refusal: its own
// error says what is wrong where it has one; the rest is the way there.
func controlPlaneFix(err error) string {
	var ce *controlapi.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case controlapi.CodeNotAllowed:
			return "ask the exit's owner to let your identity in (fluidity aws deploy --allow YOUR-ARN), or use the AWS profile they let in (--aws-profile)"
		case controlapi.CodeNoIdentity:
			return "the request reached the control plane unsigned: check that control_url is the function URL that 'fluidity aws deploy' wrote into agent.yaml"
		case controlapi.CodeDailyLimit:
			return "today's exit hours are used up; the limit resets at midnight UTC, or its owner can raise daily_limit"
		case controlapi.CodeThrottled, controlapi.CodeUnavailable, controlapi.CodeTimeout, controlapi.CodeNoCapacity:
			return "a passing condition on AWS's side: run doctor again in a minute"
		case controlapi.CodePermission, controlapi.CodeBadConfig, controlapi.CodeAWS:
			return "the deployment needs repair: its owner should run 'fluidity aws deploy' again"
		}
	}
	return "check control_url, your AWS credentials (--aws-profile), and that the upstream proxy lets the function URL through"
}

// dialTimeout dials the exit with dial, within the step's timeout.
func (r *run) dialExit(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error)) (net.Conn, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	start := time.Now()
	c, err := dial(ctx, "tcp", r.exit)
	return c, time.Since(start), err
}

func (r *run) viaProxy() bool {
	route, err := r.cfg.Dialer.Route(r.exit)
	return err == nil && route != "direct"
}

func (r *run) checkDirect(ctx context.Context) Step {
	s := Step{Name: StepDirect}
	if r.exit == "" {
		s.Verdict, s.Detail = Skip, "the exit's address is not known"
		return s
	}
	direct := (&upstream.Dialer{Forward: r.cfg.Dialer.Forward}).DialContext
	c, d, err := r.dialExit(ctx, direct)
	if err != nil {
		s.Detail = fmt.Sprintf("cannot connect to %s: %v", r.exit, unwrapOp(err))
		if r.viaProxy() {
			s.Verdict = Warn
			s.Detail += " (the upstream proxy is the way out here)"
			return s
		}
		s.Verdict = Fail
		s.Fix = fmt.Sprintf("check that the exit runs and listens on %s; if a firewall blocks the port, ask IT to open it, or give the proxy you must use with --upstream-proxy", r.exit)
		return s
	}
	c.Close()
	s.Verdict, s.Detail = OK, fmt.Sprintf("connected to %s in %s", r.exit, round(d))
	return s
}

func (r *run) checkViaProxy(ctx context.Context) Step {
	s := Step{Name: StepViaProxy}
	if r.exit == "" {
		s.Verdict, s.Detail = Skip, "the exit's address is not known"
		return s
	}
	if !r.viaProxy() {
		s.Verdict, s.Detail = Skip, "no upstream proxy for the exit"
		return s
	}
	c, d, err := r.dialExit(ctx, r.cfg.Dialer.DialContext)
	if err != nil {
		s.Verdict, s.Detail = Fail, err.Error()
		var ae *upstream.AuthError
		var re *upstream.RefusedError
		var de *upstream.DialError
		switch {
		case errors.As(err, &ae):
			s.Fix = "give the proxy's credentials (a user in --upstream-proxy, the password in upstream_proxy_password_file), or on Windows --upstream-proxy-auth sspi"
		case errors.As(err, &re):
			s.Fix = fmt.Sprintf("ask IT to let CONNECT through to %s (many proxies allow only port 443: an exit on :443 may pass)", r.exit)
		case errors.As(err, &de):
			s.Fix = "check the proxy's address (--upstream-proxy, HTTPS_PROXY)"
		}
		return s
	}
	c.Close()
	route, _ := r.cfg.Dialer.Route(r.exit)
	s.Verdict, s.Detail = OK, fmt.Sprintf("connected to %s %s in %s", r.exit, route, round(d))
	return s
}

// checkHandshake gives two verdicts: TLS interception, and the mutual TLS
// handshake with a ping to prove it.
func (r *run) checkHandshake(ctx context.Context) []Step {
	ic := r.handshake(ctx)
	return []Step{ic, r.mtlsStep}
}

func (r *run) handshake(ctx context.Context) Step {
	ic := Step{Name: StepInterception}
	r.mtlsStep = Step{Name: StepMTLS}
	if r.exit == "" || r.tls == nil {
		ic.Verdict, ic.Detail = Skip, "nothing to check yet"
		r.mtlsStep.Verdict, r.mtlsStep.Detail = Skip, "nothing to check yet"
		return ic
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	raw, err := r.cfg.Dialer.DialContext(ctx, "tcp", r.exit)
	if err != nil {
		ic.Verdict, ic.Detail = Skip, "cannot connect"
		r.mtlsStep.Verdict, r.mtlsStep.Detail = Fail, err.Error()
		return ic
	}
	tc := tls.Client(raw, r.tls)
	err = tc.HandshakeContext(ctx)
	if err != nil {
		raw.Close()
		err = pki.ExplainServerCertificate(err, r.exit, caNames(r.cfg.CAFile)...)
		var ie *pki.InterceptionError
		if errors.As(err, &ie) {
			ic.Verdict, ic.Detail = Fail, err.Error()
			ic.Fix = fmt.Sprintf("ask IT to exempt %s from TLS inspection (a bypass rule for the host and port); Fluidity never sends anything through an intercepted link", r.exit)
			r.mtlsStep.Verdict, r.mtlsStep.Detail = Skip, "the certificate that came back is not the exit's"
			return ic
		}
		ic.Verdict, ic.Detail = OK, "not detected"
		r.mtlsStep.Verdict, r.mtlsStep.Detail = Fail, "tls handshake: "+err.Error()
		var we *pki.WrongCAError
		if errors.As(err, &we) {
			r.mtlsStep.Fix = "use the ca.crt made with the exit's certificates (--ca)"
		} else {
			r.mtlsStep.Fix = "check --server-name (default fluidity-server) and that the address is a Fluidity exit"
		}
		return ic
	}
	ic.Verdict, ic.Detail = OK, "none: the certificate that came back is the exit's, from your CA"
	link, err := tunnel.NewClientConn(tc, tunnel.Config{})
	if err == nil {
		_, err = link.Ping(ctx)
		if err != nil {
			if lerr := link.Err(); lerr != nil {
				err = lerr
			}
			link.Close()
		}
	}
	if err != nil {
		r.mtlsStep.Verdict, r.mtlsStep.Detail = Fail, "the exit refused this client: "+err.Error()
		r.mtlsStep.Fix = "your client certificate is not accepted by the exit: expired, revoked, or from another CA than the exit's; issue a new one from the exit's CA"
		return ic
	}
	r.link = link
	r.mtlsStep.Verdict, r.mtlsStep.Detail = OK, "TLS 1.3 with your client certificate; the exit answered a ping"
	return ic
}

func (r *run) checkIAM(ctx context.Context) Step {
	s := Step{Name: StepIAM}
	if r.cfg.Token == nil {
		s.Verdict, s.Detail = Skip, "not enabled (--iam)"
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	tok, err := r.cfg.Token(ctx)
	if err != nil {
		s.Verdict, s.Detail = Fail, err.Error()
		s.Fix = "refresh your AWS credentials (aws sso login --profile …) or pass --aws-profile and --aws-region"
		return s
	}
	r.header = http.Header{"Proxy-Authorization": {"Bearer " + tok}}
	s.Verdict, s.Detail = OK, "a token was minted; the exit checks it with the test request"
	return s
}

func (r *run) checkRequest(ctx context.Context) Step {
	s := Step{Name: StepRequest}
	if r.link == nil {
		s.Verdict, s.Detail = Skip, "no link to the exit"
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	st, err := r.link.Dial(ctx, r.cfg.Target, r.header)
	if err != nil {
		s.Verdict, s.Detail = Fail, fmt.Sprintf("CONNECT %s through the exit: %v", r.cfg.Target, err)
		s.Fix = "the exit refused or could not reach the target: see the reason; a 407 means the IAM token, a 403 the exit's egress policy"
		return s
	}
	st.Close()
	s.Verdict, s.Detail = OK, fmt.Sprintf("CONNECT %s through the exit succeeded", r.cfg.Target)
	return s
}

func (r *run) checkRTT(ctx context.Context) Step {
	s := Step{Name: StepRTT}
	if r.link == nil {
		s.Verdict, s.Detail = Skip, "no link to the exit"
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StepTimeout)
	defer cancel()
	var rtts []time.Duration
	for range 5 {
		d, err := r.link.Ping(ctx)
		if err != nil {
			s.Verdict, s.Detail = Fail, "ping: "+err.Error()
			return s
		}
		rtts = append(rtts, d)
	}
	slices.Sort(rtts)
	med := rtts[len(rtts)/2]
	s.Verdict, s.Detail = OK, fmt.Sprintf("%s (median of %d pings; min %s, max %s)", round(med), len(rtts), round(rtts[0]), round(rtts[len(rtts)-1]))
	if med > 300*time.Millisecond {
		s.Verdict = Warn
		s.Fix = "a long round trip slows every new connection: an exit in a region nearer to you helps"
	}
	return s
}

func caNames(file string) []string {
	cas, err := pki.LoadCACertificates(file)
	if err != nil {
		return nil
	}
	var names []string
	for _, c := range cas {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	case d > time.Millisecond:
		return d.Round(10 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// unwrapOp drops the "dial tcp A->B:" prefix of a *net.OpError.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// WriteText writes the report for a person: one block per step.
func (rep Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for i, s := range rep.Steps {
		fmt.Fprintf(&b, "%2d. %-4s  %s: %s\n", i+1, strings.ToUpper(s.Verdict), s.Name, s.Detail)
		if s.Fix != "" {
			fmt.Fprintf(&b, "          fix: %s\n", s.Fix)
		}
	}
	if rep.OK {
		b.WriteString("\nAll checks passed.\n")
	} else {
		for _, s := range rep.Steps {
			if s.Verdict == Fail {
				fmt.Fprintf(&b, "\nFirst failure: %s.\n", s.Name)
				break
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON writes the report as JSON.
func (rep Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
