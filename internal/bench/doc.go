// Package bench holds fluidity's end-to-end benchmarks (run them with
// 'make bench'). Each benchmark starts the client, the agent, the exit and
// the origin as separate processes on loopback and measures a baseline in
// the same run, so every figure is reported beside the one it is judged
// against. The origin and the clients are the benchtool command in the
// benchtool directory. See docs/performance.md for what each benchmark
// measures and the figures of a run.
package bench
