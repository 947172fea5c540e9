package people

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// Provisional returns the person reserved for sign-ins made without choosing someone: a hidden
// person whose id derives the Lighthouse user key of those sign-ins. There is at most one; it
// is created on first use and reused by every such sign-in until one of them settles on it, so
// a cancelled or failed sign-in does not use up another user at the Lighthouse.
func (s *Service) Provisional(ctx context.Context) (int64, error) {
	var id int64
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT id FROM profiles WHERE provisional = 1 ORDER BY id LIMIT 1`).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			id, err = s.insertTx(ctx, tx, "New person", "", "", true)
		}
		return err
	})
	return id, err
}

// Settle is what a connect knows once the provider answered.
type Settle struct {
	SourceID   int64
	PatientRef string // "Patient/<id>" from the token response
	Patient    []byte // the Patient resource read from the provider; nil if it could not be read
	// Chosen is the person picked in the connect dialog; nil: match the Patient.
	Chosen *int64
	// Provisional is the reserved person the sign-in's user key came from (0: none).
	Provisional int64
}

// Settled says whose the new source is.
type Settled struct {
	ProfileID int64  `json:"profile_id"`
	How       string `json:"how"` // chosen | identifier | name_birth_date | new
	Name      string `json:"name"`
}

// patient parses the Patient read from the provider, if any.
func (s *Settle) patient() (Patient, bool) {
	if len(s.Patient) == 0 {
		return Patient{Ref: s.PatientRef}, false
	}
	id := strings.TrimPrefix(s.PatientRef, "Patient/")
	p, err := ParsePatient(id, s.Patient)
	if err != nil {
		return Patient{Ref: s.PatientRef}, false
	}
	return p, true
}

// SettleConnect decides the person of a newly connected provider source (the person chosen,
// else the person its Patient matches, else a new one: the provisional person, named after the
// Patient) and records it: the source's person, its patient mapping and what matching needs of
// the Patient. Every record the source already has moves to that person.
func (s *Service) SettleConnect(ctx context.Context, in Settle) (Settled, error) {
	if in.PatientRef == "" {
		return Settled{}, errors.New("settle a connect: no patient")
	}
	pt, known := in.patient()
	var out Settled
	err := s.db.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		switch {
		case in.Chosen != nil:
			if err := liveTx(ctx, tx, *in.Chosen); err != nil {
				return err
			}
			out.ProfileID, out.How = *in.Chosen, "chosen"
		case known:
			m, err := loadMatcher(ctx, tx)
			if err != nil {
				return err
			}
			out.ProfileID, out.How = m.match(pt, nil)
		}
		if out.ProfileID == 0 {
			out.How = "new"
			name := pt.Name
			if name == "" {
				name = "New person"
			}
			res, err := tx.ExecContext(ctx, `UPDATE profiles SET provisional = 0, name = ?, birth_date = ?, gender = ?, updated_at = ?
				WHERE id = ? AND provisional = 1`, name, nullStr(pt.BirthDate), nullStr(pt.Gender), now, in.Provisional)
			if err != nil {
				return db.Explain(err)
			}
			if n, _ := res.RowsAffected(); n == 1 {
				out.ProfileID = in.Provisional
			} else if out.ProfileID, err = s.insertTx(ctx, tx, name, pt.BirthDate, pt.Gender, false); err != nil {
				return err
			}
		}
		prof := out.ProfileID
		res, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = ?, updated_at = ? WHERE id = ?`, prof, now, in.SourceID)
		if err != nil {
			return db.Explain(err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("source %d: %w", in.SourceID, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO source_patients(source_id, patient_ref, profile_id, updated_at) VALUES (?,?,?,?)
			ON CONFLICT(source_id, patient_ref) DO UPDATE SET profile_id = excluded.profile_id, updated_at = excluded.updated_at`,
			in.SourceID, in.PatientRef, prof, now); err != nil {
			return db.Explain(err)
		}
		if known {
			if err := savePatientTx(ctx, tx, in.SourceID, pt, now); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND profile_id IS NOT ?`, prof, in.SourceID, prof); err != nil {
			return db.Explain(err)
		}
		return tx.QueryRowContext(ctx, `SELECT name FROM profiles WHERE id = ?`, prof).Scan(&out.Name)
	})
	if err != nil {
		return Settled{}, err
	}
	s.log.Info("connected source assigned to a person", "source_id", in.SourceID, "profile_id", out.ProfileID, "how", out.How)
	s.publish("profiles.changed", map[string]any{"profile_id": out.ProfileID, "source_id": in.SourceID, "change": "connected"})
	return out, nil
}
