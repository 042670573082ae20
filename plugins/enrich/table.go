// Package enrich adds context to events before detection, as Panther's
// lookup tables do: tables defined in lookups/*.yml are loaded from a file,
// s3:// or https:// URL, refreshed in the background, and matched against
// event fields (exact string keys, or CIDR keys by longest prefix); a hit
// adds p_enrichment.<table>.<field path> = <row>. Rules call lookup(table,
// key) for the same rows.
package enrich

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/oschwald/maxminddb-golang/v2"
	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/redact"
)

// Def is a lookup table definition (lookups/<name>.yml).
type Def struct {
	Name         string              `yaml:"name"`
	Description  string              `yaml:"description"`
	PrimaryKey   string              `yaml:"primary_key"`
	KeyType      string              `yaml:"key_type"` // string (default) or cidr
	Data         string              `yaml:"data"`
	Format       string              `yaml:"format"` // csv, jsonl, json, mmdb; default from the extension
	Refresh      string              `yaml:"refresh"`
	Associations map[string][]string `yaml:"associations"`
	File         string              `yaml:"-"`
	refresh      time.Duration
}

// Remote reports whether the data is fetched (s3://, https://) rather
// than read from a local file.
func (d *Def) Remote() bool { return strings.Contains(d.Data, "://") }

// LoadDefs reads every *.yml / *.yaml definition in dir (none when the
// directory does not exist).
func LoadDefs(dir string) ([]*Def, error) {
	var defs []*Def
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && path == dir {
				return fs.SkipAll
			}
			return err
		}
		if d.IsDir() || (filepath.Ext(path) != ".yml" && filepath.Ext(path) != ".yaml") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		def, err := ParseDef(path, data)
		if err != nil {
			return err
		}
		defs = append(defs, def)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lookup tables in %s: %w", dir, err)
	}
	sort.Slice(defs, func(i, j int) bool { return defs[i].Name < defs[j].Name })
	return defs, nil
}

// ParseDef reads and checks one definition; a relative local data path is
// relative to the definition file.
func ParseDef(file string, data []byte) (*Def, error) {
	var d Def
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	d.File = file
	if d.Name == "" || d.Data == "" || (d.PrimaryKey == "" && !strings.HasSuffix(d.Data, ".mmdb") && d.Format != "mmdb") {
		return nil, fmt.Errorf("%s: name, primary_key and data are required", file)
	}
	switch d.KeyType {
	case "":
		d.KeyType = "string"
	case "string", "cidr":
	default:
		return nil, fmt.Errorf("%s: key_type %q: use string or cidr", file, d.KeyType)
	}
	if d.Format == "" {
		switch strings.ToLower(filepath.Ext(strings.SplitN(d.Data, "?", 2)[0])) {
		case ".csv":
			d.Format = "csv"
		case ".jsonl", ".ndjson":
			d.Format = "jsonl"
		case ".mmdb":
			d.Format = "mmdb"
		default:
			d.Format = "json"
		}
	}
	switch d.Format {
	case "csv", "jsonl", "json":
	case "mmdb":
		// A MaxMind-format database (GeoIP, ASN): keyed by IP, longest
		// prefix; enriches every log type's IPs unless told otherwise.
		d.KeyType = "cidr"
		if len(d.Associations) == 0 {
			d.Associations = map[string][]string{"*": {"p_any_ip_addresses"}}
		}
	default:
		return nil, fmt.Errorf("%s: format %q: use csv, jsonl, json or mmdb", file, d.Format)
	}
	d.refresh = 5 * time.Minute
	if d.Refresh != "" {
		r, err := time.ParseDuration(d.Refresh)
		if err != nil {
			return nil, fmt.Errorf("%s: refresh: %w", file, err)
		}
		if r <= 0 {
			return nil, fmt.Errorf("%s: refresh %s: give a positive duration such as 5m (leave it out for the default)", file, d.Refresh)
		}
		d.refresh = r
	}
	if !d.Remote() && !filepath.IsAbs(d.Data) {
		d.Data = filepath.Join(filepath.Dir(file), d.Data)
	}
	return &d, nil
}

