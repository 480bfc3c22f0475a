package servers

import (
	"fmt"
	"net"
)

// freeAddrs returns n distinct 127.0.0.1 addresses whose ports were free a moment ago. All n
// listeners are held until every port is chosen: picked one at a time, the kernel may hand out
// the same port twice, and a server given it for two services refuses to start.
func freeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("servers: free port: %w", err)
		}
		defer l.Close()
		addrs[i] = l.Addr().String()
	}
	return addrs, nil
}
