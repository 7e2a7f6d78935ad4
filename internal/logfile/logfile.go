// Package logfile is a log file that rotates by size: when a write would
// take it past its limit, the file becomes path.1, the one before path.2,
// and so on up to a number kept; older ones are removed. The service's
// agent log is one, in the state directory.
package logfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// Options tune a File. The zero Options is valid.
type Options struct {
	// MaxBytes is the size past which the file is rotated. A single write
	// larger than that goes whole into a fresh file. If zero, 10 MiB.
	MaxBytes int64
	// Keep is how many rotated files are kept (path.1 is the newest). If
	// zero, 3.
	Keep int
}

// File is a log file that rotates by size. It is safe for concurrent use;
// each Write goes whole into one file.
type File struct {
	path string  // immutable
	opts Options // immutable

	mu   sync.Mutex
	f    *os.File // guarded by mu; nil after Close
	size int64    // guarded by mu: bytes in f
}

// Open opens path for appending, creating it and its directory (0700: a
// log names the sites you visit) if needed.
func Open(path string, opts Options) (*File, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 10 << 20
	}
	if opts.Keep <= 0 {
		opts.Keep = 3
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	l := &File{path: path, opts: opts}
	if err := l.openLocked(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) openLocked() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("log file: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("log file: %w", err)
	}
	l.f, l.size = f, info.Size()
	return nil
}

// Write appends p, rotating first if p would take the file past MaxBytes.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, fs.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.opts.MaxBytes {
		if err := l.rotateLocked(); err != nil {
			return 0, err
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	return n, err
}

// rotateLocked moves the files one place down and opens a fresh one. If a
// rename fails (on Windows, another program may hold the file open), the
// current file is kept and rotation is tried again a MaxBytes later.
func (l *File) rotateLocked() error {
	l.f.Close()
	renamed := true
	if err := os.Remove(l.rotated(l.opts.Keep)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		renamed = false
	}
	for i := l.opts.Keep - 1; i >= 1 && renamed; i-- {
		if err := os.Rename(l.rotated(i), l.rotated(i+1)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			renamed = false
		}
	}
	if renamed && os.Rename(l.path, l.rotated(1)) != nil {
		renamed = false
	}
	if err := l.openLocked(); err != nil {
		l.f = nil
		return err
	}
	if !renamed {
		l.size = 0
	}
	return nil
}

func (l *File) rotated(i int) string { return fmt.Sprintf("%s.%d", l.path, i) }

// Close closes the file; later writes fail.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