// Index is one loaded version of a table; it is immutable, and a refresh
// swaps in a new one atomically.
type Index struct {
	mmdb    *maxminddb.Reader
	rows    rowStore
	byKey   map[string]int32 // keys: substrings of rows.buf, mostly
	cidr    *CIDRIndex
	version string // checksum or ETag of the data
	Loaded  time.Time
	Bytes   int // approximate memory
	decoded decodedRows
}

// decodedRows keeps the rows Get decoded, so that a row hit again (rules'
// lookup() of the same host or account, event after event) is not decoded
// again: up to maxDecoded of them, the first ones hit (an inventory of
// accounts or hosts that rules look up event after event is held whole; a
// threat feed of millions keeps a part, and a row past it is decoded on
// each hit, about 1 µs).
type decodedRows struct {
	once sync.Once
	rows []atomic.Pointer[map[string]any]
	n    atomic.Int32
}

const maxDecoded = 1 << 17

// row is row i as a map; it is shared, as the table's rows always were.
func (ix *Index) row(i int) map[string]any {
	d := &ix.decoded
	d.once.Do(func() { d.rows = make([]atomic.Pointer[map[string]any], ix.Rows()) })
	if m := d.rows[i].Load(); m != nil {
		return *m
	}
	m := ix.rows.decode(i)
	if d.n.Load() < maxDecoded {
		d.n.Add(1)
		d.rows[i].Store(&m)
	}
	return m
}

// Rows is the number of rows.
func (ix *Index) Rows() int { return len(ix.rows.ends) }

