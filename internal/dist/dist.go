// Package dist builds the release archives of fluidity: one per platform
// people run the agent on, each with the version and commit stamped into
// the binary, and a SHA256SUMS file. Check verifies a directory of them:
// every archive is there, holds a binary whose headers name the right
// operating system and architecture, and matches its sum. 'make dist' runs
// both; nothing is published.
package dist

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Platform is an operating system and architecture, as GOOS/GOARCH.
type Platform struct{ OS, Arch string }

func (p Platform) String() string { return p.OS + "/" + p.Arch }

// Platforms are the ones released: the laptops the agent runs on, and the
// servers the exit runs on.
var Platforms = []Platform{
	{"windows", "amd64"}, {"windows", "arm64"},
	{"darwin", "arm64"}, {"darwin", "amd64"},
	{"linux", "amd64"}, {"linux", "arm64"},
}

// Options say what to build.
type Options struct {
	// Dir is where the archives go; it is created.
	Dir string
	// Version and Commit are stamped into the binaries.
	Version, Commit string
	// Platforms to build; if nil, Platforms.
	Platforms []Platform
	// Docs are files added to every archive beside the binary (README.md).
	Docs []string
	// Log receives a line per archive; nil discards.
	Log io.Writer
}

// Archive names the archive of platform p at version v.
func Archive(v string, p Platform) string {
	ext := ".tar.gz"
	if p.OS == "windows" {
		ext = ".zip"
	}
	return fmt.Sprintf("fluidity_%s_%s_%s%s", v, p.OS, p.Arch, ext)
}

// SumsFile is the checksum file's name, in sha256sum's format.
const SumsFile = "SHA256SUMS"

// Build cross-compiles fluidity/cmd/fluidity for each platform with the go
// command on PATH, packs each binary with the docs, and writes SHA256SUMS.
func Build(ctx context.Context, o Options) error {
	if o.Version == "" || o.Commit == "" {
		return errors.New("dist: version and commit are required")
	}
	if o.Platforms == nil {
		o.Platforms = Platforms
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "fluidity-dist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	var sums bytes.Buffer
	for _, p := range o.Platforms {
		bin := filepath.Join(work, p.OS+"-"+p.Arch, binaryName(p))
		if err := BuildBinary(ctx, "", p, o.Version, o.Commit, bin); err != nil {
			return fmt.Errorf("dist: %w", err)
		}
		name := Archive(o.Version, p)
		path := filepath.Join(o.Dir, name)
		if err := pack(path, p, bin, o.Docs); err != nil {
			return fmt.Errorf("dist: %s: %w", name, err)
		}
		sum, err := fileSum(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&sums, "%s  %s\n", sum, name)
		fmt.Fprintf(o.Log, "%s  %s\n", sum, name)
	}
	return os.WriteFile(filepath.Join(o.Dir, SumsFile), sums.Bytes(), 0o644)
}

// BuildBinary builds fluidity/cmd/fluidity of the module at dir (""
// for the working directory) for p into out, with the go command on PATH:
// static (nothing to install beside it), trimmed, stamped with version and
// commit where given, and with the Lambda runtime without net/rpc, so the
// linux/arm64 release binary is the one 'fluidity aws deploy' builds.
func BuildBinary(ctx context.Context, dir string, p Platform, version, commit, out string) error {
	ldflags := "-s -w"
	if version != "" {
		ldflags += " -X fluidity/internal/cli.version=" + version
	}
	if commit != "" {
		ldflags += " -X fluidity/internal/cli.commit=" + commit
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-tags", "lambda.norpc", "-ldflags", ldflags, "-o", out, "fluidity/cmd/fluidity")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS="+p.OS, "GOARCH="+p.Arch, "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", p, err, msg)
	}
	return nil
}

func binaryName(p Platform) string {
	if p.OS == "windows" {
		return "fluidity.exe"
	}
	return "fluidity"
}

