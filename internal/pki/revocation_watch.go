package pki

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// RevocationConfig configures a RevocationWatcher. A zero one revokes
// nothing.
type RevocationConfig struct {
	// List is the revocation list file (see LoadRevocations); "" for none.
	// It must exist at start.
	List string
	// CRL is the certificate revocation list file; "" for none. It must
	// exist at start unless CRLOptional is set.
	CRL string
	// CRLOptional lets the CRL be missing: it revokes nothing until it
	// appears (the CRL of a certificate directory before the first
	// 'fluidity certs revoke').
	CRLOptional bool
	// CAs, if set, are the CAs one of which must have signed the CRL; one
	// signed by another CA is refused at start and on reload.
	CAs []*x509.Certificate
	// Interval is how often the files' sizes and modification times are
	// looked at. If zero, 5s.
	Interval time.Duration
	// OnChange, if set, is called on Run's goroutine after a reload.
	OnChange func()
	// Logger receives a line per reload and per failed reload. Nil
	// discards.
	Logger *slog.Logger
}

// A RevocationWatcher keeps a set of revocations current with its files:
// Run looks at them every Interval and reloads them when one changed. A
// reload that fails (a file missing, half written or not signed by the
// CA) is logged and leaves the last good set in force; an optional CRL
// counts as missing only until it has been read once. Check is safe for
// concurrent use.
type RevocationWatcher struct {
	cfg     RevocationConfig // immutable after NewRevocationWatcher
	log     *slog.Logger     // immutable
	current atomic.Pointer[Revocations]
	stamp   string // owned by Run: the files' sizes and times at the last load
	crlRead bool   // owned by Run: the CRL has been read; missing now, it is an error
}

// NewRevocationWatcher loads the files cfg names. Its errors name the file
// and what is wrong with it.
func NewRevocationWatcher(cfg RevocationConfig) (*RevocationWatcher, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	w := &RevocationWatcher{cfg: cfg, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	w.stamp = w.stat()
	r, err := w.load()
	if err != nil {
		return nil, err
	}
	w.current.Store(r)
	return w, nil
}

// Current is the set in force.
func (w *RevocationWatcher) Current() *Revocations { return w.current.Load() }

// Check is Current().Check.
func (w *RevocationWatcher) Check(chain []*x509.Certificate) error {
	return w.current.Load().Check(chain)
}

// Run reloads the files when they change, until ctx ends.
func (w *RevocationWatcher) Run(ctx context.Context) {
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp := w.stat()
		if stamp == w.stamp {
			continue
		}
		w.stamp = stamp
		r, err := w.load()
		if err != nil {
			w.log.Error("revocation list not reloaded: the last one loaded stays in force until the file is fixed", "err", err)
			continue
		}
		w.current.Store(r)
		serials, fps, entries := r.Len()
		w.log.Info("revocation list reloaded", "serials", serials, "fingerprints", fps, "crl_entries", entries)
		if w.cfg.OnChange != nil {
			w.cfg.OnChange()
		}
	}
}

// load reads the files.
func (w *RevocationWatcher) load() (*Revocations, error) {
	crl := w.cfg.CRL
	if crl != "" && w.cfg.CRLOptional && !w.crlRead {
		if _, err := os.Stat(crl); isNotExist(err) {
			crl = ""
		}
	}
	r, err := LoadRevocations(w.cfg.List, crl)
	if err != nil {
		return nil, err
	}
	if len(w.cfg.CAs) > 0 {
		if err := r.CheckCRLIssuer(w.cfg.CAs...); err != nil {
			return nil, err
		}
	}
	w.crlRead = w.crlRead || crl != ""
	return r, nil
}

// stat describes the files' sizes and modification times.
func (w *RevocationWatcher) stat() string {
	var s string
	for _, f := range []string{w.cfg.List, w.cfg.CRL} {
		if f == "" {
			continue
		}
		fi, err := os.Stat(f)
		switch {
		case errors.Is(err, os.ErrNotExist):
			s += f + ": missing;"
		case err != nil:
			s += f + ": " + err.Error() + ";"
		default:
			s += fmt.Sprintf("%s: %d %d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return s
}
