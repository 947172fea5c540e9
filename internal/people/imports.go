package people

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/fastenhealth/fasten-desktop/internal/db"
)

// ImportFile is what an import learned about one of its files in its first pass.
type ImportFile struct {
	SourceID int64     // the source the file is written into; 0: nothing of it is written
	Fresh    bool      // the source was created by this import (it has no mappings yet)
	Patients []Patient // the Patient resources in the file, in file order
}

// ImportPlan says whose each record of an import is. It is built inside the import's write
// transaction before any record is written, so records are inserted with their person; its
// ProfileFor may be called from any goroutine (it only reads).
type ImportPlan struct {
	s        *Service
	files    []planFile
	imported map[string]*int64 // Patient ref -> person, for the Patients of this import
	known    map[string]*int64 // Patient ref -> person, mapped in other sources (nil: ambiguous)
	decided  []Decision
}

type planFile struct {
	sourceID int64
	fresh    bool
	patients map[string]*Patient
	mapped   map[string]*int64 // this source's own mappings (re-import), then its Patients' people
}

// Decision records how a Patient of the import was matched (for logs and tests).
type Decision struct {
	File      int    `json:"file"`
	Patient   string `json:"patient"`
	ProfileID int64  `json:"profile_id"`
	How       string `json:"how"` // source (already mapped here) | import | identifier | name_birth_date | new
}

// Decisions lists what the plan decided for each Patient of the import.
func (p *ImportPlan) Decisions() []Decision { return p.decided }

// ProfileFor returns the person of a record of file (an index into the ImportFiles) that names
// patientRef ("Patient/<id>"), or nil: not linked to a person.
func (p *ImportPlan) ProfileFor(file int, patientRef string) *int64 {
	if patientRef == "" {
		return nil
	}
	if v, ok := p.files[file].mapped[patientRef]; ok {
		return v
	}
	if v, ok := p.imported[patientRef]; ok {
		return v
	}
	return p.known[patientRef]
}

