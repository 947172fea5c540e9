package people

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/fastenhealth/fasten-desktop/internal/records"
)

// Provisional returns the person reserved for sign-ins made without choosing someone: a hidden
// person whose id derives the Lighthouse user key of those sign-ins. There is at most one; it
// is created on first use and reused by every such sign-in until one of them settles on it, so
// a cancelled or failed sign-in does not use up another user at the Lighthouse.
func (s *Service) Provisional(ctx context.Context) (int64, error) {
	var id int64
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		var found bool
		var err error
		if id, found, err = s.store.ProvisionalProfile(ctx, tx); err == nil && !found {
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
	err := s.store.WriteTx(ctx, func(tx *sql.Tx) error {
		now := s.stamp()
		switch {
		case in.Chosen != nil:
			if err := s.store.CheckProfile(ctx, tx, *in.Chosen); err != nil {
				return err
			}
			out.ProfileID, out.How = *in.Chosen, "chosen"
		case known:
			m, err := s.loadMatcher(ctx, tx)
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
			claimed, err := s.store.ClaimProvisional(ctx, tx, in.Provisional, name, pt.BirthDate, pt.Gender, now)
			if err != nil {
				return err
			}
			if claimed {
				out.ProfileID = in.Provisional
			} else if out.ProfileID, err = s.insertTx(ctx, tx, name, pt.BirthDate, pt.Gender, false); err != nil {
				return err
			}
		}
		prof := out.ProfileID
		if err := s.store.SetSourceProfile(ctx, tx, in.SourceID, prof, now); err != nil {
			return err
		}
		if err := s.store.MapPatients(ctx, tx, in.SourceID, []records.PatientMapping{{Ref: in.PatientRef, ProfileID: &prof}}, false, now); err != nil {
			return err
		}
		if known {
			if err := s.store.SavePatient(ctx, tx, in.SourceID, pt, now); err != nil {
				return err
			}
		}
		if _, err := s.store.AssignSourceRecords(ctx, tx, in.SourceID, prof); err != nil {
			return err
		}
		var err error
		out.Name, err = s.store.ProfileName(ctx, tx, prof)
		return err
	})
	if err != nil {
		return Settled{}, err
	}
	s.log.Info("connected source assigned to a person", "source_id", in.SourceID, "profile_id", out.ProfileID, "how", out.How)
	s.publish("profiles.changed", map[string]any{"profile_id": out.ProfileID, "source_id": in.SourceID, "change": "connected"})
	return out, nil
}
