// Package image builds the exit's container image in-process, with no
// Docker: one layer on an empty base holding the static fluidity binary
// and the files a non-root user needs, for linux/arm64 (Graviton, the
// cheaper Fargate). The binary carries its own CA roots (it imports
// golang.org/x/crypto/x509roots/fallback), so the image needs no others.
//
// The same image serves the exit (a Fargate task running "fluidity
// server") and the control plane (a container-image Lambda function
// running "fluidity lambda"): the entry point is the binary, and each
// gives its own command.
//
// The build is reproducible: the same binary makes the same image digest,
// so pushing it again is a no-op and a task definition that names the
// digest does not change.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's layout.
const (
	// BinaryPath is where the binary is, and the entry point.
	BinaryPath = "/fluidity"
	// User is the non-root user and group the image runs as (the
	// "nonroot" of distroless images).
	User = "65532:65532"
	// OS and Arch are the image's platform.
	OS   = "linux"
	Arch = "arm64"
)

// epoch is the time of every file and of the image: a fixed time keeps the
// digest a function of the binary alone.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// passwd and group name the non-root user, for programs that look it up.
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\n"
)

// Build makes the image of binary, a static linux/arm64 fluidity binary
// (see CheckBinary), labelled with version.
func Build(binary []byte, version string) (v1.Image, error) {
	if err := CheckBinary(binary); err != nil {
		return nil, err
	}
	layerTar, err := layerFiles([]file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, dir: true, uid: 65532, gid: 65532},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: BinaryPath[1:], mode: 0o755, data: binary},
	})
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	// Edit the config the layers produced (it holds their diff IDs);
	// a new config would drop them.
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = OS, Arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{BinaryPath}
	cf.Config.Cmd = []string{"server"}
	cf.Config.User = User
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{"HOME=/home/nonroot"}
	cf.Config.ExposedPorts = map[string]struct{}{"8443/tcp": {}}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "fluidity",
		"org.opencontainers.image.description": "Fluidity's exit server and control plane",
		"org.opencontainers.image.version":     version,
	}
	cf.History = nil
	return mutate.ConfigFile(img, cf)
}

// file is one entry of the layer.
type file struct {
	name     string
	mode     int64
	dir      bool
	data     []byte
	uid, gid int
}

func layerFiles(files []file) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, ModTime: epoch, Uid: f.uid, Gid: f.gid, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("image: layer: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("image: layer: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("image: layer: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrNotExitBinary is wrapped by CheckBinary's errors.
var ErrNotExitBinary = errors.New("not a static linux/arm64 executable")

// CheckBinary reports whether data is a static linux/arm64 ELF executable,
// the only kind the image can run (it has no libc).
func CheckBinary(data []byte) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: not an ELF file (%v); it must be the linux/arm64 fluidity binary", ErrNotExitBinary, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_AARCH64 || f.OSABI != elf.ELFOSABI_NONE && f.OSABI != elf.ELFOSABI_LINUX {
		return fmt.Errorf("%w: it is for %v, not arm64 (build it with GOOS=linux GOARCH=arm64)", ErrNotExitBinary, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%w: it is an ELF %v, not an executable", ErrNotExitBinary, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%w: it is dynamically linked; build it with CGO_ENABLED=0", ErrNotExitBinary)
		}
	}
	return nil
}

// Push pushes img to ref (registry/repository:tag) unless the registry
// already has it there, and returns the image's digest reference
// (registry/repository@sha256:…) and whether anything was pushed.
func Push(ctx context.Context, img v1.Image, ref string, auth authn.Authenticator) (digestRef string, pushed bool, err error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", false, fmt.Errorf("image: %q is not an image reference: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", false, fmt.Errorf("image: %w", err)
	}
	digestRef = tag.Context().Digest(digest.String()).String()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth)}
	if desc, err := remote.Head(tag, opts...); err == nil && desc.Digest == digest {
		return digestRef, false, nil
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return "", false, fmt.Errorf("image: push to %s: %w", tag.Context(), err)
	}
	return digestRef, true, nil
}
