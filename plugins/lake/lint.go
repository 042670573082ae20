package lake

import (
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// DefaultRollBytes is roll_bytes when a config leaves it out.
const DefaultRollBytes = 128 << 20

// Finding is a problem LintInFlight found at a line of a pipeline.
type Finding struct {
	Line    int
	Message string
	Warning bool // a risk, not a mistake
}

// LintInFlight checks a pipeline whose output is caracal_lake against its
// caracal_kafka input's bounds. The lake acknowledges rows only once their
// roll is stored, so the input must let a roll fill (or each waits for
// roll_period), and should bound the bytes in flight (or a backlog fills
// the memory with rows waiting for their rolls).
func LintInFlight(root *yaml.Node) []Finding {
	var lake, in *yaml.Node
	line := 0
	yamlnode.Walk(root, func(k, v *yaml.Node) {
		switch k.Value {
		case "caracal_lake":
			lake = v
		case "input":
			yamlnode.Walk(v, func(k, v *yaml.Node) {
				if k.Value == "caracal_kafka" && in == nil {
					in, line = v, k.Line
				}
			})
		}
	})
	if lake == nil || in == nil {
		return nil
	}
	if t := yamlnode.Value(in, "transactional"); t != nil && t.Value == "true" {
		return nil // one poll at a time
	}
	roll, ok := intAt(lake, "roll_bytes", DefaultRollBytes)
	max, ok2 := intAt(in, "max_in_flight_bytes", 0)
	if !ok || !ok2 {
		return nil // ${VAR}s: known only at run time
	}
	if k, _ := yamlnode.Entry(in, "max_in_flight_bytes"); k != nil {
		line = k.Line
	}
	want := 2 * roll
	switch {
	case max == 0:
		return []Finding{{Line: line, Warning: true, Message: fmt.Sprintf(
			"caracal_kafka: no max_in_flight_bytes: catching up a backlog, the lake holds up to max_in_flight rows waiting for their rolls, whatever their size (500,000 CloudTrail events took 2 GB); set max_in_flight_bytes: %d (2x roll_bytes)", want)}}
	case max < roll:
		return []Finding{{Line: line, Message: fmt.Sprintf(
			"caracal_kafka: max_in_flight_bytes %d is below the lake's roll_bytes %d: a roll can never fill, so each waits for roll_period; set max_in_flight_bytes: %d (2x roll_bytes)", max, roll, want)}}
	case max < 2*roll:
		return []Finding{{Line: line, Warning: true, Message: fmt.Sprintf(
			"caracal_kafka: max_in_flight_bytes %d is below twice the lake's roll_bytes %d: the next roll cannot gather while one is stored; set max_in_flight_bytes: %d (2x roll_bytes)", max, roll, want)}}
	}
	return nil
}

// intAt is the integer at key of mapping n, def when absent; false when
// it is not an integer (an environment variable).
func intAt(n *yaml.Node, key string, def int) (int, bool) {
	v := yamlnode.Value(n, key)
	if v == nil {
		return def, true
	}
	i, err := strconv.Atoi(v.Value)
	return i, err == nil
}
