package envelope

import "testing"

func TestNamesFind(t *testing.T) {
	n := NewNames([]string{"eventName", "eventTime", "a", "", "eventName", "userIdentity"})
	for key, want := range map[string]int{"eventName": 0, "eventTime": 1, "a": 2, "": 3, "userIdentity": 5} {
		if got, ok := n.Find(key); !ok || got != want {
			t.Errorf("Find(%q) = %d, %v; want %d", key, got, ok, want)
		}
	}
	for _, key := range []string{"eventname", "b", "eventSource", "a very long key beyond every name"} {
		if got, ok := n.Find(key); ok {
			t.Errorf("Find(%q) = %d, want none", key, got)
		}
	}
}
