// Package faults tests how fluidity behaves when things go wrong: a link
// that stops carrying packets, an exit killed under load or restarted again
// and again, and hostile or broken clients on the agent's and the exit's
// ports. Like package e2e it builds the fluidity binary once and runs the
// exit and the agent as separate processes on loopback; between them a TCP
// relay in the test process forwards the link and can blackhole it or reset
// it on command.
//
// The package holds tests only. The default run takes well under a minute;
// with -short the 10,000-stream test is skipped. A soak test runs mixed
// traffic for a while and checks that memory and goroutines come back down:
//
//	go test ./internal/faults -run Soak -soak 10m
//
// FuzzAgentPort feeds random bytes to an agent running in the test process;
// 'go test' runs its seed corpus, and for a longer run:
//
//	go test -run '^$' -fuzz FuzzAgentPort -fuzztime 100000x ./internal/faults/
//
// Figures that depend on a process's goroutines are read from the agent's
// admin listener (--admin, /metrics, go_goroutines); with a binary that has
// no admin listener those single checks are skipped with a message.
// Resident memory is read from /proc/PID/status, so the process tests need
// Linux.
package faults
