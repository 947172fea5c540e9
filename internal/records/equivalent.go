package records

import "strings"

// Some measurements come under more than one code: blood pressure is the LOINC panel 85354-9
// (US Core, the IPS, what "Entered by me" records) from most providers but 55284-4 from others
// (Synthea). The dashboard's latest results show them as one row, and a history by either code
// (the chart) has both.
var equivalentCodes = [][]string{
	{"http://loinc.org|85354-9", "http://loinc.org|55284-4"},
}

// canonical maps every code of a group to the group's first code.
var canonical = func() map[string]string {
	m := map[string]string{}
	for _, g := range equivalentCodes {
		for _, c := range g {
			m[c] = g[0]
		}
	}
	return m
}()

// canonicalCode maps a system|code to the first code of its group, or returns it as it is.
func canonicalCode(c string) string {
	if g, ok := canonical[c]; ok {
		return g
	}
	return c
}

// equivalents is the code (system|code, or a bare code) with the codes that mean the same
// measurement, in the same form.
func equivalents(c string) []string {
	bare := !strings.Contains(c, "|")
	for _, g := range equivalentCodes {
		for _, e := range g {
			if c == e || (bare && strings.HasSuffix(e, "|"+c)) {
				if !bare {
					return g
				}
				out := make([]string, len(g))
				for i, x := range g {
					_, out[i], _ = strings.Cut(x, "|")
				}
				return out
			}
		}
	}
	return []string{c}
}

// mergeEquivalent keeps, of items whose codes are equivalent (codes[i] for items[i]), only the
// newest of each person; the order of the others is kept.
func mergeEquivalent(items []Item, codes []string) []Item {
	type key struct {
		profile int64
		code    string
	}
	best := map[key]int{}
	drop := make([]bool, len(items))
	for i, it := range items {
		canon, grouped := canonical[codes[i]]
		if !grouped {
			continue
		}
		var p int64
		if it.ProfileID != nil {
			p = *it.ProfileID
		}
		k := key{p, canon}
		j, ok := best[k]
		if !ok {
			best[k] = i
			continue
		}
		if it.sortKey > items[j].sortKey || (it.sortKey == items[j].sortKey && it.rowID > items[j].rowID) {
			drop[j] = true
			best[k] = i
		} else {
			drop[i] = true
		}
	}
	out := items[:0:0]
	for i, it := range items {
		if !drop[i] {
			out = append(out, it)
		}
	}
	return out
}
