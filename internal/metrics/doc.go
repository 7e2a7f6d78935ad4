// Package metrics defines Fluidity's Prometheus metrics: one set for the
// agent and one for the exit, each registered on a registry of its own
// (with the Go runtime and process collectors) that the admin listener
// serves at /metrics.
//
// Every name starts with fluidity_ and every label has a bounded set of
// values: results are one of the Reason constants, handshake failures one
// of pki.HandshakeFailure's reasons, and per-identity series are capped
// (see [IdentityLimit]); identities beyond the cap share the label "other".
//
// The sets are fed through the hooks of the packages that own the events
// (exit.Observer, agent.Observer) or read from snapshots at scrape time,
// so the data path pays for at most a few atomic adds per stream, never
// per byte.
package metrics
