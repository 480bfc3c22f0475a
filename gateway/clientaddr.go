package gateway

import (
	"bytes"
	"net"
	"net/netip"
)

// clientAddr returns the address of the device: the peer address, unless the peer is a trusted
// proxy, in which case X-Forwarded-For is walked from the right and the first address that is
// not itself a trusted proxy is the client. A malformed entry stops the walk at the last trusted
// hop (a device cannot forge its address by prepending entries).
func clientAddr(peer net.Addr, xff []byte, trusted []netip.Prefix) netip.Addr {
	addr := addrOf(peer)
	if len(trusted) == 0 || !isTrusted(addr, trusted) {
		return addr
	}
	for len(xff) > 0 {
		var part []byte
		if i := bytes.LastIndexByte(xff, ','); i >= 0 {
			part, xff = xff[i+1:], xff[:i]
		} else {
			part, xff = xff, nil
		}
		a, err := netip.ParseAddr(string(bytes.TrimSpace(part)))
		if err != nil {
			return addr
		}
		a = a.Unmap()
		if !isTrusted(a, trusted) {
			return a
		}
		addr = a
	}
	return addr
}

func addrOf(a net.Addr) netip.Addr {
	switch v := a.(type) {
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(v.IP)
		return ip.Unmap()
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.IPv4Unspecified()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
