package parse

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/parse/schema"
)

// Infer derives a schema from sample JSON events: every field seen, typed by
// the values seen (timestamps recognised, integers and fractions widened
// to float, other conflicting types to string or json), required only
// when present in every sample.
func Infer(name string, samples []map[string]any) *schema.Schema {
	s := &schema.Schema{Schema: name, Description: fmt.Sprintf("Inferred from %d sample events.", len(samples))}
	s.Fields = inferFields(samples)
	// Without an event time an event is filed under the hour it was
	// parsed (the lake's partitions, rules' windows); a lone timestamp
	// field whose name did not say so is the event time all the same.
	var times []int
	for i, f := range s.Fields {
		if f.IsEventTime {
			return s
		}
		if f.Type == schema.TypeTimestamp {
			times = append(times, i)
		}
	}
	if len(times) == 1 {
		s.Fields[times[0]].IsEventTime = true
	}
	return s
}

func inferFields(objs []map[string]any) []schema.Field {
	seen := map[string][]any{}
	for _, o := range objs {
		for k, v := range o {
			if v != nil {
				seen[k] = append(seen[k], v)
			}
		}
	}
	names := make([]string, 0, len(seen))
	for k := range seen {
		names = append(names, k)
	}
	sort.Strings(names)
	var fields []schema.Field
	for _, k := range names {
		f := inferField(k, seen[k])
		f.Required = len(seen[k]) == len(objs) && len(objs) > 1
		fields = append(fields, f)
	}
	return fields
}

func inferField(name string, vals []any) schema.Field {
	f := schema.Field{Name: name}
	kinds := map[string]bool{}
	for _, v := range vals {
		kinds[valueKind(v)] = true
	}
	if kinds[schema.TypeBigInt] && kinds[schema.TypeFloat] {
		delete(kinds, schema.TypeBigInt) // 1 and 0.5: a float holds both
	}
	if len(kinds) != 1 {
		if kinds["object"] || kinds["array"] {
			f.Type = schema.TypeJSON
		} else {
			f.Type = schema.TypeString
		}
		return f
	}
	for k := range kinds {
		switch k {
		case "object":
			var objs []map[string]any
			for _, v := range vals {
				objs = append(objs, v.(map[string]any))
			}
			f.Type, f.Fields = schema.TypeObject, inferFields(objs)
			if len(f.Fields) == 0 {
				f.Type, f.Fields = schema.TypeJSON, nil
			}
		case "array":
			var items []any
			for _, v := range vals {
				items = append(items, v.([]any)...)
			}
			if len(items) == 0 {
				f.Type = schema.TypeJSON
				return f
			}
			el := inferField("", items)
			f.Type, f.Element = schema.TypeArray, &el
		case "timestamp":
			f.Type, f.TimeFormat = schema.TypeTimestamp, "rfc3339"
		case "ip":
			f.Type, f.Indicators = schema.TypeString, []string{"ip"}
		default:
			f.Type = k
		}
	}
	if strings.EqualFold(name, "eventTime") || strings.EqualFold(name, "timestamp") || strings.EqualFold(name, "time") {
		if f.Type == schema.TypeTimestamp {
			f.IsEventTime = true
		}
	}
	return f
}

func valueKind(v any) string {
	switch t := v.(type) {
	case bool:
		return schema.TypeBoolean
	case float64:
		if t == float64(int64(t)) {
			return schema.TypeBigInt
		}
		return schema.TypeFloat
	case string:
		if _, err := time.Parse(time.RFC3339Nano, t); err == nil {
			return "timestamp"
		}
		if _, err := netip.ParseAddr(t); err == nil {
			return "ip"
		}
		return schema.TypeString
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return schema.TypeString
}

func inferCommand() *cli.Command {
	return &cli.Command{
		Name:      "infer",
		Usage:     "Write a schema (YAML) inferred from sample JSON events",
		ArgsUsage: "[file...]",
		Flags:     []cli.Flag{&cli.StringFlag{Name: "name", Value: "Custom.Inferred", Usage: "log type name of the schema"}},
		Action: func(c *cli.Context) error {
			var samples []map[string]any
			files := c.Args().Slice()
			if len(files) == 0 {
				files = []string{"-"}
			}
			for _, name := range files {
				var f *os.File = os.Stdin
				if name != "-" {
					var err error
					if f, err = os.Open(name); err != nil {
						return err
					}
					defer f.Close()
				}
				err := ReadEvents(f, func(raw []byte) error {
					var m map[string]any
					if err := json.Unmarshal(raw, &m); err != nil {
						return fmt.Errorf("%s: sample is not a JSON object: %w", name, err)
					}
					samples = append(samples, m)
					return nil
				})
				if err != nil {
					return err
				}
			}
			if len(samples) == 0 {
				return cli.Exit("no samples", 1)
			}
			out, err := yaml.Marshal(Infer(c.String("name"), samples))
			if err != nil {
				return err
			}
			_, err = c.App.Writer.Write(out)
			return err
		},
	}
}
