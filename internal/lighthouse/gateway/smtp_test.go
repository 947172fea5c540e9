package gateway

import (
	"bufio"
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
}

type smtpMessage struct {
	from, to string
	data     string
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
	r := bufio.NewReader(c)
	say := func(line string) { c.Write([]byte(line + "\r\n")) }
	say("220 test ESMTP")
	var from, to string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250-test")
			say("250 8BITMIME")
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
			s.messages = append(s.messages, smtpMessage{from: from, to: to, data: b.String()})
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
