package records

import (
	"context"
	"testing"
)

func TestChoosablePersonAndAddSource(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO profiles(id, name, created_at, updated_at) VALUES (1, 'Ada', 'x', 'x')`,
		`INSERT INTO profiles(id, name, provisional, created_at, updated_at) VALUES (2, '', 1, 'x', 'x')`,
		`INSERT INTO profiles(id, name, merged_into, created_at, updated_at) VALUES (3, 'Ada L', 1, 'x', 'x')`,
	} {
		if _, err := s.db.Write.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[int64]bool{1: true, 2: false, 3: false, 4: false} {
		got, err := s.ChoosablePerson(ctx, id)
		if err != nil || got != want {
			t.Errorf("ChoosablePerson(%d) = %v, %v; want %v", id, got, err, want)
		}
	}
	one := int64(1)
	id, err := s.AddSource(ctx, NewSource{Kind: KindProvider, Name: "Demo Hospital", ProfileID: &one, PatientID: "p1",
		ProviderID: "demo", FHIRBase: "https://fhir.example.org/r4", TokenKey: "source-token-x"})
	if err != nil {
		t.Fatal(err)
	}
	src, err := s.GetSource(ctx, id)
	if err != nil || src.Status != StatusConnected || src.ProfileID == nil || *src.ProfileID != 1 || src.TokenKey != "source-token-x" {
		t.Fatalf("source %+v %v", src, err)
	}
	if _, err := s.AddSource(ctx, NewSource{Kind: "other", Name: "x"}); err == nil {
		t.Fatal("a source of an unknown kind was added")
	}
}
