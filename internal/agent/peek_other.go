//go:build !linux

package agent

import "net"

func peekFirstByte(nc net.Conn) (byte, net.Conn, error) { return peekWrapped(nc) }