// loadMatcher reads every person's known Patients (and the people's own name and birth date).
func loadMatcher(ctx context.Context, tx *sql.Tx) (*matcher, error) {
	m := newMatcher()
	rows, err := tx.QueryContext(ctx, `SELECT p.id, p.name, coalesce(p.birth_date,''), coalesce(p.gender,'') FROM profiles p WHERE `+visible)
	if err != nil {
		return nil, fmt.Errorf("read people: %w", db.Explain(err))
	}
	for rows.Next() {
		var id int64
		var name, birth, gender string
		if err := rows.Scan(&id, &name, &birth, &gender); err != nil {
			rows.Close()
			return nil, err
		}
		m.addName(id, nameKeyOf(name), birth, gender)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT sp.profile_id, coalesce(sp.name_key,''), coalesce(sp.birth_date,''), coalesce(sp.gender,'')
		FROM source_patients sp JOIN profiles p ON p.id = sp.profile_id WHERE sp.has_patient = 1 AND `+visible)
	if err != nil {
		return nil, fmt.Errorf("read known patients: %w", db.Explain(err))
	}
	for rows.Next() {
		var id int64
		var key, birth, gender string
		if err := rows.Scan(&id, &key, &birth, &gender); err != nil {
			rows.Close()
			return nil, err
		}
		m.addName(id, key, birth, gender)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows, err = tx.QueryContext(ctx, `SELECT sp.profile_id, i.system, i.value FROM patient_identifiers i
		JOIN source_patients sp ON sp.source_id = i.source_id AND sp.patient_ref = i.patient_ref
		JOIN profiles p ON p.id = sp.profile_id WHERE `+visible)
	if err != nil {
		return nil, fmt.Errorf("read known identifiers: %w", db.Explain(err))
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ident Identifier
		if err := rows.Scan(&id, &ident.System, &ident.Value); err != nil {
			return nil, err
		}
		if m.byIdent[ident] == nil {
			m.byIdent[ident] = map[int64]int{}
		}
		m.byIdent[ident][id]++
	}
	return m, rows.Err()
}

// PlanImport decides the person of every Patient of an import (matching them, creating people
// as needed) inside the import's transaction tx, before its records are written.
func (s *Service) PlanImport(ctx context.Context, tx *sql.Tx, files []ImportFile) (*ImportPlan, error) {
	p := &ImportPlan{s: s, imported: map[string]*int64{}, known: map[string]*int64{}}
	var m *matcher
	for _, f := range files {
		if len(f.Patients) > 0 && f.SourceID != 0 {
			var err error
			if m, err = loadMatcher(ctx, tx); err != nil {
				return nil, err
			}
			break
		}
	}
	// Patients mapped in any source: records of a file without its Patient map through them.
	rows, err := tx.QueryContext(ctx, `SELECT sp.patient_ref, sp.profile_id FROM source_patients sp JOIN profiles p ON p.id = sp.profile_id
		WHERE `+visible)
	if err != nil {
		return nil, fmt.Errorf("read known patients: %w", db.Explain(err))
	}
	for rows.Next() {
		var ref string
		var id int64
		if err := rows.Scan(&ref, &id); err != nil {
			rows.Close()
			return nil, err
		}
		if old, ok := p.known[ref]; !ok {
			p.known[ref] = &id
		} else if old != nil && *old != id {
			p.known[ref] = nil // two people: ambiguous
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	p.files = make([]planFile, len(files))
	for i, f := range files {
		pf := &p.files[i]
		pf.sourceID, pf.fresh = f.SourceID, f.Fresh
		pf.mapped = map[string]*int64{}
		pf.patients = map[string]*Patient{}
		if f.SourceID == 0 {
			continue
		}
		if !f.Fresh {
			if err := loadMapped(ctx, tx, f.SourceID, pf.mapped); err != nil {
				return nil, err
			}
		}
		shared := sharedIdentifiers(f.Patients)
		for j := range f.Patients {
			pt := f.Patients[j]
			pt.Identifiers = without(pt.Identifiers, shared)
			pf.patients[pt.Ref] = &pt
			d := Decision{File: i, Patient: pt.Ref}
			var id int64
			switch v, ok := pf.mapped[pt.Ref]; {
			case ok && v != nil:
				id, d.How = *v, "source"
			case p.imported[pt.Ref] != nil:
				id, d.How = *p.imported[pt.Ref], "import"
			default:
				id, d.How = m.match(pt, nil)
				if id == 0 {
					if id, err = s.insertTx(ctx, tx, pt.Name, pt.BirthDate, pt.Gender, false); err != nil {
						return nil, err
					}
					d.How = "new"
				}
			}
			m.add(id, pt)
			v := id
			pf.mapped[pt.Ref] = &v
			if _, ok := p.imported[pt.Ref]; !ok {
				p.imported[pt.Ref] = &v
			}
			d.ProfileID = id
			p.decided = append(p.decided, d)
		}
	}
	return p, nil
}

func loadMapped(ctx context.Context, tx *sql.Tx, sourceID int64, into map[string]*int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT sp.patient_ref, sp.profile_id FROM source_patients sp JOIN profiles p ON p.id = sp.profile_id
		WHERE sp.source_id = ? AND `+visible, sourceID)
	if err != nil {
		return fmt.Errorf("read the source's patients: %w", db.Explain(err))
	}
	defer rows.Close()
	for rows.Next() {
		var ref string
		var id int64
		if err := rows.Scan(&ref, &id); err != nil {
			return err
		}
		into[ref] = &id
	}
	return rows.Err()
}

func without(ids []Identifier, drop map[Identifier]bool) []Identifier {
	if len(drop) == 0 {
		return ids
	}
	var out []Identifier
	for _, id := range ids {
		if !drop[id] {
			out = append(out, id)
		}
	}
	return out
}

