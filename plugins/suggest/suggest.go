// Package suggest finds the name a misspelt one was meant to be, for
// errors that say how to fix a config: "field compresion not recognised
// (did you mean compression?)".
package suggest

import "strings"

// Nearest is the candidate closest to a misspelt name: at most a third of
// its letters away (one for short names), the first in order on a tie;
// else the shortest that begins with it (max_body for max_body_bytes); ""
// if none.
func Nearest(name string, candidates []string) string {
	best, bestDist := "", max(1, len(name)/3)+1
	typed := name
	name = strings.ToLower(name)
	for _, c := range candidates {
		if c == typed {
			continue // the name itself is no suggestion ("did you mean name?")
		}
		if d := editDistance(name, strings.ToLower(c)); d < bestDist || d == bestDist && c < best {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	for _, c := range candidates {
		if c != typed && len(name) >= 4 && strings.HasPrefix(strings.ToLower(c), name) && (best == "" || len(c) < len(best) || len(c) == len(best) && c < best) {
			best = c
		}
	}
	return best
}

// editDistance counts the letters inserted, deleted, replaced or swapped
// with their neighbour to turn a into b (optimal string alignment).
func editDistance(a, b string) int {
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}

// DidYouMean is " (did you mean X?)" for the candidate Nearest finds, to
// end an error with; "" when none is near.
func DidYouMean(name string, candidates []string) string {
	if near := Nearest(name, candidates); near != "" {
		return " (did you mean " + near + "?)"
	}
	return ""
}

// Hint is DidYouMean, or else " (one of: a, b, c)": for a short list of
// names that can all be shown.
func Hint(name string, candidates []string) string {
	if h := DidYouMean(name, candidates); h != "" {
		return h
	}
	return " (one of: " + strings.Join(candidates, ", ") + ")"
}
