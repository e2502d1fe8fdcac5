package http

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddr is the address a request came from, as far as it can be
// trusted. The peer's own address, unless the peer is one of the trusted
// proxies: then X-Forwarded-For is read from the right, where each trusted
// proxy appended the address it got the request from, and the first address
// that is not a trusted proxy is the client. Everything left of it was
// written by the client, so it is never read: a client cannot choose its
// address by sending an X-Forwarded-For of its own, and a peer that is not a
// trusted proxy cannot either. A hop that does not parse stops the walk at
// the last address a trusted proxy vouched for.
//
// It does not allocate: it runs on every request of the per-client limit,
// sold-out answers included.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok || !isTrusted(peer, trusted) {
		return peer
	}
	last := peer
	vals := r.Header["X-Forwarded-For"]
	for i := len(vals) - 1; i >= 0; i-- {
		v := vals[i]
		for v != "" {
			item := v
			if j := strings.LastIndexByte(v, ','); j >= 0 {
				item, v = v[j+1:], v[:j]
			} else {
				v = ""
			}
			item = strings.TrimSpace(item)
			if item == "" {
				continue
			}
			a, ok := parseHop(item)
			if !ok {
				return last
			}
			if !isTrusted(a, trusted) {
				return a
			}
			last = a
		}
	}
	// Every hop is a trusted proxy: the request began at one of them.
	return last
}

// parseHop reads one address as RemoteAddr or a proxy writes it: "ip",
// "ip:port" or "[ipv6]:port", without a zone, IPv4-mapped IPv6 as IPv4.
func parseHop(s string) (netip.Addr, bool) {
	var a netip.Addr
	// Chosen by shape, not by trying: a failed parse allocates its error.
	if strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1 {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	} else {
		var err error
		if a, err = netip.ParseAddr(s); err != nil {
			return netip.Addr{}, false
		}
	}
	return a.WithZone("").Unmap(), true
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads a comma-separated list of CIDR prefixes or bare
// addresses (a /32 or /128), e.g. "10.0.0.0/8, 192.0.2.7".
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want an address or a CIDR prefix", part)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