// Finish records, inside the import's transaction and after its records were written, the
// mapping of every patient the import's files name (seen[i]: the Patient references the
// records of file i named), each source's person, and adopts records of earlier imports that
// named a patient nobody knew until now. It re-writes no record of this import: records of
// re-used sources are only touched where their stored person differs from the mapping.
func (p *ImportPlan) Finish(ctx context.Context, tx *sql.Tx, seen []map[string]struct{}) error {
	now := p.s.stamp()
	upsert, err := tx.PrepareContext(ctx, `INSERT INTO source_patients(source_id, patient_ref, profile_id, updated_at) VALUES (?,?,?,?)
		ON CONFLICT(source_id, patient_ref) DO UPDATE SET profile_id = excluded.profile_id, updated_at = excluded.updated_at`)
	if err != nil {
		return db.Explain(err)
	}
	defer upsert.Close()
	fix, err := tx.PrepareContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS NOT ?`)
	if err != nil {
		return db.Explain(err)
	}
	defer fix.Close()
	touched := map[int64]bool{}
	for i := range p.files {
		f := &p.files[i]
		if f.sourceID == 0 {
			continue
		}
		refs := map[string]struct{}{}
		if i < len(seen) {
			for r := range seen[i] {
				refs[r] = struct{}{}
			}
		}
		for r := range f.patients {
			refs[r] = struct{}{}
		}
		for ref := range refs {
			prof := p.ProfileFor(i, ref)
			if _, err := upsert.ExecContext(ctx, f.sourceID, ref, prof, now); err != nil {
				return fmt.Errorf("record the source's patients: %w", db.Explain(err))
			}
			if !f.fresh {
				if _, err := fix.ExecContext(ctx, prof, f.sourceID, ref, prof); err != nil {
					return db.Explain(err)
				}
			}
		}
		for _, pt := range f.patients {
			if err := savePatientTx(ctx, tx, f.sourceID, *pt, now); err != nil {
				return err
			}
		}
		touched[f.sourceID] = true
	}
	// Adopt: records of other sources that named one of this import's Patients while nobody
	// knew who that was.
	for ref, prof := range p.imported {
		rows, err := tx.QueryContext(ctx, `SELECT source_id FROM source_patients WHERE patient_ref = ? AND profile_id IS NULL`, ref)
		if err != nil {
			return db.Explain(err)
		}
		var orphans []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			orphans = append(orphans, id)
		}
		rows.Close()
		for _, src := range orphans {
			if err := setPatientTx(ctx, tx, src, ref, prof, now); err != nil {
				return err
			}
			touched[src] = true
		}
	}
	for src := range touched {
		if err := syncSourceProfileTx(ctx, tx, src, now); err != nil {
			return err
		}
	}
	return nil
}

// savePatientTx stores what matching needs of a Patient the source holds.
func savePatientTx(ctx context.Context, tx *sql.Tx, sourceID int64, pt Patient, now string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET has_patient = 1, name = ?, name_key = ?, birth_date = ?, gender = ?, updated_at = ?
		WHERE source_id = ? AND patient_ref = ?`, nullStr(pt.Name), nullStr(pt.NameKey), nullStr(pt.BirthDate), nullStr(pt.Gender), now, sourceID, pt.Ref); err != nil {
		return fmt.Errorf("record a patient: %w", db.Explain(err))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM patient_identifiers WHERE source_id = ? AND patient_ref = ?`, sourceID, pt.Ref); err != nil {
		return db.Explain(err)
	}
	for _, id := range pt.Identifiers {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO patient_identifiers(source_id, patient_ref, system, value) VALUES (?,?,?,?)`,
			sourceID, pt.Ref, id.System, id.Value); err != nil {
			return fmt.Errorf("record a patient's identifiers: %w", db.Explain(err))
		}
	}
	return nil
}

// setPatientTx maps (source, patient) to a person and moves that patient's records.
func setPatientTx(ctx context.Context, tx *sql.Tx, sourceID int64, ref string, prof *int64, now string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE source_patients SET profile_id = ?, updated_at = ? WHERE source_id = ? AND patient_ref = ?`, prof, now, sourceID, ref); err != nil {
		return db.Explain(err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE resources SET profile_id = ? WHERE source_id = ? AND patient_ref = ? AND profile_id IS NOT ?`, prof, sourceID, ref, prof); err != nil {
		return fmt.Errorf("move records: %w", db.Explain(err))
	}
	return nil
}

// syncSourceProfileTx sets a file source's person: the one person all its mapped patients
// belong to, else none (the source holds several people, or nobody known). A source with no
// patient at all keeps what it has; a provider source's person is its own (decided at connect
// or by re-assignment) and is left alone.
func syncSourceProfileTx(ctx context.Context, tx *sql.Tx, sourceID int64, now string) error {
	_, err := tx.ExecContext(ctx, `UPDATE sources SET profile_id = (
			SELECT CASE WHEN count(DISTINCT profile_id) = 1 THEN min(profile_id) END
			FROM source_patients WHERE source_id = ?1 AND profile_id IS NOT NULL),
		updated_at = ?2
		WHERE id = ?1 AND kind = 'manual' AND EXISTS (SELECT 1 FROM source_patients WHERE source_id = ?1)`, sourceID, now)
	if err != nil {
		return fmt.Errorf("set the source's person: %w", db.Explain(err))
	}
	return nil
}
