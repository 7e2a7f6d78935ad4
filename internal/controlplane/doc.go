// Package controlplane runs each identity's exit as a task of its own on
// ECS Fargate: wake (find the caller's task or start one), query (its
// state and public address), kill (stop it), and the sweep that stops tasks
// nobody uses. It speaks ECS and EC2 and knows nothing of Lambda; the
// function that serves it is a thin adapter (package lambdafn).
//
// # Owners
//
// A task belongs to the caller's canonical principal (package principal):
// an IAM user, or a role for every session of it. A person who assumes a
// role through SSO or the CLI gets a new session name at each login, and
// would otherwise leave a task behind at each one; people who share one
// role share one exit. The task carries its owner twice: a short hash in
// startedBy ("fluidity-" and 24 hex digits, since startedBy is short and
// restricted), which ListTasks can filter on, and the ARN in the tag
// fluidity:owner, which is checked before a task is treated as the
// caller's. Only principals in Config.Allow may wake, query or kill: invoke
// permission on the function alone does not start tasks.
//
// # Idempotency without a lock table
//
// Wake first lists the owner's running and pending tasks and returns the
// oldest. Only when there is none does it call RunTask, with a client token
// derived from the owner and the agent's wake ID, so a retried or repeated
// wake starts one task. Wakes with different IDs that race (two machines of
// one person) may each start a task; every wake, query and sweep that then
// finds more than one keeps the oldest and stops the others.
//
// # Stopping
//
// A task stops in three ways: the exit exits by itself after its idle time
// (the task ends and billing stops), its owner kills it, or the sweep stops
// it. The sweep runs on a schedule and reads each task's lease, the tag
// fluidity:lease-until that the exit renews while it is in use. It stops a
// task whose lease has expired, a running task that never got a lease
// within LeaseGrace (absence means dead, never "active"), a task that has
// not started within StartTimeout, and any task older than MaxLifetime,
// whatever its lease says.
package controlplane
