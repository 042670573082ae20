package main

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/caracal-sec/caracal/plugins/detect"
	"github.com/caracal-sec/caracal/plugins/enrich"
	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/lake"
	"github.com/caracal-sec/caracal/plugins/parse"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/suggest"
)

// lakeFlags locate the lake and the schemas its log tables follow.
func lakeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "lake", Value: envOr("CARACAL_LAKE_URL", "./data/lake"), Usage: "lake URL: a directory or s3://bucket/prefix (default $CARACAL_LAKE_URL or ./data/lake)"},
		&cli.StringFlag{Name: "schemas", Value: "./schemas", Usage: "directory of log schemas"},
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func openLake(c *cli.Context) (lake.Reader, *lake.Tables, error) {
	schemas, err := schema.LoadDir(c.String("schemas"))
	if err != nil {
		return nil, nil, err
	}
	tables, err := lake.NewTables(schemas)
	if err != nil {
		return nil, nil, err
	}
	r, err := lake.OpenReader(c.String("lake"))
	return r, tables, err
}

// timeRange reads a command's start and end flags (parseWhen); an end
// before the start is a mistake, not an empty range.
func timeRange(c *cli.Context, startFlag, endFlag string) (start, end time.Time, err error) {
	now := time.Now().UTC()
	if start, err = parseWhen(c.String(startFlag), now); err != nil {
		return start, end, err
	}
	if end, err = parseWhen(c.String(endFlag), now); err != nil {
		return start, end, err
	}
	if !start.IsZero() && !end.IsZero() && end.Before(start) {
		return start, end, cli.Exit(fmt.Sprintf("--%s %s is before --%s %s: the range would hold nothing", endFlag, c.String(endFlag), startFlag, c.String(startFlag)), 2)
	}
	return start, end, nil
}

// parseWhen reads a time flag: RFC 3339, a date, or a duration ago ("24h",
// "7d", "1d12h").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := parseAgo(s); err == nil {
		return now.Add(-d), nil
	}
	for _, l := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: use RFC 3339 (2026-11-24T10:00:00Z), a date (2026-11-24) or a duration ago (24h, 7d)", s)
}

// parseAgo is time.ParseDuration with days ("7d", "1d12h") in front, as
// people look back over a lake in days.
func parseAgo(s string) (time.Duration, error) {
	days, rest, ok := strings.Cut(s, "d")
	if !ok {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(days, 10, 16)
	if err != nil {
		return 0, err
	}
	d := time.Duration(n) * 24 * time.Hour
	if rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, err
		}
		d += r
	}
	return d, nil
}

// indicatorFlags maps search flags to the p_any_* column they look in.
var indicatorFlags = []struct{ flag, field, usage string }{
	{"ip", "p_any_ip_addresses", "an IP address"},
	{"domain", "p_any_domain_names", "a domain name"},
	{"hash", "", "an MD5, SHA-1 or SHA-256 hash (by its length)"},
	{"email", "p_any_emails", "an email address"},
	{"arn", "p_any_aws_arns", "an AWS ARN"},
	{"account", "p_any_aws_account_ids", "an AWS account id"},
	{"instance", "p_any_aws_instance_ids", "an EC2 instance id"},
	{"username", "p_any_usernames", "a user name"},
	{"trace", "p_any_trace_ids", "a trace or request id"},
	{"mac", "p_any_mac_addresses", "a MAC address"},
}

