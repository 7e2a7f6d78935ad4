package deploy

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"fluidity/internal/dist"
	"fluidity/internal/image"
)

// maxBinary bounds the binary read from a file or an archive.
const maxBinary = 256 << 20

// image is the exit's image, from the first source the options give.
func (o *Options) image(ctx context.Context, step func(string, ...any)) (v1.Image, error) {
	switch {
	case o.Image != "":
		ref, err := name.ParseReference(o.Image)
		if err != nil {
			return nil, fmt.Errorf("image: %q is not an image reference: %w", o.Image, err)
		}
		img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain),
			remote.WithPlatform(v1.Platform{OS: image.OS, Architecture: image.Arch}))
		if err != nil {
			return nil, fmt.Errorf("image: reading %s: %w", o.Image, err)
		}
		if cf, err := img.ConfigFile(); err != nil || cf.OS != image.OS || cf.Architecture != image.Arch {
			return nil, fmt.Errorf("image: %s is not a linux/arm64 image", o.Image)
		}
		step("using the image %s", o.Image)
		return img, nil
	case o.ExitBinary != "":
		bin, err := readBinary(o.ExitBinary)
		if err != nil {
			return nil, err
		}
		step("building the image from %s", o.ExitBinary)
		return image.Build(bin, o.Version)
	}
	if self, ok := selfBinary(); ok {
		step("building the image from this binary (it is linux/arm64)")
		return image.Build(self, o.Version)
	}
	src, err := o.sourceDir()
	if err != nil {
		return nil, err
	}
	step("building the linux/arm64 binary from %s", src)
	bin, err := goBuild(ctx, src, o.Version)
	if err != nil {
		return nil, err
	}
	return image.Build(bin, o.Version)
}

// errNoSource says what deploy needs when it has no way to the binary.
var errNoSource = errors.New(`deploy needs the exit's linux/arm64 binary and has no way to it: ` +
	`install Go (https://go.dev/dl/) and run 'fluidity aws deploy' in Fluidity's source tree (or pass --source DIR), ` +
	`or download the linux/arm64 release archive and pass --exit-binary fluidity_VERSION_linux_arm64.tar.gz, ` +
	`or pass --image REF of an image you built (see the Dockerfile)`)

// sourceDir is the Fluidity module to build: Source, or the nearest
// directory at or above the working directory whose go.mod is Fluidity's,
// when the go command is at hand.
func (o *Options) sourceDir() (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", errNoSource
	}
	if o.Source != "" {
		if !isFluidityModule(o.Source) {
			return "", fmt.Errorf("source: %s holds no Fluidity module (no go.mod saying 'module fluidity')", o.Source)
		}
		return o.Source, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", errNoSource
	}
	for {
		if isFluidityModule(dir) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errNoSource
		}
		dir = parent
	}
}

func isFluidityModule(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(first) == "module fluidity"
}

// goBuild builds the exit's linux/arm64 binary of the module at dir, as
// the release does.
func goBuild(ctx context.Context, dir, version string) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "fluidity-deploy-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "fluidity")
	if err := dist.BuildBinary(ctx, dir, dist.Platform{OS: image.OS, Arch: image.Arch}, version, "", out); err != nil {
		return nil, fmt.Errorf("in %s: %w", dir, err)
	}
	return os.ReadFile(out)
}

// selfBinary is this program, if it is a static linux/arm64 binary.
func selfBinary() ([]byte, bool) {
	if runtime.GOOS != image.OS || runtime.GOARCH != image.Arch {
		return nil, false
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, false
	}
	data, err := os.ReadFile(exe)
	if err != nil || image.CheckBinary(data) != nil {
		return nil, false
	}
	return data, true
}

// readBinary reads the exit's binary from file: the binary itself, or a
// .tar.gz or .zip release archive holding one named fluidity.
func readBinary(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("exit-binary: %w", err)
	}
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		data, err = fromTarGz(data)
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		data, err = fromZip(data)
	}
	if err != nil {
		return nil, fmt.Errorf("exit-binary %s: %w", file, err)
	}
	if err := image.CheckBinary(data); err != nil {
		return nil, fmt.Errorf("exit-binary %s: %w; download the linux/arm64 release archive", file, err)
	}
	return data, nil
}

var errNoBinaryInArchive = errors.New("the archive holds no file named fluidity")

func fromTarGz(data []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, errNoBinaryInArchive
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg && path.Base(h.Name) == "fluidity" {
			return io.ReadAll(io.LimitReader(tr, maxBinary))
		}
	}
}

func fromZip(data []byte) ([]byte, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	for _, f := range zr.File {
		if path.Base(f.Name) == "fluidity" && !f.FileInfo().IsDir() {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			defer rc.Close()
			return io.ReadAll(io.LimitReader(rc, maxBinary))
		}
	}
	return nil, errNoBinaryInArchive
}
