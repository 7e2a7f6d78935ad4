package logsummary

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// sink collects JSON log lines.
type sink struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *sink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns every line written so far, decoded.
func (s *sink) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(s.b.Bytes()))
	for dec.More() {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		delete(m, "time")
		out = append(out, m)
	}
	return out
}

func newLogger(opts Options) (*slog.Logger, *Handler, *sink) {
	s := &sink{}
	h := New(slog.NewJSONHandler(s, &slog.HandlerOptions{Level: slog.LevelDebug}), opts)
	return slog.New(h), h, s
}

func TestAFloodOfOneWarningIsSummarised(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, h, s := newLogger(Options{Interval: 10 * time.Second})
		log = log.With("side", "exit")
		// 3,000 failed handshakes from one address in 3 s, each from a new
		// port.
		for i := range 3000 {
			log.Warn("tls handshake failed", "remote", "203.0.113.9:"+strconv.Itoa(40000+i%20000), "reason", "no client certificate", "err", "bad")
			if i%1000 == 999 {
				time.Sleep(time.Second)
			}
		}
		if n := len(s.lines(t)); n != 1 {
			t.Fatalf("during the flood: %d lines; want the first one only", n)
		}
		time.Sleep(7 * time.Second)
		synctest.Wait()
		lines := s.lines(t)
		if len(lines) != 2 {
			t.Fatalf("at the end of the window: %d lines; want the first and one summary: %v", len(lines), lines)
		}
		sum := lines[1]
		if sum["msg"] != "tls handshake failed" || sum["level"] != "WARN" || sum["remote"] != "203.0.113.9" ||
			sum["reason"] != "no client certificate" || sum["side"] != "exit" || sum["repeated"] != float64(2999) || sum["window"] == nil {
			t.Fatalf("summary %v; want the message, level, key attributes (remote without its port) and repeated=2999", sum)
		}
		if _, ok := sum["err"]; ok {
			t.Fatalf("summary %v carries the first record's err, which the others need not share", sum)
		}

		// A quiet window writes nothing; the next record is written in full.
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := len(s.lines(t)); n != 2 {
			t.Fatalf("after a quiet window: %d lines; want still 2", n)
		}
		log.Warn("tls handshake failed", "remote", "203.0.113.9:1", "reason", "no client certificate")
		if lines := s.lines(t); len(lines) != 3 || lines[2]["remote"] != "203.0.113.9:1" {
			t.Fatalf("after a quiet window the next record is not written in full: %v", lines)
		}
		h.Close()
	})
}

func TestAContinuingFloodGetsASummaryPerWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, h, s := newLogger(Options{Interval: time.Second})
		for range 50 { // 5 s, 10 a second
			log.Warn("stream", "client", "laptop", "reason", "reset", "target", "example.com:443")
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if n := len(s.lines(t)); n < 4 || n > 6 {
			t.Fatalf("during a 5 s flood with a 1 s window: %d lines; want the first and about one summary a second", n)
		}
		h.Close()
		lines := s.lines(t)
		total := 0
		for _, l := range lines[1:] {
			total += int(l["repeated"].(float64))
		}
		if total != 49 {
			t.Fatalf("summaries count %d records; want the 49 after the first: %v", total, lines)
		}
		if len(lines) < 5 || len(lines) > 7 {
			t.Fatalf("%d lines for a 5 s flood with a 1 s window; want about one a second: %v", len(lines), lines)
		}
	})
}

func TestKindsAreToldApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, h, s := newLogger(Options{})
		for range 3 {
			log.Warn("stream", "client", "laptop", "reason", "reset")
			log.Warn("stream", "client", "phone", "reason", "reset")
			log.Warn("stream", "client", "laptop", "reason", "dial_failed")
			log.Warn("link refused", "client", "laptop")
			log.Error("stream", "client", "laptop", "reason", "reset")
		}
		if n := len(s.lines(t)); n != 5 {
			t.Fatalf("5 kinds, 3 times each: %d lines; want 5 until the window ends", n)
		}
		h.Close()
		if n := len(s.lines(t)); n != 10 {
			t.Fatalf("after Close: %d lines; want 5 more, the summaries", n)
		}
	})
}

func TestNormalTrafficIsNotSummarised(t *testing.T) {
	log, h, s := newLogger(Options{})
	defer h.Close()
	for range 100 {
		log.Info("stream", "client", "laptop", "target", "example.com:443", "reason", "ok")
		log.Debug("client sent nothing", "client", "127.0.0.1:5000")
	}
	if n := len(s.lines(t)); n != 200 {
		t.Fatalf("100 INFO and 100 DEBUG lines wrote %d; want every one", n)
	}
}

func TestKindsAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, h, s := newLogger(Options{MaxKinds: 10})
		for i := range 20 {
			log.Warn("tls handshake failed", "remote", "203.0.113."+strconv.Itoa(i)+":1")
			log.Warn("tls handshake failed", "remote", "203.0.113."+strconv.Itoa(i)+":2")
		}
		// The first 10 kinds are summarised; the 10 beyond the bound are
		// written in full.
		if n := len(s.lines(t)); n != 10+20 {
			t.Fatalf("%d lines; want 30", n)
		}
		h.Close()
	})
}