func searchCommand() *cli.Command {
	flags := lakeFlags()
	for _, f := range indicatorFlags {
		flags = append(flags, &cli.StringFlag{Name: f.flag, Usage: "find " + f.usage})
	}
	flags = append(flags,
		&cli.StringFlag{Name: "since", Value: "24h", Usage: "from this time (RFC 3339, date, or a duration ago)"},
		&cli.StringFlag{Name: "until", Usage: "before this time (default: now)"},
		&cli.StringSliceFlag{Name: "tables", Usage: "tables to search (default: all)"},
		&cli.StringFlag{Name: "format", Value: "json", Usage: "json (one row per line) or table"},
	)
	return &cli.Command{
		Name:  "search",
		Usage: "Find the events, rule matches and alerts that mention an indicator, across every lake table",
		Description: "Searches the p_any_* indicator columns of every table in the time range. Files outside the range are " +
			"skipped by their hour partition and row groups by their bloom filters, so only candidate row groups are read. " +
			"The value is looked for as log parsing records it: hashes, domains, emails and MAC addresses in lower case, " +
			"domains without a final dot, IPv4-mapped addresses as IPv4.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			field, value := "", ""
			for _, f := range indicatorFlags {
				if v := c.String(f.flag); v != "" {
					if field != "" {
						return cli.Exit("search: give one indicator (--ip, --domain, --hash, ...)", 2)
					}
					field, value = f.field, strings.TrimSpace(v)
					if f.flag == "hash" {
						if field = hashField(value); field == "" {
							return cli.Exit("search: --hash wants 32 (MD5), 40 (SHA-1) or 64 (SHA-256) hex digits", 2)
						}
					}
					// As the parser stores it: an upper-case hash, a
					// domain's final dot, an IPv4-mapped address match.
					stored, ok := parse.StoredForm(field, value)
					if !ok {
						return cli.Exit(fmt.Sprintf("search: --%s %q is not %s as log parsing records one", f.flag, value, f.usage), 2)
					}
					value = stored
				}
			}
			if field == "" {
				return cli.Exit("search: give an indicator: --ip, --domain, --hash, --email, --arn, --account, --instance, --username, --trace or --mac", 2)
			}
			since, until, err := timeRange(c, "since", "until")
			if err != nil {
				return err
			}
			r, tables, err := openLake(c)
			if err != nil {
				return err
			}
			out := newRowPrinter(c.String("format"), c.App.Writer)
			start := time.Now()
			st, err := lake.ScanLake(c.Context, r, tables, lake.Scan{Tables: c.StringSlice("tables"), Since: since, Until: until, Column: field, Value: value,
				OnUnreadable: warnUnreadable("search")}, out.row)
			if err != nil {
				return err
			}
			out.flush()
			fmt.Fprintf(os.Stderr, "search: %d rows matched in %s (%d files read, %d pruned by time; %d of %d row groups skipped by bloom filter or statistics; %d rows scanned, %.1f MB of files)\n",
				st.Matched, time.Since(start).Round(time.Millisecond), st.Files, st.FilesPruned, st.RowGroupsPruned, st.RowGroups, st.Rows, float64(st.Bytes)/1e6)
			return unreadableExit("search", st)
		},
	}
}

// warnUnreadable reports a lake file a scan skips, as it goes.
func warnUnreadable(cmd string) func(key string, err error) {
	return func(key string, err error) {
		fmt.Fprintf(os.Stderr, "%s: skipped %s, which cannot be read: %v\n", cmd, key, err)
	}
}

// unreadableExit fails a scan that skipped files (exit 1), after its
// results: they may lack rows those files hold.
func unreadableExit(cmd string, st lake.ScanStats) error {
	if st.Unreadable == 0 {
		return nil
	}
	return cli.Exit(fmt.Sprintf("%s: %d file(s) could not be read (see above): the results may lack their rows", cmd, st.Unreadable), 1)
}

func hashField(h string) string {
	for _, c := range h {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return ""
		}
	}
	switch len(h) {
	case 32:
		return "p_any_md5_hashes"
	case 40:
		return "p_any_sha1_hashes"
	case 64:
		return "p_any_sha256_hashes"
	}
	return ""
}

// rowPrinter prints rows as JSON lines, or as an aligned table of the
// standard fields.
type rowPrinter struct {
	json bool
	enc  *json.Encoder
	tw   *tabwriter.Writer
}

func newRowPrinter(format string, w interface{ Write([]byte) (int, error) }) *rowPrinter {
	if format == "table" {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tTIME\tLOG TYPE / RULE\tROW ID / ALERT ID\tSOURCE")
		return &rowPrinter{tw: tw}
	}
	return &rowPrinter{json: true, enc: json.NewEncoder(w)}
}

func (p *rowPrinter) row(table string, row map[string]any) error {
	if p.json {
		row["p_table"] = table
		return p.enc.Encode(row)
	}
	first := func(keys ...string) any {
		for _, k := range keys {
			if v, ok := row[k]; ok {
				return v
			}
		}
		return "-"
	}
	_, err := fmt.Fprintf(p.tw, "%s\t%v\t%v\t%v\t%v\n", table, first(envelope.FieldEventTime, "createdAt", "failed_at"),
		first(envelope.FieldLogType, "id"), first(envelope.FieldRowID, "alertId"), first(envelope.FieldSourceID))
	return err
}

