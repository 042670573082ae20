package httpsource

import (
	"maps"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"

	"github.com/caracal-sec/caracal/plugins/suggest"
	"github.com/caracal-sec/caracal/plugins/yamlnode"
)

// Warning is a lint finding in a config file; Error marks a mistake rather
// than a risk.
type Warning struct {
	Line    int
	Message string
	Error   bool
}

// SourceIDs lists the source ids of a caracal_http config.
func SourceIDs(http *yaml.Node) []string {
	var ids []string
	if sources := yamlnode.Value(http, "sources"); sources != nil {
		for _, s := range sources.Content {
			if id := yamlnode.Value(s, "id"); id != nil {
				ids = append(ids, id.Value)
			}
		}
	}
	return ids
}

// LintSources checks a caracal_http config (the component's YAML): it
// finds sources that accept unauthenticated requests (auth type none:
// allowed, but worth a warning) and, when logTypes (those with a schema) is
// given, sources naming a log type without a schema: every event of theirs
// would fail classification; a max_event_bytes over MaxEventBytes; a
// source whose one request may hold more than max_buffered_bytes or uses
// another's path (checkSources); and what Source.Validate rejects at start
// (no id or path, an auth type without its secret).
func LintSources(http *yaml.Node, logTypes map[string]bool) []Warning {
	var out []Warning
	sources := yamlnode.Value(http, "sources")
	if sources == nil || sources.Kind != yaml.SequenceNode {
		return nil
	}
	buffered, ok0 := intValue(yamlnode.Value(http, "max_buffered_bytes"), DefaultMaxBufferedBytes)
	var served []*Source // for checkPaths
	for _, s := range sources.Content {
		id := "?"
		if n := yamlnode.Value(s, "id"); n != nil {
			id = n.Value
		}
		body, ok1 := intValue(yamlnode.Value(s, "max_body_bytes"), defaultMaxBody)
		inflated, ok2 := intValue(yamlnode.Value(s, "max_decompressed_bytes"), 0)
		if ok0 && ok1 && ok2 {
			if err := checkBuffered(id, body, maxInflated(body, inflated), buffered); err != nil {
				out = append(out, Warning{Line: s.Line, Error: true, Message: err.Error()})
			}
		}
		auth := yamlnode.Value(s, "auth")
		if src := lintAuth(s, auth); src.Path != "" {
			if err := checkPaths(append(served, src)); err != nil {
				out = append(out, Warning{Line: yamlnode.Value(s, "path").Line, Error: true, Message: err.Error()})
			} else {
				served = append(served, src)
			}
		}
		typ := yamlnode.Value(auth, "type")
		if typ != nil && typ.Value == AuthNone {
			out = append(out, Warning{Line: typ.Line, Message: "source " + id + " accepts unauthenticated requests (auth: none); use shared_secret, hmac, bearer or basic outside loopback"})
		}
		// An auth type that is none of them is Benthos's to report: the
		// field is an enum.
		if typ != nil && slices.Contains([]string{AuthNone, AuthSharedSecret, AuthHMAC, AuthBearer, AuthBasic}, typ.Value) {
			if err := lintAuth(s, auth).Validate(); err != nil {
				out = append(out, Warning{Line: typ.Line, Error: true, Message: err.Error()})
			}
		}
		if n := yamlnode.Value(s, "max_event_bytes"); n != nil {
			if v, err := strconv.Atoi(n.Value); err == nil {
				if err := checkMaxEventBytes(id, v); err != nil {
					out = append(out, Warning{Line: n.Line, Error: true, Message: err.Error()})
				}
			}
		}
		if lts := yamlnode.Value(s, "log_types"); lts != nil && lts.Kind == yaml.SequenceNode && logTypes != nil {
			for _, lt := range lts.Content {
				if !logTypes[lt.Value] {
					out = append(out, Warning{Line: lt.Line, Error: true, Message: "source " + id + ": log type " + lt.Value +
						" has no schema, so every event would fail classification" + suggest.Hint(lt.Value, slices.Sorted(maps.Keys(logTypes)))})
				}
			}
		}
	}
	return out
}

// lintAuth is the source as the YAML gives it, for Source.Validate's
// checks of its id, path and auth. A secret_file counts as the secret,
// token or password it holds (it may exist only where Caracal runs), and
// max_event_bytes is left to its own check.
func lintAuth(s, auth *yaml.Node) *Source {
	value := func(n *yaml.Node, key string) string {
		if c := yamlnode.Value(n, key); c != nil {
			return c.Value
		}
		return ""
	}
	a := Auth{Type: value(auth, "type"), Header: value(auth, "header"), Secret: value(auth, "secret"),
		Algorithm: value(auth, "algorithm"), Token: value(auth, "token"), Username: value(auth, "username"), Password: value(auth, "password")}
	if value(auth, "secret_file") != "" {
		a.Secret, a.Token, a.Password = "(secret_file)", "(secret_file)", "(secret_file)"
	}
	return &Source{ID: value(s, "id"), Path: value(s, "path"), Auth: a}
}

// intValue is n's integer, or def when n is absent; ok is false when it is
// not a plain integer (an ${ENV} reference: not checked).
func intValue(n *yaml.Node, def int64) (_ int64, ok bool) {
	if n == nil {
		return def, true
	}
	v, err := strconv.ParseInt(n.Value, 10, 64)
	return v, err == nil
}