// KeyString is a key as the table indexes it and a lookup asks for it: a
// number that is whole as its digits (JSON decodes account ids such as
// 111122223333 to floats, which fmt prints as 1.11122223333e+11).
func KeyString(k any) string {
	switch t := k.(type) {
	case string:
		return t
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	return fmt.Sprint(k)
}

// find is the row of a key in a string or CIDR table (-1: none): exact
// for string tables, longest prefix for CIDR tables (key is then an IP
// address).
func (ix *Index) find(key string) int {
	if ix.cidr != nil {
		a, err := netip.ParseAddr(strings.TrimSpace(key))
		if err != nil {
			return -1
		}
		if i, ok := ix.cidr.Lookup(a); ok {
			return i
		}
		return -1
	}
	if i, ok := ix.byKey[key]; ok {
		return int(i)
	}
	return -1
}

// Get finds the row for a key (see find; an mmdb table's is its record).
func (ix *Index) Get(key string) map[string]any {
	if ix.mmdb != nil {
		a, err := netip.ParseAddr(strings.TrimSpace(key))
		if err != nil {
			return nil
		}
		res := ix.mmdb.Lookup(a)
		if !res.Found() {
			return nil
		}
		var row map[string]any
		if res.Decode(&row) != nil || row == nil {
			return nil
		}
		return row
	}
	if i := ix.find(key); i >= 0 {
		return ix.row(i)
	}
	return nil
}

// builder indexes rows by a definition's primary key as they are read.
type builder struct {
	d     *Def
	rows  rowBuilder
	cidrs *CIDRBuilder
	// A string table's keys: where in the rows' buffer (most keys are
	// stored there as they are), or in extra.
	keys  []keyAt
	extra []byte
}

type keyAt struct {
	from, to uint32
	extra    bool
}

func newBuilder(d *Def) *builder {
	b := &builder{d: d}
	if d.KeyType == "cidr" {
		b.cidrs = &CIDRBuilder{}
	}
	return b
}

// key indexes the row being added by ks, whose value is buf[from:to].
func (b *builder) key(ks string, from, to int) error {
	row := len(b.rows.ends)
	if b.cidrs != nil {
		ks = strings.TrimSpace(ks) // as find trims the address looked up
		p, err := netip.ParsePrefix(ks)
		if err != nil {
			a, aerr := netip.ParseAddr(ks)
			if aerr != nil {
				return fmt.Errorf("table %s row %d: %q is not a CIDR", b.d.Name, row+1, ks)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		b.cidrs.Add(p, row)
		return nil
	}
	if string(b.rows.buf[from:to]) == ks {
		b.keys = append(b.keys, keyAt{from: uint32(from), to: uint32(to)})
		return nil
	}
	b.keys = append(b.keys, keyAt{from: uint32(len(b.extra)), to: uint32(len(b.extra) + len(ks)), extra: true})
	b.extra = append(b.extra, ks...)
	return nil
}

// add adds a row as JSON data decodes it.
func (b *builder) add(r map[string]any) error {
	k, ok := r[b.d.PrimaryKey]
	if !ok || k == nil {
		return fmt.Errorf("table %s row %d has no %s", b.d.Name, len(b.rows.ends)+1, b.d.PrimaryKey)
	}
	cols := slices.Sorted(maps.Keys(r))
	b.rows.start(b.rows.shape(cols))
	for _, c := range cols {
		from, to, err := b.rows.add(r[c])
		if err != nil {
			return fmt.Errorf("table %s row %d: %s: %w", b.d.Name, len(b.rows.ends)+1, c, err)
		}
		if c == b.d.PrimaryKey {
			if err := b.key(KeyString(k), from, to); err != nil {
				return err
			}
		}
	}
	return b.rows.end()
}

// csv adds the rows of CSV data.
func (b *builder) csv(data []byte) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("csv header: %w", err)
	}
	header = slices.Clone(header)
	if len(header) > 0 { // Excel's "CSV UTF-8" opens with a byte order mark
		header[0] = strings.TrimPrefix(header[0], "\ufeff")
	}
	// The columns, each once: a name given twice has its last column's
	// values, as a map per row had.
	var cols []string
	var fields []int
	key := -1
	for i, h := range header {
		if j := slices.Index(cols, h); j >= 0 {
			fields[j] = i
			continue
		}
		if h == b.d.PrimaryKey {
			key = len(cols)
		}
		cols, fields = append(cols, h), append(fields, i)
	}
	sh := b.rows.shape(cols)
	for line := 2; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("csv: %w", err)
		}
		if len(rec) != len(header) {
			return fmt.Errorf("csv line %d: %d fields, header has %d", line, len(rec), len(header))
		}
		if key < 0 {
			return fmt.Errorf("table %s row %d has no %s", b.d.Name, len(b.rows.ends)+1, b.d.PrimaryKey)
		}
		b.rows.start(sh)
		for c, f := range fields {
			from, to := b.rows.addString(rec[f])
			if c == key {
				if err := b.key(rec[f], from, to); err != nil {
					return err
				}
			}
		}
		if err := b.rows.end(); err != nil {
			return err
		}
	}
}

// index is the index of the rows added.
func (b *builder) index(version string) *Index {
	ix := &Index{rows: b.rows.store(), version: version, Loaded: time.Now()}
	ix.Bytes = ix.rows.bytes()
	if b.cidrs != nil {
		ix.cidr = b.cidrs.Index()
		ix.Bytes += ix.cidr.Bytes()
		return ix
	}
	extra := string(b.extra)
	ix.byKey = make(map[string]int32, len(b.keys))
	for i, k := range b.keys {
		s := ix.rows.buf
		if k.extra {
			s = extra
		}
		ix.byKey[s[k.from:k.to]] = int32(i) // the last row of a key stays
	}
	ix.Bytes += len(extra) + len(ix.byKey)*40
	return ix
}

// Build indexes rows by the definition's primary key.
func Build(d *Def, rows []map[string]any, version string) (*Index, error) {
	b := newBuilder(d)
	for _, r := range rows {
		if err := b.add(r); err != nil {
			return nil, err
		}
	}
	return b.index(version), nil
}

