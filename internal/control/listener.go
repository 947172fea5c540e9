package control

import (
	"log/slog"
	"net"
)

// peerListener drops connections from other users (defence in depth behind the file modes).
type peerListener struct {
	net.Listener
	log *slog.Logger
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if sameUser(c) {
			return c, nil
		}
		l.log.Warn("control socket: refused a connection from another user")
		c.Close()
	}
}
