package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a small SMTP server on loopback for the notification tests: it speaks enough of
// RFC 5321 for net/smtp (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), keeps what it accepted, and
// can be taken down (connections closed before the greeting) or made to refuse messages with a
// temporary error at the end of DATA.
type smtpServer struct {
	ln   net.Listener
	addr string

	mu       sync.Mutex
	down     bool
	refuse   bool
	delay    time.Duration // before answering the end of DATA: widens races between senders
	messages []smtpMessage
	conns    int
	// tls, when set, is offered with STARTTLS; auth, when set ("user\x00password"), is offered
	// (after STARTTLS) and required for MAIL.
	tls  *tls.Config
	auth string
	// authClear offers AUTH without TLS (net/smtp sends PLAIN in clear only to localhost).
	authClear bool
	hellos    []string
}

type smtpMessage struct {
	from, to string
	data     string
	tls      bool   // sent over STARTTLS
	user     string // authenticated as
}

func newSMTPServer(t testing.TB) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, addr: ln.Addr().String()}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(c) }()
		}
	}()
	return s
}

func (s *smtpServer) set(f func(s *smtpServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *smtpServer) received() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.messages...)
}

func (s *smtpServer) connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	s.mu.Lock()
	s.conns++
	down := s.down
	s.mu.Unlock()
	if down {
		return
	}
	s.mu.Lock()
	tlsConfig, auth, authClear := s.tls, s.auth, s.authClear
	s.mu.Unlock()
	var conn net.Conn = c
	r := bufio.NewReader(conn)
	say := func(line string) { conn.Write([]byte(line + "\r\n")) }
	say("220 test ESMTP")
	var from, to, user string
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			s.mu.Lock()
			s.hellos = append(s.hellos, strings.TrimSpace(line)[5:])
			s.mu.Unlock()
			say("250-test")
			if tlsConfig != nil && !secure {
				say("250-STARTTLS")
			}
			if auth != "" && (secure || authClear) {
				say("250-AUTH PLAIN")
			}
			say("250 8BITMIME")
		case cmd == "STARTTLS" && tlsConfig != nil && !secure:
			say("220 go ahead")
			tc := tls.Server(c, tlsConfig)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, secure = tc, true
			r = bufio.NewReader(conn)
		case strings.HasPrefix(cmd, "AUTH PLAIN ") && auth != "" && (secure || authClear):
			raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line)[len("AUTH PLAIN "):])
			if err != nil || !strings.HasSuffix(string(raw), "\x00"+auth) {
				say("535 5.7.8 authentication failed")
				continue
			}
			user, _, _ = strings.Cut(auth, "\x00")
			say("235 2.7.0 ok")
		case strings.HasPrefix(cmd, "MAIL FROM:") && auth != "" && user == "":
			say("530 5.7.0 authentication required")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			from, _, _ = strings.Cut(strings.Trim(strings.TrimSpace(line)[10:], "< "), ">")
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			to, _, _ = strings.Cut(strings.Trim(strings.TrimSpace(line)[8:], "< "), ">")
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(strings.TrimPrefix(l, "."))
			}
			s.mu.Lock()
			refuse, delay := s.refuse, s.delay
			s.mu.Unlock()
			if delay > 0 {
				time.Sleep(delay)
			}
			if refuse {
				say("451 4.3.0 try again later")
				continue
			}
			s.mu.Lock()
			s.messages = append(s.messages, smtpMessage{from: from, to: to, data: b.String(), tls: secure, user: user})
			s.mu.Unlock()
			say("250 queued")
		case cmd == "RSET", cmd == "NOOP":
			say("250 ok")
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("502 not implemented")
		}
	}
}
