package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// elfFile is a minimal ELF64 executable header for machine, with one
// program header of type progType (0: none).
func elfFile(machine uint16, progType uint32) []byte {
	var b bytes.Buffer
	b.Write([]byte{0x7f, 'E', 'L', 'F', 2, 1, 1, 0}) // 64-bit, little-endian, version 1, System V
	b.Write(make([]byte, 8))
	le := binary.LittleEndian
	w := func(v any) { binary.Write(&b, le, v) }
	phnum := uint16(0)
	if progType != 0 {
		phnum = 1
	}
	w(uint16(2))       // ET_EXEC
	w(machine)         // e_machine
	w(uint32(1))       // e_version
	w(uint64(0x10000)) // e_entry
	w(uint64(64))      // e_phoff
	w(uint64(0))       // e_shoff
	w(uint32(0))       // e_flags
	w(uint16(64))      // e_ehsize
	w(uint16(56))      // e_phentsize
	w(phnum)           // e_phnum
	w(uint16(64))      // e_shentsize
	w(uint16(0))       // e_shnum
	w(uint16(0))       // e_shstrndx
	if progType != 0 {
		w(progType)
		w(uint32(4))      // flags
		w(uint64(0))      // offset
		w(uint64(0))      // vaddr
		w(uint64(0))      // paddr
		w(uint64(0))      // filesz
		w(uint64(0))      // memsz
		w(uint64(0x1000)) // align
	}
	b.WriteString("the rest of a fluidity binary")
	return b.Bytes()
}

const (
	emAArch64 = 183
	emX86_64  = 62
	ptInterp  = 3
	ptLoad    = 1
)

func TestCheckBinaryTakesOnlyStaticLinuxArm64(t *testing.T) {
	if err := CheckBinary(elfFile(emAArch64, ptLoad)); err != nil {
		t.Fatalf("a static arm64 executable: %v", err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"amd64", elfFile(emX86_64, ptLoad), "not arm64"},
		{"dynamically linked", elfFile(emAArch64, ptInterp), "CGO_ENABLED=0"},
		{"not ELF", []byte("MZ\x90\x00 a Windows program"), "not an ELF file"},
		{"a tar.gz", []byte{0x1f, 0x8b, 8, 0}, "not an ELF file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckBinary(tc.data)
			if !errors.Is(err, ErrNotExitBinary) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckBinary: %v; want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := Build(elfFile(emX86_64, ptLoad), "v1"); !errors.Is(err, ErrNotExitBinary) {
		t.Fatalf("Build of an amd64 binary: %v", err)
	}
}

func TestImageIsReproducibleAndPushedOnce(t *testing.T) {
	bin := elfFile(emAArch64, ptLoad)
	img, err := Build(bin, "v1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Build(bin, "v1.2.3")
	d1, _ := img.Digest()
	d2, _ := again.Digest()
	if d1 != d2 {
		t.Fatalf("two builds of one binary: %s and %s", d1, d2)
	}
	other, _ := Build(append(bin, '!'), "v1.2.3")
	if d3, _ := other.Digest(); d3 == d1 {
		t.Fatal("another binary made the same image")
	}

	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer reg.Close()
	ref := strings.TrimPrefix(reg.URL, "http://") + "/fluidity-exit:v1.2.3"
	ctx := context.Background()
	digestRef, pushed, err := Push(ctx, img, ref, authn.Anonymous)
	if err != nil || !pushed || !strings.HasSuffix(digestRef, "@"+d1.String()) {
		t.Fatalf("first push: %s, pushed %v, %v", digestRef, pushed, err)
	}
	if _, pushed, err := Push(ctx, again, ref, authn.Anonymous); err != nil || pushed {
		t.Fatalf("second push of the same image: pushed %v, %v; want nothing pushed", pushed, err)
	}

	// Pull it back as a runtime would.
	dref, err := name.NewDigest(digestRef)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(dref)
	if err != nil {
		t.Fatal(err)
	}
	// Digests, diff IDs, sizes and media types all agree.
	if err := validate.Image(pulled); err != nil {
		t.Fatalf("the pushed image is not valid: %v", err)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" || cf.Config.User != "65532:65532" ||
		strings.Join(cf.Config.Entrypoint, " ") != "/fluidity" || strings.Join(cf.Config.Cmd, " ") != "server" ||
		cf.Config.Labels["org.opencontainers.image.version"] != "v1.2.3" || len(cf.RootFS.DiffIDs) != 1 {
		t.Fatalf("pulled config: %+v", cf)
	}
	mt, _ := pulled.MediaType()
	if mt != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("manifest media type %s", mt)
	}
	layers, _ := pulled.Layers()
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	var got []byte
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		if h.Name == "fluidity" {
			got, _ = io.ReadAll(tr)
		}
	}
	if h := files["fluidity"]; h == nil || h.Mode != 0o755 || !bytes.Equal(got, bin) {
		t.Fatalf("the binary in the image: %+v", h)
	}
	if h := files["etc/passwd"]; h == nil {
		t.Fatal("no /etc/passwd for the non-root user")
	}
	if h := files["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Fatalf("/tmp: %+v", h)
	}
}
