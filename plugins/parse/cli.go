package parse

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/inflate"
	"github.com/caracal-sec/caracal/plugins/parse/native"
)

// ReadStream is ReadEvents for a stream that may open with a header line
// (native.IsHeader), which is passed along with every event after it
// (Origin.Header), as the HTTP source does. Any other first line is an
// event, and is passed along as Origin.FirstLine, for CSV schemas whose
// header has no mark.
func ReadStream(r io.Reader, fn func(raw []byte, o Origin) error) error {
	var o Origin
	first := true
	return ReadEvents(r, func(raw []byte) error {
		if first {
			first = false
			if native.IsHeader(raw) {
				o.Header = raw
				return nil
			}
			o.FirstLine = raw
		}
		return fn(raw, o)
	})
}

// ReadEvents splits a file or stdin into events (gzip, zstd or zlib
// compressed or not): a stream of JSON values
// (objects, arrays of objects, CloudTrail's Records wrapper; one per line or
// pretty-printed), else one event per non-empty line. It calls fn for each.
func ReadEvents(r io.Reader, fn func(raw []byte) error) error {
	data, err := readInflated(r)
	if err != nil {
		return err
	}
	t := bytes.TrimSpace(data)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if events, ok := jsonValues(t); ok {
			for _, ev := range events {
				if err := fn(ev); err != nil {
					return err
				}
			}
			return nil
		}
	}
	for _, line := range bytes.Split(t, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return err
		}
	}
	return nil
}

// maxFileBytes caps what one file given to a command inflates to: the
// commands hold a file's events in memory.
const maxFileBytes = 1 << 30

// readInflated reads all of r, decompressing gzip, zstd or zlib found by
// its magic bytes as the HTTP source finds them: logs are often kept
// compressed (CloudTrail's S3 objects are .json.gz).
func readInflated(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	plain, _, err := inflate.Decompress(data, maxFileBytes)
	if errors.Is(err, inflate.ErrTooLarge) {
		return nil, fmt.Errorf("the file inflates to more than %d GiB: split it into smaller files", maxFileBytes>>30)
	}
	return plain, err
}

func jsonValues(t []byte) ([][]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(t))
	var out [][]byte
	for dec.More() {
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return nil, false
		}
		if v[0] == '[' {
			var items []json.RawMessage
			if json.Unmarshal(v, &items) != nil {
				return nil, false
			}
			for _, it := range items {
				out = append(out, it)
			}
			continue
		}
		out = append(out, SplitRecords(v)...)
	}
	return out, true
}

// Command is `caracal parse`.
func Command() *cli.Command {
	return &cli.Command{
		Name:      "parse",
		Usage:     "Parse log files (or stdin) into normalized events, printed as JSON lines",
		ArgsUsage: "[file...]",
		Description: "Each line (or CloudTrail Records entry) is classified among --log-type (or all known types)\n" +
			"and printed with its p_* fields. Failures go to stderr with the reason per type; exit 1 if any.\n" +
			"gzip, zstd and zlib files (e.g. CloudTrail's .json.gz objects) are decompressed, found by their magic bytes.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "log-type", Usage: "log type(s) to try; default: all known"},
			&cli.StringFlag{Name: "schemas", Value: "./schemas", Usage: "directory of log schemas"},
			&cli.StringFlag{Name: "source-id", Value: "cli", Usage: "p_source_id for the events"},
			&cli.StringFlag{Name: "lookups", Usage: "lookup tables (a directory of definitions, or one .yml) to enrich with, as the pipeline does"},
		},
		Action: func(c *cli.Context) error {
			cl, err := LoadClassifier(c.String("schemas"))
			if err != nil {
				return err
			}
			if cl.Enrich, err = LoadEnricher(c.String("lookups")); err != nil {
				return err
			}
			if err := cl.CheckLogTypes(c.StringSlice("log-type")); err != nil {
				return cli.Exit(err.Error(), 2)
			}
			failed, err := printEvents(cl, c.Args().Slice(), c.StringSlice("log-type"), c.String("source-id"), c.App.Writer, os.Stderr)
			if err != nil {
				return err
			}
			if failed > 0 {
				return cli.Exit(fmt.Sprintf("%d event(s) failed to parse", failed), 1)
			}
			return nil
		},
	}
}

// printEvents writes each normalized event of the files to out as a JSON
// line, and each failure to errOut; failed counts the failures. An event
// that cannot be written as JSON is one of them, not the end of the run.
func printEvents(cl *Classifier, files, logTypes []string, sourceID string, out, errOut io.Writer) (failed int, err error) {
	err = Each(cl, files, logTypes, sourceID, func(ev map[string]any, f *envelope.ClassificationFailure, name string) error {
		if f != nil {
			failed++
			fmt.Fprintf(errOut, "%s: %s\n", name, Describe(f))
			return nil
		}
		b, err := json.Marshal(ev)
		if err != nil {
			failed++
			fmt.Fprintf(errOut, "%s: the event is not written: %v\n", name, err)
			return nil
		}
		_, err = fmt.Fprintf(out, "%s\n", b)
		return err
	})
	return failed, err
}

// Each parses every event of the files (stdin when none) and calls fn with
// the normalized event or the failure; name says where the event came from.
func Each(cl *Classifier, files, logTypes []string, sourceID string, fn func(ev map[string]any, f *envelope.ClassificationFailure, name string) error) error {
	if len(files) == 0 {
		files = []string{"-"}
	}
	for _, name := range files {
		var r io.Reader = os.Stdin
		if name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			r = f
		}
		line := 0
		err := ReadStream(r, func(raw []byte, o Origin) error {
			o.SourceID, o.SourceLabel, o.ReceivedAt, o.Offset = sourceID, sourceID, time.Now(), int64(line)
			line++
			ev, fail := cl.Classify(raw, logTypes, o)
			if ev == nil && fail == nil {
				return nil // a header or skipped line
			}
			if ev != nil && cl.Enrich != nil {
				cl.Enrich(ev)
			}
			return fn(ev, fail, fmt.Sprintf("%s:%d", name, line))
		})
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// LoadEnricher loads the lookup tables at dir (a directory of definitions,
// or one) for the CLI: nil without one.
func LoadEnricher(dir string) (func(map[string]any) bool, error) {
	if dir == "" {
		return nil, nil
	}
	set, err := enrich.LoadSetFrom(context.Background(), dir)
	if err != nil {
		return nil, err
	}
	return set.Enrich, nil
}
