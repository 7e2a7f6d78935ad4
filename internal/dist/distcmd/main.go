// Command distcmd builds and checks the release archives ('make dist'):
//
//	go run ./internal/dist/distcmd [-dir dist] [-version V] [-commit C]
//
// The version defaults to 'git describe --tags --always --dirty' and the
// commit to 'git rev-parse HEAD'. The archives are checked once built.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"fluidity/internal/dist"
)

func main() {
	dir := flag.String("dir", "dist", "directory for the archives and SHA256SUMS")
	version := flag.String("version", "", "version to stamp (default: git describe --tags --always --dirty)")
	commit := flag.String("commit", "", "commit to stamp (default: git rev-parse HEAD)")
	checkOnly := flag.Bool("check", false, "only check the archives already in -dir")
	flag.Parse()
	if *version == "" {
		*version = git("describe", "--tags", "--always", "--dirty")
	}
	if *commit == "" {
		*commit = git("rev-parse", "HEAD")
	}
	if !*checkOnly {
		err := dist.Build(context.Background(), dist.Options{
			Dir: *dir, Version: *version, Commit: *commit, Docs: []string{"README.md", "docs/laptop.md"}, Log: os.Stdout,
		})
		if err != nil {
			fail(err)
		}
	}
	if err := dist.Check(*dir, *version, *commit, nil); err != nil {
		fail(err)
	}
	fmt.Printf("%d archives for %s (commit %s) in %s, checked: headers, stamps and %s\n", len(dist.Platforms), *version, *commit, *dir, dist.SumsFile)
}

func git(args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil {
		fail(fmt.Errorf("git %s: %w (give -version and -commit outside a git checkout)", strings.Join(args, " "), err))
	}
	return strings.TrimSpace(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dist:", err)
	os.Exit(1)
}
