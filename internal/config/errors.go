package config

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrUnknownKey is matched by errors about a file key or a FLUIDITY_*
	// variable that the configuration does not have.
	ErrUnknownKey = errors.New("unknown key")
	// ErrDuplicateKey is matched by errors about a key that a YAML mapping
	// sets twice.
	ErrDuplicateKey = errors.New("duplicate key")
)

// Error is a problem with one key of the configuration file or one
// environment variable. Load may return several, joined with errors.Join;
// errors.As finds the first.
type Error struct {
	File string // the configuration file, or "" for the environment
	Line int    // 1-based line in File; 0 for the environment

	// Key is the dotted key path for the file ("egress.allow_hosts") and the
	// variable name for the environment. It is "" for a problem with the
	// file's structure rather than with a key.
	Key string

	// Suggestion is the known key or variable closest to an unknown Key, or
	// "" when none is close.
	Suggestion string

	// FirstLine is, for ErrDuplicateKey, the line where the key was first set.
	FirstLine int

	// Err is ErrUnknownKey, ErrDuplicateKey, or what is wrong with the value
	// (matching ErrInvalidValue).
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	}
	switch {
	case e.Err == ErrUnknownKey && e.File == "":
		fmt.Fprintf(&b, "unknown environment variable %s", e.Key)
		if e.Suggestion != "" {
			fmt.Fprintf(&b, " (did you mean %s?)", e.Suggestion)
		}
	case e.Err == ErrUnknownKey:
		fmt.Fprintf(&b, "unknown key %q", e.Key)
		switch e.Suggestion {
		case "":
		case e.Key:
			// A dotted path written as one key: say how to nest it.
			parts := strings.Split(e.Key, ".")
			nested := strings.Join(parts, ": {") + ": …" + strings.Repeat("}", len(parts)-1)
			fmt.Fprintf(&b, " (dotted paths are not keys; nest them: %s)", nested)
		default:
			fmt.Fprintf(&b, " (did you mean %q?)", e.Suggestion)
		}
	case e.Err == ErrDuplicateKey:
		fmt.Fprintf(&b, "duplicate key %q (first set on line %d)", e.Key, e.FirstLine)
	case e.Key == "":
		b.WriteString(e.Err.Error())
	case e.File == "":
		fmt.Fprintf(&b, "environment variable %s: %v", e.Key, e.Err)
	default:
		fmt.Fprintf(&b, "key %q: %v", e.Key, e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// closest returns the candidate nearest to s by edit distance, if it is at
// most 2 edits away; the first in candidates wins a tie.
func closest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if d := editDistance(s, c, bestDist); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance returns the Levenshtein distance between a and b in bytes,
// or any value >= limit once it is known to be at least limit.
func editDistance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