// Load reads table data in the definition's format (csv, jsonl, json)
// and indexes its rows, a row at a time.
func Load(d *Def, data []byte, version string) (*Index, error) {
	b := newBuilder(d)
	// The rows take about the data's size (less the JSON's keys): room
	// for them from the start, not a buffer doubled a dozen times.
	b.rows.buf = make([]byte, 0, len(data))
	switch d.Format {
	case "csv":
		if err := b.csv(data); err != nil {
			return nil, err
		}
	case "jsonl":
		for i, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var row map[string]any
			if err := json.Unmarshal(line, &row); err != nil {
				return nil, fmt.Errorf("jsonl line %d: %w", i+1, err)
			}
			if err := b.add(row); err != nil {
				return nil, err
			}
		}
	case "json":
		dec := json.NewDecoder(bytes.NewReader(data))
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("json (an array of objects): %w", err)
		}
		if t != json.Delim('[') && t != nil { // null: no rows
			return nil, fmt.Errorf("json (an array of objects): the data is not an array")
		}
		for t != nil && dec.More() {
			var row map[string]any
			if err := dec.Decode(&row); err != nil {
				return nil, fmt.Errorf("json (an array of objects): %w", err)
			}
			if err := b.add(row); err != nil {
				return nil, err
			}
		}
		if t != nil {
			if _, err := dec.Token(); err != nil {
				return nil, fmt.Errorf("json (an array of objects): %w", err)
			}
		}
		if _, err := dec.Token(); err != io.EOF {
			return nil, fmt.Errorf("json (an array of objects): data after the array")
		}
	default:
		return nil, fmt.Errorf("unknown format %q", d.Format)
	}
	return b.index(version), nil
}

// Source fetches table data, reporting unchanged data cheaply.
type Source interface {
	// Fetch returns the data and its version; changed is false (and data
	// nil) when the version equals prev.
	Fetch(ctx context.Context, prev string) (data []byte, version string, changed bool, err error)
}

// OpenSource picks the source for a data location.
func OpenSource(loc string) (Source, error) {
	switch {
	case strings.HasPrefix(loc, "s3://"):
		return newS3Source(loc)
	case strings.HasPrefix(loc, "https://"), strings.HasPrefix(loc, "http://"):
		return &httpSource{url: loc, client: &http.Client{Timeout: time.Minute}}, nil
	case strings.Contains(loc, "://"):
		return nil, fmt.Errorf("data %q: use a local path, s3:// or https://", loc)
	}
	return fileSource(loc), nil
}

type fileSource string

func (f fileSource) Fetch(_ context.Context, prev string) ([]byte, string, bool, error) {
	data, err := os.ReadFile(string(f))
	if err != nil {
		return nil, "", false, err
	}
	sum := sha256.Sum256(data)
	v := fmt.Sprintf("sha256:%x", sum[:8])
	if v == prev {
		return nil, v, false, nil
	}
	return data, v, true, nil
}

type httpSource struct {
	url    string
	client *http.Client
}

// Fetch uses ETag / Last-Modified so an unchanged table costs a 304.
func (h *httpSource) Fetch(ctx context.Context, prev string) ([]byte, string, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return nil, "", false, err
	}
	if etag, ok := strings.CutPrefix(prev, "etag:"); ok {
		req.Header.Set("If-None-Match", etag)
	} else if lm, ok := strings.CutPrefix(prev, "lm:"); ok {
		req.Header.Set("If-Modified-Since", lm)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		// Feeds take their API key in the URL: errors name the host only.
		return nil, "", false, redact.Error(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		return nil, prev, false, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", false, fmt.Errorf("GET %s: HTTP %d", redact.URL(h.url), resp.StatusCode)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<30))
	if err != nil {
		return nil, "", false, err
	}
	v := ""
	switch {
	case resp.Header.Get("ETag") != "":
		v = "etag:" + resp.Header.Get("ETag")
	case resp.Header.Get("Last-Modified") != "":
		v = "lm:" + resp.Header.Get("Last-Modified")
	default:
		sum := sha256.Sum256(data)
		v = fmt.Sprintf("sha256:%x", sum[:8])
	}
	if v == prev {
		return nil, v, false, nil
	}
	return data, v, true, nil
}

type s3Source struct {
	client      *minio.Client
	bucket, key string
}

func newS3Source(loc string) (*s3Source, error) {
	u, err := url.Parse(loc)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("data %q: want s3://bucket/key", loc)
	}
	endpoint := os.Getenv("CARACAL_S3_ENDPOINT")
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	secure, lookup := true, minio.BucketLookupAuto
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	} else if e, err := url.Parse(endpoint); err == nil && e.Host != "" {
		secure, endpoint, lookup = e.Scheme == "https", e.Host, minio.BucketLookupPath
	}
	cl, err := minio.New(endpoint, &minio.Options{
		Creds:  credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}, &credentials.IAM{}}),
		Secure: secure, Region: os.Getenv("AWS_REGION"), BucketLookup: lookup,
	})
	if err != nil {
		return nil, err
	}
	return &s3Source{client: cl, bucket: u.Host, key: strings.TrimPrefix(u.Path, "/")}, nil
}