func (p *rowPrinter) flush() {
	if p.tw != nil {
		p.tw.Flush()
	}
}

func replayCommand() *cli.Command {
	flags := append(lakeFlags(),
		&cli.StringFlag{Name: "rules", Value: "./rules", Usage: "directory of rules to run"},
		&cli.StringFlag{Name: "lookups", Usage: "lookup tables (a directory of definitions, or one .yml) for the rules' lookup()"},
		&cli.StringFlag{Name: "from", Value: "24h", Usage: "events from this time (RFC 3339, date, or a duration ago)"},
		&cli.StringFlag{Name: "to", Usage: "events before this time (default: now)"},
		&cli.StringSliceFlag{Name: "log-types", Usage: "only these log types (default: every log type a rule reads)"},
		&cli.BoolFlag{Name: "quiet", Usage: "print only the per-rule summary"},
	)
	return &cli.Command{
		Name:  "replay",
		Usage: "Run rules over events already in the lake: print the matches and a per-rule summary; sends nothing",
		Description: "Useful to try a new or changed rule on past data before enabling it. Matches are printed as JSON " +
			"lines (as on caracal.matches); no alert is created and no destination is called.",
		Flags: flags,
		Action: func(c *cli.Context) error {
			engine, err := detect.LoadEngine(c.String("rules"))
			if err != nil {
				return err
			}
			if dir := c.String("lookups"); dir != "" {
				set, err := enrich.LoadSetFrom(c.Context, dir)
				if err != nil {
					return err
				}
				detect.SetLookup(set.Lookup)
			}
			from, to, err := timeRange(c, "from", "to")
			if err != nil {
				return err
			}
			r, tables, err := openLake(c)
			if err != nil {
				return err
			}
			logTypes := c.StringSlice("log-types")
			for _, lt := range logTypes {
				if tables.Table(envelope.TableName(lt)) == nil {
					return cli.Exit(fmt.Sprintf("replay: unknown log type %s%s", lt, suggest.Hint(lt, tables.LogTypes())), 2)
				}
			}
			if len(logTypes) == 0 {
				seen := map[string]bool{}
				for _, rule := range engine.Rules() {
					for _, lt := range rule.LogTypes {
						if !seen[lt] {
							seen[lt] = true
							logTypes = append(logTypes, lt)
						}
					}
				}
			}
			var names []string
			for _, lt := range logTypes {
				name := envelope.TableName(lt)
				if tables.Table(name) == nil {
					fmt.Fprintf(os.Stderr, "replay: a rule reads log type %s, which has no schema%s; skipped\n", lt, suggest.DidYouMean(lt, tables.LogTypes()))
					continue
				}
				names = append(names, name)
			}
			sort.Strings(names)
			type tally struct{ matches, errors int }
			perRule := map[string]*tally{}
			for _, rule := range engine.Rules() {
				perRule[rule.RuleID] = &tally{}
			}
			enc := json.NewEncoder(c.App.Writer)
			start := time.Now()
			st, err := lake.ScanLake(c.Context, r, tables, lake.Scan{Tables: names, Since: from, Until: to, OnUnreadable: warnUnreadable("replay")}, func(_ string, ev map[string]any) error {
				for _, m := range engine.Evaluate(ev) {
					t := perRule[fmt.Sprint(m[envelope.FieldRuleID])]
					if t != nil {
						if m[envelope.FieldMatchType] == envelope.TypeRuleError {
							t.errors++
						} else {
							t.matches++
						}
					}
					if !c.Bool("quiet") {
						if err := enc.Encode(m); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stderr, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RULE\tMATCHES\tERRORS")
			ids := make([]string, 0, len(perRule))
			for id := range perRule {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				fmt.Fprintf(tw, "%s\t%d\t%d\n", id, perRule[id].matches, perRule[id].errors)
			}
			tw.Flush()
			fmt.Fprintf(os.Stderr, "replay: %d events in range from %d files (%d pruned by time) in %s\n", st.Matched, st.Files, st.FilesPruned, time.Since(start).Round(time.Millisecond))
			return unreadableExit("replay", st)
		},
	}
}
