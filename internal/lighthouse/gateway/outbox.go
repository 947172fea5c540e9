package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// Message is one notification for an installation's administrator.
type Message struct {
	To      string
	Subject string
	Body    string // plain text
}

// Mailer delivers messages. Send returns nil only once the server accepted the message.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// SMTPMailer sends through an SMTP server with net/smtp: STARTTLS whenever the server offers it,
// and PLAIN authentication when a username is set (net/smtp refuses to send it unencrypted except
// to localhost).
type SMTPMailer struct {
	Addr     string // host:port
	From     string // envelope and header sender
	Username string // from the environment, never a flag
	Password string
	// TLSConfig for STARTTLS; nil means verify the server's certificate for Addr's host.
	TLSConfig *tls.Config
	// Timeout bounds one delivery (default 30 s).
	Timeout time.Duration
	// HelloName is the name given in EHLO (default "localhost"); servers that insist on a fully
	// qualified name want the gateway's public host name.
	HelloName string
}

// Send delivers m. Errors name the server and the SMTP step, never the credentials.
func (s *SMTPMailer) Send(ctx context.Context, m Message) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", s.Addr, err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("smtp %s: greeting: %w", s.Addr, err)
	}
	defer c.Close()
	hello := s.HelloName
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return fmt.Errorf("smtp %s: EHLO: %w", s.Addr, err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		cfg := s.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("smtp %s: STARTTLS: %w", s.Addr, err)
		}
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("smtp %s: authentication failed: %w", s.Addr, err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp %s: MAIL FROM: %w", s.Addr, err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return fmt.Errorf("smtp %s: RCPT TO: %w", s.Addr, err)
	}
	wc, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.Addr, err)
	}
	msg, err := formatMessage(s.From, m, time.Now())
	if err != nil {
		return err
	}
	if _, err := wc.Write(msg); err != nil {
		return fmt.Errorf("smtp %s: DATA: %w", s.Addr, err)
	}
	// Close sends the final dot and reads the server's answer: acceptance happens here.
	if err := wc.Close(); err != nil {
		return fmt.Errorf("smtp %s: message not accepted: %w", s.Addr, err)
	}
	c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