func (s *s3Source) Fetch(ctx context.Context, prev string) ([]byte, string, bool, error) {
	st, err := s.client.StatObject(ctx, s.bucket, s.key, minio.StatObjectOptions{})
	if err != nil {
		return nil, "", false, err
	}
	v := "etag:" + st.ETag
	if v == prev {
		return nil, v, false, nil
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key, minio.GetObjectOptions{})
	if err != nil {
		return nil, "", false, err
	}
	defer obj.Close()
	data, err := io.ReadAll(obj)
	return data, v, true, err
}

// Table is a definition with its current index, refreshed in the
// background and swapped atomically.
type Table struct {
	Def     *Def
	src     Source
	current atomic.Pointer[Index]
	// OnError is told about a refresh that failed (the last good index stays).
	OnError func(t *Table, err error)
}

// NewTable loads a table once (an error here is fatal: there is no previous
// version to keep).
func NewTable(ctx context.Context, d *Def) (*Table, error) {
	t, err := newTable(d)
	if err != nil {
		return nil, err
	}
	if err := t.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("lookup table %s: %w", d.Name, err)
	}
	return t, nil
}

// newTable is a table not loaded yet: empty, until a Refresh succeeds.
func newTable(d *Def) (*Table, error) {
	src, err := OpenSource(d.Data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", d.File, err)
	}
	t := &Table{Def: d, src: src}
	t.current.Store(&Index{})
	return t, nil
}

// Loaded reports whether a version of the data is in service (a remote
// table a stage started without has none until a refresh succeeds).
func (t *Table) Loaded() bool { return !t.Index().Loaded.IsZero() }

// Index is the current version.
func (t *Table) Index() *Index { return t.current.Load() }

// Refresh re-reads the data when it changed and swaps the new index in; on
// error the previous index stays in service.
func (t *Table) Refresh(ctx context.Context) error {
	prev := ""
	if ix := t.current.Load(); ix != nil {
		prev = ix.version
	}
	data, version, changed, err := t.src.Fetch(ctx, prev)
	if err != nil {
		return err
	}
	if !changed {
		return nil
	}
	if t.Def.Format == "mmdb" {
		r, err := maxminddb.OpenBytes(data)
		if err != nil {
			return fmt.Errorf("mmdb: %w", err)
		}
		t.current.Store(&Index{mmdb: r, version: version, Loaded: time.Now(), Bytes: len(data)})
		return nil
	}
	ix, err := Load(t.Def, data, version)
	if err != nil {
		return err
	}
	t.current.Store(ix)
	return nil
}

// unloadedRetry is how soon a table not loaded yet is tried again, when
// its refresh period is longer (or none).
const unloadedRetry = 30 * time.Second

// nextWait is how long Run waits before the next refresh (0: none).
func (t *Table) nextWait() time.Duration {
	if wait := t.Def.refresh; t.Loaded() || wait > 0 && wait <= unloadedRetry {
		return wait
	}
	return unloadedRetry
}

// Run refreshes the table every Def.refresh until ctx ends; a table not
// loaded yet is retried at least every unloadedRetry.
func (t *Table) Run(ctx context.Context) {
	for {
		wait := t.nextWait()
		if wait <= 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
			if err := t.Refresh(ctx); err != nil && ctx.Err() == nil && t.OnError != nil {
				t.OnError(t, err)
			}
		}
	}
}
