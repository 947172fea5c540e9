package people_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastenhealth/fasten-desktop/internal/fhir"
	"github.com/fastenhealth/fasten-desktop/internal/people"
	"github.com/fastenhealth/fasten-desktop/internal/records"
	"github.com/fastenhealth/fasten-desktop/internal/shareddata"
)

// synthea returns n Synthea patient bundles.
func synthea(t *testing.T, n int) []string {
	t.Helper()
	all, _ := filepath.Glob(dataPath(t, shareddata.Synthea, "patient-*.json"))
	if len(all) < n {
		t.Fatalf("only %d Synthea bundles", len(all))
	}
	return all[:n]
}

// personOfSource returns the one person of a file source.
func (e *env) personOfSource(id int64) int64 {
	e.t.Helper()
	src, err := e.store.GetSource(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	if src.ProfileID == nil {
		return 0
	}
	return *src.ProfileID
}

func (e *env) total() int { return e.count(`SELECT count(*) FROM resources`) }

// providerSource makes a provider source holding the records of a Synthea bundle (as a sync
// would store them: all rows, including organizations, with the source's person) and settles it.
func (e *env) providerSource(bundlePath string, settle people.Settle) (int64, people.Settled) {
	e.t.Helper()
	f, err := os.Open(bundlePath)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	var rows []records.Row
	var patientRaw []byte
	var patientRef string
	urls := map[string]string{}
	var entries []*fhir.Entry
	err = fhir.Scan(e.ctx, f, "bundle", fhir.Options{}, func(en *fhir.Entry) error {
		c := *en
		c.Raw = append([]byte(nil), en.Raw...)
		c.Refs = append([]fhir.Ref(nil), en.Refs...)
		entries = append(entries, &c)
		urls[en.FullURL] = en.Type + "/" + en.ID
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, en := range entries {
		raw := fhir.RewriteRefs(en.Raw, en.Refs, func(r string) (string, bool) { v, ok := urls[r]; return v, ok })
		ix, err := fhir.IndexResource(raw)
		if err != nil {
			e.t.Fatal(err)
		}
		if en.Type == "Patient" {
			patientRaw, patientRef = raw, "Patient/"+en.ID
		}
		rows = append(rows, records.Row{Type: en.Type, ID: en.ID, Raw: string(raw), Index: ix})
	}
	var id int64
	err = e.store.WriteTx(e.ctx, func(tx *sql.Tx) error {
		var err error
		id, err = e.store.CreateSource(e.ctx, tx, records.NewSource{Kind: records.KindProvider, Name: "Demo Hospital", PatientID: strings.TrimPrefix(patientRef, "Patient/")})
		if err != nil {
			return err
		}
		w, err := e.store.NewWriter(e.ctx, tx, id, true)
		if err != nil {
			return err
		}
		defer w.Close()
		for _, r := range rows {
			if _, err := w.Put(e.ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	settle.SourceID, settle.PatientRef, settle.Patient = id, patientRef, patientRaw
	st, err := e.people.SettleConnect(e.ctx, settle)
	if err != nil {
		e.t.Fatal(err)
	}
	return id, st
}

// TestMergeUndoConfirm: a merge moves everything at once; undo restores exactly what was
// before, even after a re-import in between; confirm (or a later merge) makes it final.
func TestMergeUndoConfirm(t *testing.T) {
	e := newEnv(t)
	files := synthea(t, 3)
	resA := e.importFiles(files[0])
	resB := e.importFiles(files[1])
	provID, settled := e.providerSource(files[2], people.Settle{})
	e.importFiles(bulkFiles(t)...) // shared multi-person sources too
	pA, pB, pC := e.personOfSource(resA.SourceID), e.personOfSource(resB.SourceID), settled.ProfileID
	if pA == 0 || pB == 0 || pC == 0 || pA == pB || pC == pA {
		t.Fatalf("people %d %d %d", pA, pB, pC)
	}
	before := e.profileOf()
	people0 := len(e.list())
	countOf := func(id int64) int {
		return e.count(`SELECT count(*) FROM resources WHERE profile_id = ?`, id)
	}
	nA, nB, nC := countOf(pA), countOf(pB), countOf(pC)

	// Merge B into A.
	m, err := e.people.Merge(e.ctx, pA, pB)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != people.MergePending || m.Moved != nB || m.IntoID != pA || m.FromID == nil || *m.FromID != pB {
		t.Fatalf("merge %+v (B had %d records)", m, nB)
	}
	if countOf(pA) != nA+nB || countOf(pB) != 0 || len(e.list()) != people0-1 || e.personOfSource(resB.SourceID) != pA {
		t.Fatalf("after merge: A %d, B %d, people %d", countOf(pA), countOf(pB), len(e.list()))
	}
	if _, err := e.people.Get(e.ctx, pB); !errors.Is(err, people.ErrNotFound) {
		t.Fatalf("the merged person is still shown: %v", err)
	}
	pending, _ := e.people.PendingMerges(e.ctx)
	if len(pending) != 1 || pending[0].ID != m.ID {
		t.Fatalf("pending %+v", pending)
	}
	// Re-importing B's file meanwhile keeps it with A (the mapping moved)...
	e.importFiles(files[1])
	if countOf(pA) != nA+nB {
		t.Fatal("re-import moved records")
	}
	// ...and undo restores exactly the state before the merge.
	u, err := e.people.Undo(e.ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.State != people.MergeUndone || !mapsEqual(before, e.profileOf()) || len(e.list()) != people0 || e.personOfSource(resB.SourceID) != pB {
		t.Fatalf("undo did not restore: %+v", u)
	}
	if _, err := e.people.Undo(e.ctx, m.ID); err == nil {
		t.Fatal("undo twice")
	}

	// A provider source (all its records, organizations too) merges and comes back.
	m2, err := e.people.Merge(e.ctx, pA, pC)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Moved != nC || e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND profile_id IS NOT ?`, provID, pA) != 0 {
		t.Fatalf("provider merge %+v", m2)
	}
	// A later merge confirms the pending one: C can no longer come back.
	m3, err := e.people.Merge(e.ctx, pA, pB)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.people.Undo(e.ctx, m2.ID); err == nil {
		t.Fatal("an implicitly confirmed merge was undone")
	}
	if n := e.count(`SELECT count(*) FROM profiles WHERE id = ?`, pC); n != 0 {
		t.Fatal("the confirmed merge kept the merged person")
	}
	// Confirm by hand.
	if c, err := e.people.Confirm(e.ctx, m3.ID); err != nil || c.State != people.MergeConfirmed {
		t.Fatalf("confirm %+v %v", c, err)
	}
	if countOf(pA) != nA+nB+nC || len(e.list()) != people0-2 {
		t.Fatalf("after confirming: A %d, people %d", countOf(pA), len(e.list()))
	}
	if _, err := e.people.Merge(e.ctx, pA, pA); err == nil {
		t.Fatal("merged with themselves")
	}
}

// TestReassign: a source or one patient of a source moves to another person (or to nobody)
// in one transaction; records that name no patient stay unlinked.
func TestReassign(t *testing.T) {
	e := newEnv(t)
	files := synthea(t, 2)
	resA := e.importFiles(files[0])
	resB := e.importFiles(files[1])
	pA, pB := e.personOfSource(resA.SourceID), e.personOfSource(resB.SourceID)
	nB := e.count(`SELECT count(*) FROM resources WHERE profile_id = ?`, pB)
	unlinkedB := e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND profile_id IS NULL`, resB.SourceID)

	r, err := e.people.ReassignSource(e.ctx, resB.SourceID, ptr(pA))
	if err != nil {
		t.Fatal(err)
	}
	if r.Moved != nB || e.personOfSource(resB.SourceID) != pA ||
		e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND profile_id IS NOT ?`, resB.SourceID, pA) != unlinkedB {
		t.Fatalf("reassign source %+v", r)
	}
	// Re-importing the file keeps the user's choice.
	e.importFiles(files[1])
	if e.count(`SELECT count(*) FROM resources WHERE profile_id = ?`, pB) != 0 {
		t.Fatal("a re-import undid the re-assignment")
	}
	// To nobody, and back.
	if _, err := e.people.ReassignSource(e.ctx, resB.SourceID, nil); err != nil {
		t.Fatal(err)
	}
	if e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND profile_id IS NOT NULL`, resB.SourceID) != 0 {
		t.Fatal("records still linked")
	}
	if _, err := e.people.ReassignSource(e.ctx, resB.SourceID, ptr(pB)); err != nil {
		t.Fatal(err)
	}

	// One patient of a multi-person file.
	f := filepath.Join(dataPath(t, shareddata.BulkNDJSON), "Patient.000.ndjson")
	res := e.importFiles(f, filepath.Join(dataPath(t, shareddata.BulkNDJSON), "Encounter.000.ndjson"))
	patSrc, encSrc := res.Sources[0].SourceID, res.Sources[1].SourceID
	recs := readNDJSON(t, f)
	target := recs[0].patient
	ref := "Patient/" + target
	inEnc := e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND patient_ref = ?`, encSrc, ref)
	if inEnc == 0 {
		t.Fatal("the patient has no encounters")
	}
	r, err = e.people.ReassignPatient(e.ctx, encSrc, target, ptr(pA))
	if err != nil {
		t.Fatal(err)
	}
	if r.Moved != inEnc || e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND patient_ref = ? AND profile_id = ?`, encSrc, ref, pA) != inEnc {
		t.Fatalf("reassign patient %+v (want %d moved)", r, inEnc)
	}
	// Only that source's records of the patient moved; the source still holds several people.
	if e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND patient_ref = ? AND profile_id = ?`, patSrc, ref, pA) != 0 {
		t.Fatal("another source's records moved")
	}
	if e.personOfSource(encSrc) != 0 {
		t.Fatal("a multi-person source got one person")
	}
	if _, err := e.people.ReassignPatient(e.ctx, encSrc, "nobody", ptr(pA)); !errors.Is(err, people.ErrNotFound) {
		t.Fatalf("unknown patient: %v", err)
	}
	if _, err := e.people.ReassignSource(e.ctx, encSrc, ptr(999)); !errors.Is(err, people.ErrNotFound) {
		t.Fatalf("unknown person: %v", err)
	}
}

// TestDeletePerson: the plan says what goes; deleting removes exactly that in one transaction:
// the sources that held only the person's records go whole (a provider source is disconnected
// first), shared sources stay with everyone else's records.
func TestDeletePerson(t *testing.T) {
	var disconnected []int64
	e := newEnv(t)
	e.people = people.New(people.Options{Store: e.store, Disconnect: func(ctx context.Context, id int64) error {
		disconnected = append(disconnected, id)
		return nil
	}})
	files := synthea(t, 2)
	resA := e.importFiles(files[0])
	provID, settled := e.providerSource(files[1], people.Settle{})
	e.importFiles(bulkFiles(t)...)
	pA := e.personOfSource(resA.SourceID)

	t.Run("only their own sources", func(t *testing.T) {
		all := e.count(`SELECT count(*) FROM resources WHERE source_id = ?`, resA.SourceID)
		before := e.total()
		plan, err := e.people.PlanDelete(e.ctx, pA)
		if err != nil {
			t.Fatal(err)
		}
		if e.total() != before {
			t.Fatal("planning deleted something")
		}
		if plan.ResourceCount != all || len(plan.SourcesDeleted) != 1 || plan.SourcesDeleted[0].ID != resA.SourceID || len(plan.SourcesKept) != 0 {
			t.Fatalf("plan %+v, the source holds %d", plan, all)
		}
		done, err := e.people.Delete(e.ctx, pA)
		if err != nil {
			t.Fatal(err)
		}
		if !done.Deleted || done.ResourceCount != plan.ResourceCount || e.total() != before-all {
			t.Fatalf("deleted %+v: %d -> %d", done, before, e.total())
		}
		if _, err := e.store.GetSource(e.ctx, resA.SourceID); !errors.Is(err, records.ErrNotFound) {
			t.Fatal("the source is still there")
		}
		if len(disconnected) != 0 {
			t.Fatal("a file source was disconnected")
		}
	})
	t.Run("a provider source is disconnected", func(t *testing.T) {
		all := e.count(`SELECT count(*) FROM resources WHERE source_id = ?`, provID)
		done, err := e.people.Delete(e.ctx, settled.ProfileID)
		if err != nil {
			t.Fatal(err)
		}
		if done.ResourceCount != all || len(disconnected) != 1 || disconnected[0] != provID {
			t.Fatalf("deleted %+v, disconnected %v", done, disconnected)
		}
	})
	t.Run("shared sources stay", func(t *testing.T) {
		list := e.list()
		if len(list) != 13 {
			t.Fatalf("%d people", len(list))
		}
		x := list[3]
		mine := e.count(`SELECT count(*) FROM resources WHERE profile_id = ?`, x.ID)
		srcs := e.count(`SELECT count(*) FROM sources`)
		before := e.total()
		plan, err := e.people.PlanDelete(e.ctx, x.ID)
		if err != nil {
			t.Fatal(err)
		}
		if plan.ResourceCount != mine || len(plan.SourcesDeleted) != 0 || len(plan.SourcesKept) == 0 {
			t.Fatalf("plan %+v, the person has %d records", plan, mine)
		}
		sum := 0
		for _, n := range plan.Counts {
			sum += n
		}
		if sum != mine {
			t.Fatalf("counts add up to %d, not %d", sum, mine)
		}
		if _, err := e.people.Delete(e.ctx, x.ID); err != nil {
			t.Fatal(err)
		}
		if e.total() != before-mine || e.count(`SELECT count(*) FROM sources`) != srcs || len(e.list()) != 12 {
			t.Fatalf("after: %d records (want %d), %d sources", e.total(), before-mine, e.count(`SELECT count(*) FROM sources`))
		}
		if _, err := e.people.PlanDelete(e.ctx, x.ID); !errors.Is(err, people.ErrNotFound) {
			t.Fatal("the person is still there")
		}
	})
}

// TestCreateAndUpdate: a person created by hand (a child before any record) is matched by
// name and birth date when their records arrive.
func TestCreateAndUpdate(t *testing.T) {
	e := newEnv(t)
	name, birth := "Emma Doe", "2015-03-28"
	p, err := e.people.Create(e.ctx, people.Input{Name: &name, BirthDate: &birth})
	if err != nil {
		t.Fatal(err)
	}
	if p.Initials != "ED" || p.Color == "" {
		t.Fatalf("created %+v", p)
	}
	e.importFiles(writeJSON(t, "emma.json", bundle(patient("e1", "Doe", "Emma", birth, "female"), observation("o1", "e1"))))
	if got := e.profileOf(); got["Observation/o1"] != p.ID || len(e.list()) != 1 {
		t.Fatalf("Emma's records went elsewhere: %v", got)
	}
	for _, bad := range []people.Input{
		{Name: ptrS("")}, {BirthDate: ptrS("2015-13-01")}, {BirthDate: ptrS("2015-02-30")}, {Gender: ptrS("x")},
		{Color: ptrS("red")}, {Initials: ptrS("ABCD")},
	} {
		var ie *people.InvalidError
		if _, err := e.people.Update(e.ctx, p.ID, bad); !errors.As(err, &ie) {
			t.Errorf("%+v accepted: %v", bad, err)
		}
	}
	up, err := e.people.Update(e.ctx, p.ID, people.Input{Name: ptrS("  Emma   Rose Doe "), Color: ptrS("#112233"), Initials: ptrS("ER")})
	if err != nil || up.Name != "Emma Rose Doe" || up.Color != "#112233" || up.Initials != "ER" || up.ResourceCount != 2 {
		t.Fatalf("update %+v %v", up, err)
	}
}

func ptrS(s string) *string { return &s }

// TestSettleConnect: a connected provider source goes to the chosen person, else to the person
// its Patient matches, else to the provisional person, who becomes real and is named after the
// Patient.
func TestSettleConnect(t *testing.T) {
	files := synthea(t, 2)
	t.Run("matches a file's person", func(t *testing.T) {
		e := newEnv(t)
		res := e.importFiles(files[0])
		prov, err := e.people.Provisional(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, st := e.providerSource(files[0], people.Settle{Provisional: prov})
		if st.ProfileID != e.personOfSource(res.SourceID) || st.How != people.ByIdentifier || len(e.list()) != 1 {
			t.Fatalf("settled %+v", st)
		}
		if again, _ := e.people.Provisional(e.ctx); again != prov {
			t.Fatal("the provisional person was not kept for the next sign-in")
		}
	})
	t.Run("new person from the provisional one", func(t *testing.T) {
		e := newEnv(t)
		prov, _ := e.people.Provisional(e.ctx)
		if len(e.list()) != 0 {
			t.Fatal("the provisional person is listed")
		}
		_, st := e.providerSource(files[1], people.Settle{Provisional: prov})
		list := e.list()
		if st.ProfileID != prov || st.How != "new" || len(list) != 1 || list[0].Name == "New person" || list[0].BirthDate == nil {
			t.Fatalf("settled %+v, people %+v", st, list)
		}
		if next, _ := e.people.Provisional(e.ctx); next == prov {
			t.Fatal("a settled person is still provisional")
		}
	})
	t.Run("the chosen person wins", func(t *testing.T) {
		e := newEnv(t)
		res := e.importFiles(files[0])
		kid, _ := e.people.Create(e.ctx, people.Input{Name: ptrS("Someone Else")})
		id, st := e.providerSource(files[0], people.Settle{Chosen: &kid.ID})
		if st.ProfileID != kid.ID || st.How != "chosen" || e.personOfSource(id) != kid.ID || e.personOfSource(res.SourceID) == kid.ID {
			t.Fatalf("settled %+v", st)
		}
		if n := e.count(`SELECT count(*) FROM resources WHERE source_id = ? AND profile_id IS NOT ?`, id, kid.ID); n != 0 {
			t.Fatalf("%d records of the source are not the chosen person's", n)
		}
	})
}
