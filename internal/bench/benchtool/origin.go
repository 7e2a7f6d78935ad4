package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// chunk is the size of the writes of the sources and of /bytes.
const chunk = 256 << 10

// smallBody is the /small response body: about 100 bytes.
var smallBody = []byte(strings.Repeat("fluidity benchmark response body. ", 3)[:100])

// OriginAddrs is what origin prints on its first line.
type OriginAddrs struct {
	HTTP   string `json:"http"`   // /bytes?n=N and /small
	Source string `json:"source"` // TCP: send "N\n", receive N bytes
	TLS    string `json:"tls"`    // the same over TLS 1.3
	Hold   string `json:"hold"`   // accepts and holds connections until the peer closes
	HTTPS  string `json:"https"`  // the HTTP server over TLS 1.3 (HTTP/1.1)
}

// runOrigin serves until stdin is closed.
func runOrigin(args []string) error {
	fs := newFlags("origin")
	host := fs.String("host", "127.0.0.1", "address to listen on")
	fs.Parse(args)

	listen := func() (net.Listener, error) { return net.Listen("tcp", net.JoinHostPort(*host, "0")) }
	httpLn, err := listen()
	if err != nil {
		return err
	}
	srcLn, err := listen()
	if err != nil {
		return err
	}
	tlsRaw, err := listen()
	if err != nil {
		return err
	}
	holdLn, err := listen()
	if err != nil {
		return err
	}
	httpsRaw, err := listen()
	if err != nil {
		return err
	}
	cert, err := selfSigned()
	if err != nil {
		return err
	}
	tlsLn := tls.NewListener(tlsRaw, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
	})

	buf := make([]byte, chunk)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(smallBody)))
		w.Write(smallBody)
	})
	mux.HandleFunc("/bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "n: want a byte count", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		writeN(w, buf, n)
	})
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(httpLn)
	httpsLn := tls.NewListener(httpsRaw, &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{"http/1.1"},
	})
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(httpsLn)
	go acceptLoop(srcLn, func(c net.Conn) { serveSource(c, buf) })
	go acceptLoop(tlsLn, func(c net.Conn) { serveSource(c, buf) })
	go acceptLoop(holdLn, func(c net.Conn) {
		io.Copy(io.Discard, c)
		c.Close()
	})

	out, _ := json.Marshal(OriginAddrs{
		HTTP:   httpLn.Addr().String(),
		Source: srcLn.Addr().String(),
		TLS:    tlsRaw.Addr().String(),
		Hold:   holdLn.Addr().String(),
		HTTPS:  httpsRaw.Addr().String(),
	})
	fmt.Printf("%s\n", out)
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	return nil
}

func acceptLoop(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go serve(c)
	}
}

// serveSource reads "N\n" and answers with N bytes, then closes.
func serveSource(c net.Conn, buf []byte) {
	defer c.Close()
	line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
	if err != nil {
		return
	}
	n, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil || n < 0 {
		return
	}
	writeN(c, buf, n)
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	io.Copy(io.Discard, c) // until the client closes: no RST on unread data
}

func writeN(w io.Writer, buf []byte, n int64) error {
	for n > 0 {
		p := buf
		if int64(len(p)) > n {
			p = p[:n]
		}
		m, err := w.Write(p)
		n -= int64(m)
		if err != nil {
			return err
		}
	}
	return nil
}

// selfSigned makes an ECDSA P-256 certificate for the raw TLS baseline,
// the same key type as the certificates of 'fluidity certs init'.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "benchtool"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
