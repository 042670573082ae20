package suggest

import "testing"

func TestNearest(t *testing.T) {
	fields := []string{"address", "compression", "consumer_group", "http", "id", "input", "max_body_bytes", "max_buffered_bytes", "required", "rules_dir", "timeFormat", "timeFormats"}
	for _, c := range []struct{ name, want string }{
		{"compresion", "compression"},       // a letter left out
		{"rules_dirr", "rules_dir"},         // one too many
		{"adress", "address"},               //
		{"htp", "http"},                     // short: one letter away
		{"requried", "required"},            // two letters swapped count once
		{"consumergroup", "consumer_group"}, //
		{"TimeFormat", "timeFormat"},        // case is not a mistake
		{"timeformats", "timeFormats"},      //
		{"max_body", "max_body_bytes"},      // too far by letters, but the start of one
		{"max_b", "max_body_bytes"},         // the shortest that starts with it
		{"ip", "id"},                        //
		{"output", ""},                      // nothing near: no suggestion
		{"max", ""},                         // too short to read as a start
		{"zzzzzzzzzz", ""},                  //
		{"", ""},
	} {
		if got := Nearest(c.name, fields); got != c.want {
			t.Errorf("Nearest(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if got := Nearest("inputt", nil); got != "" {
		t.Errorf("no candidates: %q", got)
	}
	// A tie goes to the first in order, whatever order the candidates come in.
	for _, cands := range [][]string{{"cat", "bat"}, {"bat", "cat"}} {
		if got := Nearest("at", cands); got != "bat" {
			t.Errorf("Nearest(at, %v) = %q, want bat", cands, got)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"abc", "abc", 0},
		{"kitten", "sitting", 3}, {"flaw", "lawn", 2},
		{"recieve", "receive", 1}, // a swap of neighbours
		{"ca", "abc", 3},          // optimal string alignment: no edits of a swapped pair
		{"abc", "acb", 1}, {"abcd", "badc", 2},
	} {
		if got := editDistance(c.a, c.b); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := editDistance(c.b, c.a); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (symmetric)", c.b, c.a, got, c.want)
		}
	}
}

func TestDidYouMean(t *testing.T) {
	if got := DidYouMean("Serverity", []string{"RuleID", "Severity"}); got != " (did you mean Severity?)" {
		t.Errorf("DidYouMean = %q", got)
	}
	if got := DidYouMean("Frobnicate", []string{"RuleID", "Severity"}); got != "" {
		t.Errorf("DidYouMean without a near name = %q", got)
	}
}

func TestHint(t *testing.T) {
	keys := []string{"Key", "Condition", "Value"}
	if got := Hint("Condtion", keys); got != " (did you mean Condition?)" {
		t.Errorf("Hint near = %q", got)
	}
	if got := Hint("Frobnicate", keys); got != " (one of: Key, Condition, Value)" {
		t.Errorf("Hint far = %q", got)
	}
}

// The name typed is no suggestion for itself: a top-level `name:` in an
// unrelated YAML file was told "did you mean name?".
func TestNearestIsNotTheNameItself(t *testing.T) {
	if got := Nearest("name", []string{"name", "label"}); got != "" {
		t.Errorf("Nearest(name) = %q", got)
	}
	if got := Nearest("Severity", []string{"severity"}); got != "severity" {
		t.Errorf("a case typo: %q, want severity", got)
	}
}
