package socks5

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
)

// Protocol constants from RFC 1928.
const (
	version5 = 0x05

	methodNoAuth       = 0x00
	methodNoAcceptable = 0xFF

	cmdConnect      = 0x01
	cmdBind         = 0x02
	cmdUDPAssociate = 0x03

	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// Errors returned by ReadRequest, wrapped with details. errors.Is tells them
// apart.
var (
	// ErrVersion: the client does not speak SOCKS version 5.
	ErrVersion = errors.New("socks5: not a SOCKS5 client")
	// ErrNoAcceptableMethod: the client offered no method this server
	// supports (only "no authentication" is).
	ErrNoAcceptableMethod = errors.New("socks5: no acceptable authentication method")
	// ErrCommandNotSupported: the client asked for BIND, UDP ASSOCIATE or
	// an unknown command.
	ErrCommandNotSupported = errors.New("socks5: command not supported")
	// ErrAddressTypeNotSupported: the request has an unknown address type.
	ErrAddressTypeNotSupported = errors.New("socks5: address type not supported")
	// ErrMalformed: the request breaks the protocol in some other way.
	ErrMalformed = errors.New("socks5: malformed request")
)

// ReadRequest performs the method negotiation and reads the CONNECT request
// of a client whose first byte (0x05) has not been consumed yet. It returns
// the target as "host:port": a domain name exactly as the client sent it
// (not resolved), or an IP address, IPv6 in brackets.
//
// ReadRequest answers the failures it detects itself: "no acceptable
// methods" (0xFF) to a greeting without method 0x00 or without any method,
// CommandNotSupported to BIND, UDP ASSOCIATE and unknown commands,
// AddressTypeNotSupported to an unknown address type, and GeneralFailure to
// other malformed requests. It answers nothing to a greeting whose version
// is not 5, as that client does not speak SOCKS5. After an error the caller
// should close the connection without writing anything. On success it has
// written only the method selection; the caller answers the request with
// WriteReply.
//
// ReadRequest reads exactly the bytes of the negotiation and the request,
// never more, into one fixed 255-byte buffer; besides the target it
// allocates nothing.
func ReadRequest(rw io.ReadWriter) (target string, err error) {
	// One buffer serves every read and write: no field is longer.
	var buf [255]byte
	if err := negotiate(rw, &buf); err != nil {
		return "", err
	}
	target, reply, err := readConnect(rw, &buf)
	if err != nil && reply != Succeeded {
		// The request is refused; the reply is a courtesy, the error
		// that matters is err.
		WriteReply(rw, reply, netip.AddrPort{})
	}
	return target, err
}

// negotiate reads the greeting (VER NMETHODS METHODS) and selects "no
// authentication".
func negotiate(rw io.ReadWriter, buf *[255]byte) error {
	if _, err := io.ReadFull(rw, buf[:2]); err != nil {
		return fmt.Errorf("socks5: read greeting: %w", err)
	}
	if buf[0] != version5 {
		return fmt.Errorf("%w: version %d", ErrVersion, buf[0])
	}
	n := int(buf[1])
	methods := buf[:n]
	if _, err := io.ReadFull(rw, methods); err != nil {
		return fmt.Errorf("socks5: read methods: %w", err)
	}
	if bytes.IndexByte(methods, methodNoAuth) >= 0 {
		buf[0], buf[1] = version5, methodNoAuth
		if _, err := rw.Write(buf[:2]); err != nil {
			return fmt.Errorf("socks5: write method selection: %w", err)
		}
		return nil
	}
	err := fmt.Errorf("%w: offered % x", ErrNoAcceptableMethod, methods)
	if n == 0 {
		err = fmt.Errorf("%w: greeting offers no methods", ErrMalformed)
	}
	buf[0], buf[1] = version5, methodNoAcceptable
	rw.Write(buf[:2])
	return err
}

// readConnect reads the request (VER CMD RSV ATYP DST.ADDR DST.PORT). On
// failure it returns the reply to send, or Succeeded when none is due (the
// connection failed).
func readConnect(r io.Reader, buf *[255]byte) (target string, reply Reply, err error) {
	if _, err := io.ReadFull(r, buf[:4]); err != nil {
		return "", Succeeded, fmt.Errorf("socks5: read request: %w", err)
	}
	ver, cmd, rsv, atyp := buf[0], buf[1], buf[2], buf[3]

	// Read the whole request before judging it, when its length is known,
	// so that the reply is not lost to a reset caused by unread bytes.
	var host, domainProblem string
	switch atyp {
	case atypIPv4:
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			return "", Succeeded, fmt.Errorf("socks5: read IPv4 address: %w", err)
		}
		host = netip.AddrFrom4([4]byte(buf[:4])).String()
	case atypIPv6:
		if _, err := io.ReadFull(r, buf[:16]); err != nil {
			return "", Succeeded, fmt.Errorf("socks5: read IPv6 address: %w", err)
		}
		host = netip.AddrFrom16([16]byte(buf[:16])).String()
	case atypDomain:
		if _, err := io.ReadFull(r, buf[:1]); err != nil {
			return "", Succeeded, fmt.Errorf("socks5: read domain length: %w", err)
		}
		n := int(buf[0])
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return "", Succeeded, fmt.Errorf("socks5: read domain: %w", err)
		}
		if domainProblem = checkDomain(buf[:n]); domainProblem == "" {
			host = string(buf[:n])
		}
	default:
		return "", AddressTypeNotSupported, fmt.Errorf("%w: 0x%02x", ErrAddressTypeNotSupported, atyp)
	}
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return "", Succeeded, fmt.Errorf("socks5: read port: %w", err)
	}
	port := binary.BigEndian.Uint16(buf[:2])

	switch {
	case ver != version5:
		return "", GeneralFailure, fmt.Errorf("%w: request version %d", ErrVersion, ver)
	case rsv != 0:
		return "", GeneralFailure, fmt.Errorf("%w: reserved byte 0x%02x", ErrMalformed, rsv)
	case cmd != cmdConnect:
		return "", CommandNotSupported, fmt.Errorf("%w: %s", ErrCommandNotSupported, commandName(cmd))
	case domainProblem != "":
		return "", GeneralFailure, fmt.Errorf("%w: domain name %s", ErrMalformed, domainProblem)
	case port == 0:
		return "", GeneralFailure, fmt.Errorf("%w: port 0", ErrMalformed)
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), Succeeded, nil
}

// checkDomain reports what makes name unusable as a host, or "". A name is
// 1-255 bytes of letters, digits, '-', '_' and '.', or an IPv6 literal; this
// keeps out NUL, spaces, control bytes and anything that would let the
// target "host:port" be read back differently.
func checkDomain(name []byte) string {
	if len(name) == 0 {
		return "is empty"
	}
	colon := false
	for _, c := range name {
		switch {
		case c == 0:
			return "contains NUL"
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		case c == ':':
			colon = true
		default:
			return fmt.Sprintf("contains byte 0x%02x", c)
		}
	}
	if colon {
		if _, err := netip.ParseAddr(string(name)); err != nil {
			return "contains ':' but is not an IPv6 address"
		}
	}
	return ""
}

func commandName(cmd byte) string {
	switch cmd {
	case cmdBind:
		return "BIND"
	case cmdUDPAssociate:
		return "UDP ASSOCIATE (UDP is not supported)"
	}
	return fmt.Sprintf("0x%02x", cmd)
}
