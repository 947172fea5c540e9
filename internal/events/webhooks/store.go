package webhooks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fastenhealth/fasten-desktop/internal/db"
	"github.com/fastenhealth/fasten-desktop/internal/secrets"
)

// Subscriptions persist in the hub_subscriptions table (migration 0003_hub.sql) without their
// secrets: a row names the keyring entry that holds the secret (secret_key). Per-delivery
// counters stay in memory; the row is written when the state changes, so a busy hub does not
// compete with imports for the single writer connection.

const subCols = `id, callback, events, state, lease_seconds, lease_expires, include_resources,
	allow_resources, secret_key, failures, last_error, last_delivery, created_at, updated_at`

func fmtTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func parseTime(v sql.NullString) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, v.String)
	return t
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// persist writes the current state of subscription id, or deletes its row when it is gone.
// Calls are serialised and each reads the state when it runs, so the newest state wins.
func (h *Hub) persist(ctx context.Context, id string) error {
	if h.cfg.DB == nil {
		h.mu.Lock()
		h.notifyLocked()
		h.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	h.saveMu.Lock()
	defer h.saveMu.Unlock()
	h.mu.Lock()
	s := h.subs[id]
	var args []any
	if s != nil {
		args = []any{s.id, s.callback, strings.Join(s.events, ","), s.state, int64(s.lease / time.Second),
			fmtTime(s.expires), boolInt(s.include), boolInt(s.allow), nullString(s.secretKey), s.failures,
			nullString(s.lastError), fmtTime(s.lastDelivery), fmtTime(s.created), fmtTime(s.updated)}
	}
	h.mu.Unlock()
	var err error
	if s == nil {
		_, err = h.cfg.DB.Write.ExecContext(ctx, `DELETE FROM hub_subscriptions WHERE id = ?`, id)
	} else {
		_, err = h.cfg.DB.Write.ExecContext(ctx, `INSERT INTO hub_subscriptions (`+subCols+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET callback = excluded.callback, events = excluded.events,
				state = excluded.state, lease_seconds = excluded.lease_seconds,
				lease_expires = excluded.lease_expires, include_resources = excluded.include_resources,
				allow_resources = excluded.allow_resources, secret_key = excluded.secret_key,
				failures = excluded.failures, last_error = excluded.last_error,
				last_delivery = excluded.last_delivery, updated_at = excluded.updated_at`, args...)
	}
	if err != nil {
		err = fmt.Errorf("save webhook subscription: %w", db.Explain(err))
		h.log.Error("webhook subscription not saved", "subscription", id, "err", err)
	}
	h.mu.Lock()
	h.notifyLocked()
	h.mu.Unlock()
	return err
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// saveDeadLetter records an undeliverable event, keeping the newest keepDeadLetters per subscription.
func (h *Hub) saveDeadLetter(ctx context.Context, id string, dl DeadLetter) {
	if h.cfg.DB == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	err := h.cfg.DB.WriteTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO hub_dead_letters
			(subscription_id, event_id, event, event_time, attempts, error, failed_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			id, dl.EventID, dl.Event, fmtTime(dl.Timestamp), dl.Attempts, dl.Error, fmtTime(dl.FailedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `DELETE FROM hub_dead_letters WHERE subscription_id = ? AND id NOT IN
			(SELECT id FROM hub_dead_letters WHERE subscription_id = ? ORDER BY id DESC LIMIT ?)`, id, id, keepDeadLetters)
		return err
	})
	if err != nil {
		h.log.Error("webhook dead letter not saved", "subscription", id, "err", err)
	}
}

// load reads the saved subscriptions. Secrets are not read here (a locked keyring must not slow
// the start); each worker reads its own when it first delivers.
func (h *Hub) load(ctx context.Context) error {
	if h.cfg.DB == nil {
		return nil
	}
	rows, err := h.cfg.DB.Read.QueryContext(ctx, `SELECT `+subCols+` FROM hub_subscriptions`)
	if err != nil {
		return fmt.Errorf("load webhook subscriptions: %w", db.Explain(err))
	}
	defer rows.Close()
	var stale []string
	for rows.Next() {
		var (
			s                                  sub
			events                             string
			lease                              int64
			include, allow                     int
			expires, key, lastErr, last, c, up sql.NullString
		)
		if err := rows.Scan(&s.id, &s.callback, &events, &s.state, &lease, &expires, &include, &allow, &key,
			&s.failures, &lastErr, &last, &c, &up); err != nil {
			return fmt.Errorf("load webhook subscriptions: %w", err)
		}
		s.events = strings.Split(events, ",")
		s.lease = time.Duration(lease) * time.Second
		s.expires, s.lastDelivery, s.created, s.updated = parseTime(expires), parseTime(last), parseTime(c), parseTime(up)
		s.include, s.allow = include == 1, allow == 1
		s.secretKey, s.lastError = key.String, lastErr.String
		switch s.state {
		case StatePending:
			// The app stopped before the subscriber confirmed: that intent is gone.
			s.state = StateFailed
			s.lastError = "The app stopped before the subscriber confirmed; subscribe again."
			if s.secretKey != "" {
				h.orphanKeys = append(h.orphanKeys, s.secretKey)
			}
			s.secretKey = ""
			stale = append(stale, s.id)
		case StateActive:
			s.lane = &lane{ch: make(chan item, h.cfg.QueueSize), stop: make(chan struct{})}
		}
		sp := s
		h.subs[s.id] = &sp
		h.byCallback[s.callback] = &sp
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load webhook subscriptions: %w", err)
	}
	rows.Close()
	dl, err := h.cfg.DB.Read.QueryContext(ctx, `SELECT subscription_id, event_id, event, event_time, attempts, error, failed_at
		FROM hub_dead_letters ORDER BY id`)
	if err != nil {
		return fmt.Errorf("load webhook dead letters: %w", db.Explain(err))
	}
	defer dl.Close()
	for dl.Next() {
		var id string
		var d DeadLetter
		var et, ft sql.NullString
		if err := dl.Scan(&id, &d.EventID, &d.Event, &et, &d.Attempts, &d.Error, &ft); err != nil {
			return fmt.Errorf("load webhook dead letters: %w", err)
		}
		d.Timestamp, d.FailedAt = parseTime(et), parseTime(ft)
		if s := h.subs[id]; s != nil {
			s.deadLetters = append(s.deadLetters, d)
			if len(s.deadLetters) > keepDeadLetters {
				s.deadLetters = s.deadLetters[1:]
			}
		}
	}
	if err := dl.Err(); err != nil {
		return fmt.Errorf("load webhook dead letters: %w", err)
	}
	for _, id := range stale {
		if err := h.persist(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

var errSecretGone = errors.New("its secret is no longer in the system keyring; subscribe again")

// secretOf returns subscription id's secret, reading it from the keyring when it is not in memory
// yet. The returned error is fit for last_error (it never contains the secret).
func (h *Hub) secretOf(ctx context.Context, id string) ([]byte, error) {
	h.mu.Lock()
	s := h.subs[id]
	if s == nil {
		h.mu.Unlock()
		return nil, errors.New("the subscription is gone")
	}
	if s.secret != nil {
		sec := s.secret
		h.mu.Unlock()
		return sec, nil
	}
	key := s.secretKey
	h.mu.Unlock()
	if key == "" {
		return nil, errors.New("the subscription has no secret")
	}
	sec, err := h.cfg.Secrets.Get(ctx, key)
	if err != nil {
		if errors.Is(err, secrets.ErrNotFound) {
			return nil, errSecretGone
		}
		return nil, fmt.Errorf("its secret could not be read from the system keyring: %w", err)
	}
	h.mu.Lock()
	if s.secretKey == key {
		s.secret = sec
	}
	h.mu.Unlock()
	return sec, nil
}

// loadSecrets reads the secrets of active subscriptions not yet in memory, so that the
// uniqueness check of a new hub.secret sees them all. It returns the keyring's error when the
// keyring cannot be used (a secret that is simply missing is not an error).
func (h *Hub) loadSecrets(ctx context.Context) error {
	h.mu.Lock()
	var ids []string
	for _, s := range h.subs {
		if s.state == StateActive && s.secret == nil && s.secretKey != "" {
			ids = append(ids, s.id)
		}
	}
	h.mu.Unlock()
	for _, id := range ids {
		if _, err := h.secretOf(ctx, id); err != nil && !errors.Is(err, errSecretGone) {
			return errors.Unwrap(err)
		}
	}
	return nil
}
