package fhir

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestIssue14_16_NumberOutOfRange: a number no float64 can hold is refused with its position;
// large but representable numbers and tiny ones pass.
func TestIssue14_16_NumberOutOfRange(t *testing.T) {
	cases := []struct {
		value string
		ok    bool
	}{
		{"1e999999", false},
		{"-1e309", false},
		{"1.8e308", false},
		{"1.7e308", true},
		{"1e-999999", true},
		{"72.5", true},
		{"0", true},
		{strings.Repeat("9", 300), false},
	}
	for _, c := range cases {
		in := `{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"},"valueQuantity":{"value":` + c.value + `}}`
		err := Scan(context.Background(), strings.NewReader(in), "obs.json", Options{}, func(e *Entry) error { return nil })
		if c.ok {
			if err != nil {
				t.Errorf("%.20s: %v", c.value, err)
			}
			continue
		}
		var fe *Error
		if !errors.As(err, &fe) || fe.Code != CodeNumberRange {
			t.Errorf("%.20s: got %v, want %s", c.value, err, CodeNumberRange)
			continue
		}
		if fe.Pos.Line != 1 || fe.Pos.Column != strings.Index(in, c.value[:2])+1 {
			t.Errorf("%.20s: position %s", c.value, fe.Pos)
		}
	}
}
