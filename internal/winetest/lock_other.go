//go:build !unix

package winetest

import "errors"

// lock: Wine runs Windows programs on Unix machines only.
func lock(string) (func(), error) {
	return nil, errors.New("wine runs on Unix machines only")
}
