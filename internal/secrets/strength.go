package secrets

import (
	"math"
)

// Weak says why a secret a person typed or configured is too easy to guess ("" when it is not),
// beyond its length: one character repeated, a few characters in turn, or a run such as
// "abcdef...". minBits is the least entropy the secret must show, estimated from its own
// character frequencies (a random base64url string of 43 characters shows about 200 bits; a
// random hex string of 32 about 110).
func Weak(s string, minBits float64) string {
	if s == "" {
		return "it is empty"
	}
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	if len(counts) < 6 {
		return "it uses fewer than 6 different characters"
	}
	var bits float64
	for _, c := range counts {
		p := float64(c) / float64(n)
		bits -= float64(c) * math.Log2(p)
	}
	if bits < minBits {
		return "its characters repeat too much to be random"
	}
	// A run: most steps between neighbouring characters are the same ("abcdef", "13579").
	rs := []rune(s)
	same := 0
	for i := 2; i < len(rs); i++ {
		if rs[i]-rs[i-1] == rs[i-1]-rs[i-2] {
			same++
		}
	}
	if len(rs) > 2 && same*2 >= len(rs)-2 {
		return "it is a sequence, not random"
	}
	return ""
}
