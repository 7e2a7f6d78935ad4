// Command wineexec runs Windows programs under Wine, in the prefix that
// package winetest prepares. It is the -exec program of 'go test' for
// GOOS=windows:
//
//	wineexec setup DIR                  # make the prefix ready; write DIR/overlay.json
//	GOOS=windows go test -overlay DIR/overlay.json -exec wineexec ./internal/agent
//
// The prefix is $FLUIDITY_WINEPREFIX, or fluidity-wine in the user's cache
// directory.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"

	"fluidity/internal/winetest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: wineexec setup DIR | wineexec PROGRAM.exe [ARGS...]")
		os.Exit(2)
	}
	env, err := winetest.Setup(winetest.DefaultPrefix())
	if err != nil {
		fmt.Fprintln(os.Stderr, "wineexec:", err)
		os.Exit(1)
	}
	if os.Args[1] == "setup" && len(os.Args) == 3 {
		path, err := winetest.Overlay(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "wineexec:", err)
			os.Exit(1)
		}
		fmt.Println(path)
		return
	}
	cmd := env.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.ExitCode())
	case err != nil:
		fmt.Fprintln(os.Stderr, "wineexec:", err)
		os.Exit(1)
	}
}
