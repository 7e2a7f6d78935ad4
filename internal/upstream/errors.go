package upstream

import (
	"fmt"
	"html"
	"regexp"
	"strings"
)

// DialError is a failure to reach the proxy itself.
type DialError struct {
	Proxy string // host:port
	Err   error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("upstream proxy %s: cannot connect to it: %v; check the proxy address (--upstream-proxy, HTTPS_PROXY)", e.Proxy, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// AuthError is a 407 from the proxy that the Dialer could not answer, or
// that still came after it answered.
type AuthError struct {
	Proxy string // host:port
	// Offered are the challenges of the proxy's last 407.
	Offered []Challenge
	// Sent is the scheme the Dialer answered with ("" if it had nothing to
	// answer with) and User the user name it gave ("" for SSPI, which uses
	// the logged-in user).
	Sent, User string
	// Reason says why nothing was sent, when nothing was.
	Reason string
}

func (e *AuthError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upstream proxy %s: 407 Proxy Authentication Required", e.Proxy)
	if len(e.Offered) > 0 {
		names := make([]string, len(e.Offered))
		for i, c := range e.Offered {
			names[i] = c.String()
		}
		fmt.Fprintf(&b, " (it asks for %s)", strings.Join(names, "; "))
	} else {
		b.WriteString(" (it names no scheme)")
	}
	switch {
	case e.Sent != "" && e.User != "":
		fmt.Fprintf(&b, ": it refused the %s credentials of user %q; check the user name and password", e.Sent, e.User)
	case e.Sent != "":
		fmt.Fprintf(&b, ": it refused %s with the logged-in user's credentials; ask IT whether this account may use the proxy", e.Sent)
	case e.Reason != "":
		fmt.Fprintf(&b, ": %s", e.Reason)
	default:
		b.WriteString(": give credentials: a user name in the proxy URL (http://USER@proxy:port) and the password in upstream_proxy_password_file, or FLUIDITY_UPSTREAM_PROXY_PASSWORD")
	}
	return b.String()
}

// RefusedError is the proxy's answer, other than 2xx or 407, to a CONNECT:
// it would not or could not connect to the target.
type RefusedError struct {
	Proxy  string // host:port
	Target string // what was asked for
	// StatusCode and Status are the proxy's status ("403 Forbidden").
	StatusCode int
	Status     string
	// Detail is the gist of the proxy's error page: its error code
	// (Squid's X-Squid-Error) and the page's title or first words.
	Detail string
}

func (e *RefusedError) Error() string {
	s := fmt.Sprintf("upstream proxy %s would not connect to %s: %s", e.Proxy, e.Target, e.Status)
	if e.Detail != "" {
		s += " (" + e.Detail + ")"
	}
	switch e.StatusCode {
	case 403, 405:
		s += fmt.Sprintf("; ask IT to allow CONNECT to %s through the proxy", e.Target)
	case 502, 503, 504:
		s += fmt.Sprintf("; the proxy could not reach %s: check that the exit runs and that its address is right", e.Target)
	}
	return s
}

var (
	titleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	tagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// pageGist returns the title of an HTML error page, or the first words of a
// text one, cut to about 200 bytes.
func pageGist(body []byte) string {
	s := string(body)
	if m := titleRE.FindStringSubmatch(s); m != nil {
		s = m[1]
	} else {
		s = tagRE.ReplaceAllString(s, " ")
	}
	s = strings.Join(strings.Fields(html.UnescapeString(s)), " ")
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
