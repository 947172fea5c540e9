package people

import (
	"context"
	"database/sql"

	"github.com/fastenhealth/fasten-desktop/internal/records"
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
func (s *Service) loadMatcher(ctx context.Context, tx *sql.Tx) (*matcher, error) {
	md, err := s.store.LoadMatchData(ctx, tx)
	if err != nil {
		return nil, err
	}
	m := newMatcher()
	for _, k := range md.People {
		m.addName(k.ProfileID, nameKeyOf(k.Name), k.BirthDate, k.Gender)
	}
	for _, k := range md.Patients {
		m.addName(k.ProfileID, k.NameKey, k.BirthDate, k.Gender)
	}
	for _, k := range md.Identifiers {
		if m.byIdent[k.Identifier] == nil {
			m.byIdent[k.Identifier] = map[int64]int{}
		}
		m.byIdent[k.Identifier][k.ProfileID]++
	}
	return m, nil
}

// PlanImport decides the person of every Patient of an import (matching them, creating people
// as needed) inside the import's transaction tx, before its records are written.
func (s *Service) PlanImport(ctx context.Context, tx *sql.Tx, files []ImportFile) (*ImportPlan, error) {
	p := &ImportPlan{s: s, imported: map[string]*int64{}, known: map[string]*int64{}}
	var m *matcher
	for _, f := range files {
		if len(f.Patients) > 0 && f.SourceID != 0 {
			var err error
			if m, err = s.loadMatcher(ctx, tx); err != nil {
				return nil, err
			}
			break
		}
	}
	// Patients mapped in any source: records of a file without its Patient map through them.
	known, err := s.store.PatientMappings(ctx, tx, 0)
	if err != nil {
		return nil, err
	}
	for _, k := range known {
		if old, ok := p.known[k.Ref]; !ok {
			p.known[k.Ref] = k.ProfileID
		} else if old != nil && *old != *k.ProfileID {
			p.known[k.Ref] = nil // two people: ambiguous
		}
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
			mapped, err := s.store.PatientMappings(ctx, tx, f.SourceID)
			if err != nil {
				return nil, err
			}
			for _, k := range mapped {
				pf.mapped[k.Ref] = k.ProfileID
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
	store := p.s.store
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
		ms := make([]records.PatientMapping, 0, len(refs))
		for ref := range refs {
			ms = append(ms, records.PatientMapping{Ref: ref, ProfileID: p.ProfileFor(i, ref)})
		}
		// A re-used source's records move where their stored person differs from the mapping;
		// a fresh source's were written with it.
		if err := store.MapPatients(ctx, tx, f.sourceID, ms, !f.fresh, now); err != nil {
			return err
		}
		for _, pt := range f.patients {
			if err := store.SavePatient(ctx, tx, f.sourceID, *pt, now); err != nil {
				return err
			}
		}
		touched[f.sourceID] = true
	}
	// Adopt: records of other sources that named one of this import's Patients while nobody
	// knew who that was.
	for ref, prof := range p.imported {
		orphans, err := store.UnmappedSources(ctx, tx, ref)
		if err != nil {
			return err
		}
		for _, src := range orphans {
			if _, err := store.SetPatientProfile(ctx, tx, src, ref, prof, now); err != nil {
				return err
			}
			touched[src] = true
		}
	}
	for src := range touched {
		if err := store.SyncSourceProfile(ctx, tx, src, now); err != nil {
			return err
		}
	}
	return nil
}