// pack writes the binary and the docs into a zip (Windows) or a gzipped
// tar, at the archive's top level.
func pack(path string, p Platform, bin string, docs []string) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	files := append([]string{bin}, docs...)
	if p.OS == "windows" {
		zw := zip.NewWriter(f)
		for i, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			w, err := zw.CreateHeader(&zip.FileHeader{Name: archiveName(p, i, file), Method: zip.Deflate})
			if err != nil {
				return err
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		return zw.Close()
	}
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if i == 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: archiveName(p, i, file), Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// archiveName is the name in the archive of files[i]: the binary's is the
// platform's, the docs keep theirs.
func archiveName(p Platform, i int, file string) string {
	if i == 0 {
		return binaryName(p)
	}
	return filepath.Base(file)
}

func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Check verifies the archives in dir for version v: every platform's is
// listed in SHA256SUMS with the right sum, and holds a binary for that
// platform that carries the version and commit. It returns every problem.
func Check(dir, v, commit string, platforms []Platform) error {
	if platforms == nil {
		platforms = Platforms
	}
	sums, err := readSums(filepath.Join(dir, SumsFile))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range platforms {
		name := Archive(v, p)
		want, ok := sums[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: not in %s", name, SumsFile))
			continue
		}
		path := filepath.Join(dir, name)
		got, err := fileSum(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got != want {
			errs = append(errs, fmt.Errorf("%s: SHA-256 %s, %s says %s", name, got, SumsFile, want))
		}
		bin, err := extract(path, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if err := checkBinary(bin, p); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
		for _, stamp := range []string{v, commit} {
			if !bytes.Contains(bin, []byte(stamp)) {
				errs = append(errs, fmt.Errorf("%s: the binary does not carry %q", name, stamp))
			}
		}
	}
	return errors.Join(errs...)
}

func readSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			return nil, fmt.Errorf("%s: line %q is not 'SUM  NAME'", path, sc.Text())
		}
		sums[name] = sum
	}
	return sums, sc.Err()
}

// extract returns the binary in the archive at path.
func extract(path string, p Platform) ([]byte, error) {
	want := binaryName(p)
	if p.OS == "windows" {
		zr, err := zip.OpenReader(path)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		for _, f := range zr.File {
			if f.Name == want {
				r, err := f.Open()
				if err != nil {
					return nil, err
				}
				defer r.Close()
				return io.ReadAll(r)
			}
		}
		return nil, fmt.Errorf("no %s in the archive", want)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("no %s in the archive", want)
		}
		if err != nil {
			return nil, err
		}
		if h.Name == want {
			if h.Mode&0o111 == 0 {
				return nil, fmt.Errorf("%s is not executable (mode %o)", want, h.Mode)
			}
			return io.ReadAll(tr)
		}
	}
}

// checkBinary reads the executable's headers: the format of the operating
// system and the machine of the architecture.
func checkBinary(b []byte, p Platform) error {
	r := bytes.NewReader(b)
	var machine string
	switch p.OS {
	case "windows":
		f, err := pe.NewFile(r)
		if err != nil {
			return fmt.Errorf("not a Windows executable: %w", err)
		}
		machine = map[uint16]string{pe.IMAGE_FILE_MACHINE_AMD64: "amd64", pe.IMAGE_FILE_MACHINE_ARM64: "arm64"}[f.Machine]
	case "darwin":
		f, err := macho.NewFile(r)
		if err != nil {
			return fmt.Errorf("not a macOS executable: %w", err)
		}
		machine = map[macho.Cpu]string{macho.CpuAmd64: "amd64", macho.CpuArm64: "arm64"}[f.Cpu]
	case "linux":
		f, err := elf.NewFile(r)
		if err != nil {
			return fmt.Errorf("not a Linux executable: %w", err)
		}
		if f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
			return fmt.Errorf("ELF for %s, not Linux", f.OSABI)
		}
		machine = map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_AARCH64: "arm64"}[f.Machine]
	default:
		return fmt.Errorf("no check for %s", p.OS)
	}
	if machine != p.Arch {
		return fmt.Errorf("the binary is for %q, want %s", machine, p.Arch)
	}
	return nil
}
