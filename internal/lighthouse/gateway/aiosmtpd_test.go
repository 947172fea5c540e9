package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// aiosmtpd is Debian's python3-aiosmtpd (make deps-test installs it) run as a separate process on
// loopback, delivering into a maildir: an SMTP server that is not ours.
type aiosmtpd struct {
	t        *testing.T
	addr     string
	maildir  string
	cert     string
	key      string
	cmd      *exec.Cmd
	finished chan struct{}
}

const debianPython = "/usr/bin/python3"

func newAiosmtpd(t *testing.T, cert, key string) *aiosmtpd {
	t.Helper()
	if err := exec.Command(debianPython, "-c", "import aiosmtpd").Run(); err != nil {
		t.Skipf("python3-aiosmtpd is not installed (apt-get install python3-aiosmtpd): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := &aiosmtpd{t: t, addr: addr, maildir: filepath.Join(t.TempDir(), "maildir"), cert: cert, key: key}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *aiosmtpd) start() {
	s.t.Helper()
	args := []string{"-m", "aiosmtpd", "-n", "-l", s.addr, "-c", "aiosmtpd.handlers.Mailbox"}
	if s.cert != "" {
		args = append(args, "--tlscert", s.cert, "--tlskey", s.key, "--no-requiretls")
	}
	s.cmd = exec.Command(debianPython, append(args, s.maildir)...)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.finished = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.finished) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-s.finished:
			s.t.Fatalf("aiosmtpd exited: %v", s.cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("aiosmtpd does not answer on %s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *aiosmtpd) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.finished
	s.cmd = nil
}

// messages returns the messages in the maildir.
func (s *aiosmtpd) messages() []string {
	s.t.Helper()
	var out []string
	for _, sub := range []string{"new", "cur"} {
		entries, _ := os.ReadDir(filepath.Join(s.maildir, sub))
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(s.maildir, sub, e.Name()))
			if err != nil {
				s.t.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}

// Against a real SMTP server with STARTTLS: 80% and 100% send one message each, and an outage
// (the server process killed) delays delivery until it is back.
func TestNotificationsThroughAiosmtpd(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	smtpd := newAiosmtpd(t, certFile, keyFile)
	mailer := &SMTPMailer{Addr: smtpd.addr, From: "lighthouse@example.net", HelloName: "lighthouse.example.net",
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}, Timeout: 10 * time.Second}
	e := newEnv(t, filepath.Join(dir, "gw.db"), demoProviders("https://fhir.example.org/r4"), withMailer(mailer))
	ada := e.register("Ada", "ada@example.org")
	for i := 1; i <= 10; i++ {
		e.connect(ada, "demo", connectBody(t, userKey(i), 50000))
	}
	if n := deliver(t, e.g); n != 2 {
		t.Fatalf("sent %d, want 2", n)
	}
	msgs := smtpd.messages()
	if len(msgs) != 2 {
		t.Fatalf("maildir holds %d messages", len(msgs))
	}
	var near, reached int
	for _, m := range msgs {
		if !strings.Contains(m, "To: ada@example.org") {
			t.Errorf("message without the admin address:\n%s", m)
		}
		switch {
		case strings.Contains(m, "near its user limit (8 of 10)"):
			near++
		case strings.Contains(m, "user limit reached (10 of 10)"):
			reached++
		}
		for k := 1; k <= 10; k++ {
			if strings.Contains(m, userKey(k)) {
				t.Error("a message holds a user key")
			}
		}
	}
	if near != 1 || reached != 1 {
		t.Errorf("near %d, reached %d; want 1 each", near, reached)
	}
	// The server offered STARTTLS and the mailer took it: without the test CA it refuses to go on.
	unverified := *mailer
	unverified.TLSConfig = nil
	if err := unverified.Send(context.Background(), Message{To: "x@example.org", Subject: "s", Body: "b"}); err == nil ||
		!strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("send to a server with an unknown certificate: %v", err)
	}

	// Outage: the server is gone; the notification waits, then goes once it is back.
	smtpd.stop()
	e.connect(ada, "small", connectBody(t, userKey(1), 50000))
	e.connect(ada, "small", connectBody(t, userKey(2), 50000))
	e.connect(ada, "small", connectBody(t, userKey(3), 50000))
	if n := deliver(t, e.g); n != 0 {
		t.Fatalf("sent %d while the server is down", n)
	}
	smtpd.start()
	e.clock.Advance(outboxBackoff(1))
	if n, err := e.g.deliverOutbox(context.Background()); err != nil || n != 1 {
		t.Fatalf("after the outage: %d sent, %v", n, err)
	}
	if n := deliver(t, e.g); n != 0 || len(smtpd.messages()) != 3 {
		t.Errorf("maildir holds %d messages, want 3", len(smtpd.messages()))
	}
}
