// Package lifecycle is the agent's side of an exit that runs on demand: it
// wakes the exit when a connection needs it, waits (with progress) until it
// is ready, tells the tunnel where it is, notices when it has gone to sleep,
// and keeps a small record of the hours it ran and what they cost.
//
// A Backend starts, finds and stops an exit; AWS is the one that talks to
// the control plane's function URL (package controlapi), signing each
// request with the agent's own AWS credentials. Exit wraps a Backend as the
// tunnel's Locator.
//
// # Waking
//
// A wake has one ID, sent with every retry of it, so the control plane
// starts at most one task for it. Exit then asks for the exit's state with
// long polls until it is ready, has stopped, or WakeTimeout has passed. A
// wake that times out, or whose caller gives up, kills the task it started:
// no failure path leaves an exit running and billing.
package lifecycle
