package main

import (
	"reflect"
	"testing"
)

// Only the streams subcommand gets --no-api: another command given a
// directory named streams (caracal lint streams, caracal rules test
// streams) used to get it too, and refused the flag.
func TestStreamsWithoutAPIOnlyForStreams(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{[]string{"caracal", "lint", "streams"}, []string{"caracal", "lint", "streams"}},
		{[]string{"caracal", "rules", "test", "streams"}, []string{"caracal", "rules", "test", "streams"}},
		{[]string{"caracal", "echo", "-c", "x.yaml", "streams"}, []string{"caracal", "echo", "-c", "x.yaml", "streams"}},
		{[]string{"caracal", "-c", "streams", "echo"}, []string{"caracal", "-c", "streams", "echo"}},
		{[]string{"caracal", "-r", "res.yaml", "streams", "a.yaml"}, []string{"caracal", "-r", "res.yaml", "streams", "--no-api", "a.yaml"}},
		{[]string{"caracal", "--log.level=debug", "streams", "a.yaml"}, []string{"caracal", "--log.level=debug", "streams", "--no-api", "a.yaml"}},
		{[]string{"caracal", "-w", "streams", "a.yaml"}, []string{"caracal", "-w", "streams", "--no-api", "a.yaml"}},
	} {
		if got := streamsWithoutAPI(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("streamsWithoutAPI(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