// formatMessage renders m as an RFC 5322 message: UTF-8 text, quoted-printable, encoded subject.
func formatMessage(from string, m Message, now time.Time) ([]byte, error) {
	for _, v := range []string{from, m.To, m.Subject} {
		if strings.ContainsAny(v, "\r\n") {
			return nil, errors.New("a message header holds a line break")
		}
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	domain := "lighthouse.invalid"
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		domain = d
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: <%s@%s>\r\n",
		from, m.To, mime.QEncoding.Encode("utf-8", m.Subject), now.UTC().Format(time.RFC1123Z), hex.EncodeToString(id), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(m.Body, "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// notificationMessage is the text of an outbox row for its administrator. It names the provider,
// the count and the limit, and what the administrator can do; never a user key.
func notificationMessage(e outboxEntry, adminName, providerName, lighthouse string) Message {
	var subject, first string
	switch e.Kind {
	case kindLimitReached:
		subject = fmt.Sprintf("Fasten Lighthouse: %s user limit reached (%d of %d)", providerName, e.Count, e.Limit)
		first = fmt.Sprintf("Your Fasten installation has reached its limit of %d users for %s: %d people are connected through it. "+
			"Nobody else on this installation can connect %s until a slot is freed.", e.Limit, providerName, e.Count, providerName)
	default:
		subject = fmt.Sprintf("Fasten Lighthouse: %s is near its user limit (%d of %d)", providerName, e.Count, e.Limit)
		first = fmt.Sprintf("Your Fasten installation now has %d of its %d users for %s. "+
			"When it reaches %d, nobody else on this installation can connect %s.", e.Count, e.Limit, providerName, e.Limit, providerName)
	}
	greeting := "Hello,"
	if adminName != "" {
		greeting = "Hello " + adminName + ","
	}
	body := greeting + "\n\n" + first + "\n\n" +
		"What you can do:\n" +
		"- In Fasten, delete people who no longer use this computer, or disconnect " + providerName + " for people who no longer need it: that frees their slot.\n" +
		"- If this installation needs more users for " + providerName + ", ask the operator of this Lighthouse (" + lighthouse + ") to raise the limit.\n\n" +
		"Installation ID: " + e.InstallationID + "\n" +
		"You receive this email because this address was given when the installation was registered with the Lighthouse.\n"
	return Message{To: e.AdminEmail, Subject: subject, Body: body}
}

// Outbox delivery tuning.
const (
	outboxBatch = 20
	// outboxLease is how long a claimed row stays reserved for its sender; far longer than one
	// delivery (SMTPMailer's 30 s timeout), so a row is never sent by two instances at once.
	outboxLease      = 5 * time.Minute
	outboxBackoffMin = 30 * time.Second
	outboxBackoffMax = time.Hour
	outboxPoll       = 10 * time.Second
)

// outboxBackoff is the wait after the attempts-th failed delivery: 30 s doubling, at most an hour.
func outboxBackoff(attempts int) time.Duration {
	d := outboxBackoffMin
	for i := 1; i < attempts && d < outboxBackoffMax; i++ {
		d *= 2
	}
	return min(d, outboxBackoffMax)
}

// Run does the gateway's background work until ctx ends: it delivers the outbox (when a Mailer is
// configured) and deletes expired used-ticket records. Several instances on one database may run
// it at once.
func (g *Gateway) Run(ctx context.Context) error {
	if g.mailer == nil {
		g.log.Warn("no SMTP server configured (--smtp-addr): administrator notifications are queued in the outbox, not sent")
	}
	poll := g.outboxPoll
	if poll <= 0 {
		poll = outboxPoll
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var lastPurge time.Time
	for {
		if g.mailer != nil {
			if _, err := g.deliverOutbox(ctx); err != nil && ctx.Err() == nil {
				g.log.Error("outbox delivery", slog.String("error", err.Error()))
			}
		}
		if now := g.now(); now.Sub(lastPurge) >= time.Minute {
			if err := g.store.purgeUsedTickets(ctx, now); err != nil && ctx.Err() == nil {
				g.log.Error("purge used tickets", slog.String("error", err.Error()))
			}
			lastPurge = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// deliverOutbox claims the due notifications and sends them; it returns how many were sent.
func (g *Gateway) deliverOutbox(ctx context.Context) (int, error) {
	sent := 0
	for {
		claim, rows, err := g.store.claimOutbox(ctx, g.now(), outboxBatch)
		if err != nil || len(rows) == 0 {
			return sent, err
		}
		for _, e := range rows {
			if err := g.deliver(ctx, e); err != nil {
				g.metrics.notification("failed")
				wait := outboxBackoff(e.Attempts + 1)
				g.log.Warn("notification not delivered; will retry",
					slog.String("installation_id", e.InstallationID), slog.String("provider", e.ProviderID),
					slog.String("kind", e.Kind), slog.Int("attempt", e.Attempts+1), slog.Duration("retry_in", wait),
					slog.String("error", err.Error()))
				if err := g.store.outboxFailed(ctx, e.ID, claim, g.now().Add(wait), err.Error()); err != nil {
					return sent, err
				}
				continue
			}
			g.metrics.notification("sent")
			sent++
			g.log.Info("notification sent", slog.String("installation_id", e.InstallationID),
				slog.String("provider", e.ProviderID), slog.String("kind", e.Kind))
			if err := g.store.outboxSent(ctx, e.ID, claim, g.now()); err != nil {
				return sent, err
			}
		}
		if len(rows) < outboxBatch {
			return sent, nil
		}
	}
}

func (g *Gateway) deliver(ctx context.Context, e outboxEntry) error {
	adminName := ""
	if in, err := g.store.installation(ctx, e.InstallationID); err == nil {
		adminName = in.Name
	}
	providerName := e.ProviderID
	if p, ok := g.providers[e.ProviderID]; ok {
		providerName = p.Name
	}
	return g.mailer.Send(ctx, notificationMessage(e, adminName, providerName, g.public))
}

// --- outbox storage ---

// claimOutbox reserves up to n due, unsent rows for this sender (a fresh claim ID, a lease until
// now+outboxLease) and returns them. On PostgreSQL the rows are picked with FOR UPDATE SKIP
// LOCKED, so concurrent senders on other instances take other rows; on SQLite the UPDATE runs
// under the database write lock. A row whose sender died is due again when its lease ends.
func (s *store) claimOutbox(ctx context.Context, now time.Time, n int) (string, []outboxEntry, error) {
	idb := make([]byte, 12)
	if _, err := rand.Read(idb); err != nil {
		return "", nil, err
	}
	claim := hex.EncodeToString(idb)
	lock := ""
	if s.dialect == dialectPostgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	ts := formatTime(now)
	rows, err := s.write.QueryContext(ctx, `UPDATE outbox SET claim_id = $1, claimed_until = $2
		WHERE id IN (SELECT id FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= $3
			AND (claimed_until IS NULL OR claimed_until < $3) ORDER BY created_at, id LIMIT $4`+lock+`)
		RETURNING id, installation_id, provider_id, kind, admin_email, user_count, user_limit, created_at, attempts`,
		claim, formatTime(now.Add(outboxLease)), ts, n)
	if err != nil {
		return "", nil, fmt.Errorf("claim outbox: %w", err)
	}
	defer rows.Close()
	var out []outboxEntry
	for rows.Next() {
		var e outboxEntry
		if err := rows.Scan(&e.ID, &e.InstallationID, &e.ProviderID, &e.Kind, &e.AdminEmail, &e.Count, &e.Limit, &e.CreatedAt, &e.Attempts); err != nil {
			return "", nil, fmt.Errorf("claim outbox: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return "", nil, fmt.Errorf("claim outbox: %w", err)
	}
	return claim, out, nil
}

// outboxSent marks a claimed row sent; the claim ID makes sure only its claimer does.
func (s *store) outboxSent(ctx context.Context, id, claim string, now time.Time) error {
	_, err := s.write.ExecContext(ctx, `UPDATE outbox SET sent_at = $3, attempts = attempts + 1, claim_id = NULL,
		claimed_until = NULL, last_error = NULL WHERE id = $1 AND claim_id = $2`, id, claim, formatTime(now))
	if err != nil {
		return fmt.Errorf("mark notification sent: %w", err)
	}
	return nil
}

// outboxFailed releases a claimed row for another attempt at next.
func (s *store) outboxFailed(ctx context.Context, id, claim string, next time.Time, reason string) error {
	if len(reason) > 500 {
		reason = reason[:500]
	}
	_, err := s.write.ExecContext(ctx, `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $3, last_error = $4,
		claim_id = NULL, claimed_until = NULL WHERE id = $1 AND claim_id = $2`, id, claim, formatTime(next), reason)
	if err != nil {
		return fmt.Errorf("mark notification failed: %w", err)
	}
	return nil
}

// outboxRow is one row of `lighthouse admin outbox`.
type outboxRow struct {
	outboxEntry
	SentAt      string
	NextAttempt string
	LastError   string
}

func (s *store) outboxAll(ctx context.Context) ([]outboxRow, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, installation_id, provider_id, kind, admin_email, user_count, user_limit,
		created_at, attempts, sent_at, next_attempt_at, last_error FROM outbox ORDER BY created_at, user_count, kind, id`)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		var sent, lastErr sql.NullString
		if err := rows.Scan(&r.ID, &r.InstallationID, &r.ProviderID, &r.Kind, &r.AdminEmail, &r.Count, &r.Limit,
			&r.CreatedAt, &r.Attempts, &sent, &r.NextAttempt, &lastErr); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		r.SentAt, r.LastError = sent.String, lastErr.String
		out = append(out, r)
	}
	return out, rows.Err()
}
