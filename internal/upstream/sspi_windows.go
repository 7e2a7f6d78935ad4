//go:build windows

package upstream

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/windows"
)

// sspiAvailable says whether newOSSSPI can authenticate as the logged-in
// user.
const sspiAvailable = true

// sspiUnavailable is unused on Windows, where SSPI is available.
const sspiUnavailable = ""

var (
	secur32                        = windows.NewLazySystemDLL("secur32.dll")
	procAcquireCredentialsHandleW  = secur32.NewProc("AcquireCredentialsHandleW")
	procInitializeSecurityContextW = secur32.NewProc("InitializeSecurityContextW")
	procCompleteAuthToken          = secur32.NewProc("CompleteAuthToken")
	procDeleteSecurityContext      = secur32.NewProc("DeleteSecurityContext")
	procFreeCredentialsHandle      = secur32.NewProc("FreeCredentialsHandle")
	procFreeContextBuffer          = secur32.NewProc("FreeContextBuffer")
)

// SSPI constants (sspi.h, winerror.h).
const (
	secpkgCredOutbound      = 2
	securityNativeDrep      = 0x10
	secbufferVersion        = 0
	secbufferToken          = 2
	iscReqAllocateMemory    = 0x100
	iscReqConnection        = 0x800
	secEOK                  = 0
	secIContinueNeeded      = 0x00090312
	secICompleteNeeded      = 0x00090313
	secICompleteAndContinue = 0x00090314
)

type secHandle struct{ lower, upper uintptr }

type secBuffer struct {
	size uint32
	typ  uint32
	buf  *byte
}

type secBufferDesc struct {
	version uint32
	count   uint32
	buffers *secBuffer
}

// winSSPI is an SSPI client context for one proxy authentication.
type winSSPI struct {
	target  *uint16
	cred    secHandle
	ctx     secHandle
	started bool // ctx holds a context
}

// newOSSSPI acquires the logged-in user's outbound credentials for pkg
// ("Negotiate" or "NTLM"); target is the proxy's service principal name,
// HTTP/host, which Kerberos needs to find the proxy's ticket.
func newOSSSPI(pkg, target string) (sspiSession, error) {
	if err := secur32.Load(); err != nil {
		return nil, fmt.Errorf("sspi: %w", err)
	}
	pkgp, err := windows.UTF16PtrFromString(pkg)
	if err != nil {
		return nil, err
	}
	tp, err := windows.UTF16PtrFromString(target)
	if err != nil {
		return nil, err
	}
	s := &winSSPI{target: tp}
	var expiry int64
	r, _, _ := procAcquireCredentialsHandleW.Call(0, uintptr(unsafe.Pointer(pkgp)), secpkgCredOutbound,
		0, 0, 0, 0, uintptr(unsafe.Pointer(&s.cred)), uintptr(unsafe.Pointer(&expiry)))
	if r != secEOK {
		return nil, fmt.Errorf("sspi: AcquireCredentialsHandle(%s): status %#x", pkg, uint32(r))
	}
	return s, nil
}

func (s *winSSPI) Step(challenge []byte) ([]byte, error) {
	out := secBuffer{typ: secbufferToken}
	outDesc := secBufferDesc{version: secbufferVersion, count: 1, buffers: &out}
	var inDesc *secBufferDesc
	var in secBuffer
	if len(challenge) > 0 {
		in = secBuffer{size: uint32(len(challenge)), typ: secbufferToken, buf: &challenge[0]}
		inDesc = &secBufferDesc{version: secbufferVersion, count: 1, buffers: &in}
	}
	var ctxIn uintptr
	if s.started {
		ctxIn = uintptr(unsafe.Pointer(&s.ctx))
	}
	var attrs uint32
	var expiry int64
	r, _, _ := procInitializeSecurityContextW.Call(uintptr(unsafe.Pointer(&s.cred)), ctxIn,
		uintptr(unsafe.Pointer(s.target)), iscReqAllocateMemory|iscReqConnection, 0, securityNativeDrep,
		uintptr(unsafe.Pointer(inDesc)), 0, uintptr(unsafe.Pointer(&s.ctx)),
		uintptr(unsafe.Pointer(&outDesc)), uintptr(unsafe.Pointer(&attrs)), uintptr(unsafe.Pointer(&expiry)))
	s.started = true
	switch r {
	case secEOK, secIContinueNeeded:
	case secICompleteNeeded, secICompleteAndContinue:
		if c, _, _ := procCompleteAuthToken.Call(uintptr(unsafe.Pointer(&s.ctx)), uintptr(unsafe.Pointer(&outDesc))); c != secEOK {
			freeBuffer(&out)
			return nil, fmt.Errorf("sspi: CompleteAuthToken: status %#x", uint32(c))
		}
	default:
		freeBuffer(&out)
		return nil, fmt.Errorf("sspi: InitializeSecurityContext: status %#x", uint32(r))
	}
	tok := make([]byte, out.size)
	if out.size > 0 {
		copy(tok, unsafe.Slice(out.buf, out.size))
	}
	freeBuffer(&out)
	return tok, nil
}

func freeBuffer(b *secBuffer) {
	if b.buf != nil {
		procFreeContextBuffer.Call(uintptr(unsafe.Pointer(b.buf)))
		b.buf = nil
	}
}

func (s *winSSPI) Close() {
	if s.started {
		procDeleteSecurityContext.Call(uintptr(unsafe.Pointer(&s.ctx)))
		s.started = false
	}
	procFreeCredentialsHandle.Call(uintptr(unsafe.Pointer(&s.cred)))
}
