// Package proctest is a harness for tests that run the fluidity binary as
// separate processes: it builds the binary once per test binary, starts the
// exit server, the agent and other commands on free loopback ports, waits for
// the lines they log, and reads their memory, open files and goroutines.
//
// A test binary calls Build (or UseBinary) from its TestMain; the Start
// functions then run Binary. Every process started is killed when its test
// ends, and its output is logged if the test failed.
//
// Resident memory and open files are read from /proc, so those figures need
// Linux.
package proctest
