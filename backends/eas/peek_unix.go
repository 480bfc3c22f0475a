//go:build unix

package eas

import "syscall"

// peekReady reports whether a read on fd would not block: bytes are waiting, the peer closed,
// or the socket has an error (the reader then finds out which). It consumes nothing.
func peekReady(fd uintptr) bool {
	var b [1]byte
	for {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false
		}
		return true
	}
}
