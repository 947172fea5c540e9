//go:build !linux

package control

import "net"

// sameUser relies on the socket's mode (0600) and the folder's (0700) on systems without
// SO_PEERCRED here.
func sameUser(net.Conn) bool { return true }
