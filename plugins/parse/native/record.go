package native

// Record is one line's values in the order a parser found them, each a
// text or a list of texts. It stands in for a map per line: the process
// stage writes the values out in one pass and reuses the Record for the
// next line. A key set twice keeps its last value, as in a map.
type Record struct {
	values []Value
	tokens []string // the tokenizer's list, reused
}

// Value is one key's text, or its list when IsList.
type Value struct {
	Key    string
	Text   string
	List   []string
	IsList bool
}

// Reset empties the record for the next line.
func (r *Record) Reset() { r.values = r.values[:0] }

// Put adds a text value.
func (r *Record) Put(key, text string) { r.values = append(r.values, Value{Key: key, Text: text}) }

// PutList adds a list value.
func (r *Record) PutList(key string, list []string) {
	r.values = append(r.values, Value{Key: key, List: list, IsList: true})
}

// Values are the values in the order they were put.
func (r *Record) Values() []Value { return r.values }

// Any is the value as a decoded map holds it: a string, or a []any of strings.
func (v *Value) Any() any {
	if !v.IsList {
		return v.Text
	}
	out := make([]any, len(v.List))
	for i, s := range v.List {
		out[i] = s
	}
	return out
}

// Map is the record as a map, for the paths that type maps.
func (r *Record) Map() map[string]any {
	m := make(map[string]any, len(r.values))
	for i := range r.values {
		m[r.values[i].Key] = r.values[i].Any()
	}
	return m
}

// Truncate drops the values put after the first n.
func (r *Record) Truncate(n int) { r.values = r.values[:n] }

// fields tokenizes a line as Fields does into the record's reused list;
// the list is valid until the next line.
func (r *Record) fields(line []byte) ([]string, error) {
	f, err := appendFields(r.tokens[:0], line)
	if err == nil {
		r.tokens = f
	}
	return f, err
}
