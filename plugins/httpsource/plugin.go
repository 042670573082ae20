package httpsource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/envelope"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/parse/schema"
	"github.com/caracal-sec/caracal/plugins/settings"
)

const defaultMaxBody = 1 << 20

func inputSpec() *service.ConfigSpec {
	return service.NewConfigSpec().
		Categories("Network").
		Summary("Webhook sources: POST /http/<path> on one listener, authenticated, decompressed and split into events.").
		Description(`Each source is a URL that a SaaS tool or log shipper posts to, as it would to Panther's HTTP source. A request body may be one JSON object, JSON lines, a JSON array, an object wrapping a `+"`Records`"+` array (CloudTrail), XML elements or plain text lines (a body that opens like JSON or XML but is not is read as lines: syslog's `+"`<34>`"+` lines); gzip, zstd and zlib are detected from the body's magic bytes, and raw deflate from `+"`Content-Encoding: deflate`"+` (a header counts only for a body without magic bytes that is not text; brotli and other encodings are 415). The request's events form one batch, and the request is answered 200 only once the output acknowledged all of them (the broker has them), 503 with Retry-After otherwise. Answers: 400 malformed, 401 auth, 404 unknown source, 405 not POST, 413 too large, 415 unsupported encoding. `+"`GET /`"+` shows a status page.`).
		Fields(
			service.NewStringField("address").
				Description("Listen address.").Default("127.0.0.1:8000").Example("0.0.0.0:8000"),
			service.NewDurationField("timeout").
				Description("How long a request waits for the broker's acknowledgment before it is answered 503.").
				Default("30s"),
			service.NewIntField("max_buffered_bytes").
				Description("Bytes all requests may hold at once: bodies being read (each counted at its Content-Length, or its source's max_body_bytes when it has none; an HMAC source's as it arrives, its sender being known only once it is read) and decompressed events until the broker has them, each event also counted 512 bytes for its message in the pipeline (a request with more events than that allows is answered 413). A request beyond it is answered 503 with Retry-After at once, so however many connections senders open, the process does not buffer more. Must be at least each source's max_body_bytes + max_decompressed_bytes.").
				Default(DefaultMaxBufferedBytes).Advanced(),
			service.NewDurationField("read_timeout").
				Description("Time a sender has to send a whole request, headers and body; a sender that stalls is cut off and its buffer freed. Idle keep-alive connections are closed after 2 minutes.").
				Default(DefaultReadTimeout.String()).Advanced(),
			service.NewStringEnumField("status_details", StatusDetailsLoopback, StatusDetailsAll, StatusDetailsNone).
				Description("Who sees the detail of `GET /` (each source's path, auth type, counts and last refusal; the broker and lake) and the reason of a 503 from `/readyz`: `loopback`, clients on this host not going through a proxy (a request with a Forwarded, X-Forwarded-For or X-Real-IP header is not one); `all`; or `none`. Others get `{\"status\":\"ok\"}`: a source's path is all that guards a source with auth none, and the page lists it.").
				Default(StatusDetailsLoopback).Advanced(),
			service.NewObjectField("tls",
				service.NewBoolField("enabled").Description("Serve HTTPS.").Default(false),
				service.NewStringField("cert_file").Description("PEM certificate (chain); re-read when it changes.").Default("").Example("/etc/caracal/tls.crt"),
				service.NewStringField("key_file").Description("PEM private key; re-read when it changes.").Default("").Example("/etc/caracal/tls.key"),
			).Description("TLS for the listener (Panther's sources are HTTPS only)."),
			service.NewObjectListField("sources",
				service.NewStringField("id").Description("Unique source id, recorded as p_source_id.").Example("okta-prod"),
				service.NewStringField("label").Description("Human name, recorded as p_source_label.").Default(""),
				service.NewStringField("path").Description("The source's URL is /http/<path>.").Example("okta"),
				service.NewStringListField("log_types").
					Description("Log types to classify this source's events among; empty tries all known types. When one is a CSV schema with hasHeader: true and no columns, a text body's first line (its CSV header) travels with each of its events, and that schema names its columns from it.").
					Default([]string{}).Example([]string{"AWS.CloudTrail"}),
				service.NewObjectField("auth",
					service.NewStringEnumField("type", AuthSharedSecret, AuthHMAC, AuthBearer, AuthBasic, AuthNone).
						Description("How senders authenticate. `none` accepts anyone: only for trying Caracal on loopback."),
					service.NewStringField("header").Description("Header carrying the secret (shared_secret) or the body's HMAC (hmac).").Default("").Example("X-Signature"),
					service.NewStringField("secret").Description("Shared secret or HMAC key; use ${ENV_VAR}.").Default("").Secret(),
					service.NewStringField("secret_file").Description("Read the secret (or token, or password) from this file instead (trailing newline trimmed).").Default("").Example("/run/secrets/okta_hmac"),
					service.NewStringField("algorithm").Description("HMAC algorithm: sha256 or sha1.").Default("sha256"),
					service.NewStringField("token").Description("Bearer token; use ${ENV_VAR}.").Default("").Secret(),
					service.NewStringField("username").Description("Basic auth user.").Default(""),
					service.NewStringField("password").Description("Basic auth password; use ${ENV_VAR}.").Default("").Secret(),
				).Description("Authentication of the source's senders."),
				service.NewIntField("max_body_bytes").
					Description("Largest accepted request, headers included; larger → 413.").Default(defaultMaxBody),
				service.NewIntField("max_decompressed_bytes").
					Description("Largest decompressed body (decompression bombs → 413); 0 means 16 × max_body_bytes.").Default(0),
				service.NewIntField("max_event_bytes").
					Description("Largest event once the body is decompressed and split; a request holding a larger one → 413. At most 1 MiB (1048576, Panther's limit too): an event travels through the broker, normalized and perhaps as a classification failure, and must fit in its records.").
					Default(MaxEventBytes).Advanced(),
				service.NewDurationField("alert_if_silent_for").
					Description("Raise a SYSTEM_ERROR alert when the source received nothing for this long (and a notice when data returns); 0 disables.").Default("24h"),
				service.NewObjectField("rate_limit",
					service.NewFloatField("events_per_second").Description("Events a second accepted from the source; 0: unlimited.").Default(0),
					service.NewFloatField("bytes_per_second").Description("Decompressed bytes a second accepted from the source; 0: unlimited.").Default(0),
				).Description("Per-source rate limit; beyond it requests are answered 429 with Retry-After.").Advanced(),
			).Description("The webhook sources."),
		)
}

func init() {
	service.MustRegisterBatchInput("caracal_http", inputSpec(), newInput)
}

type input struct {
	addr        string
	maxBuffered int
	readTimeout time.Duration
	details     string
	probe       *kafka.Probe
	metrics     *metrics // flushed on Close
	server      *Server
	sources     []*Source
	timeout     time.Duration
	res         *service.Resources
	tlsCert     string
	tlsKey      string
	tlsOn       bool
}

func newInput(conf *service.ParsedConfig, res *service.Resources) (service.BatchInput, error) {
	in := &input{res: res}
	var err error
	if in.addr, err = conf.FieldString("address"); err != nil {
		return nil, err
	}
	if in.timeout, err = conf.FieldDuration("timeout"); err != nil {
		return nil, err
	}
	if in.maxBuffered, err = conf.FieldInt("max_buffered_bytes"); err != nil {
		return nil, err
	}
	if in.readTimeout, err = conf.FieldDuration("read_timeout"); err != nil {
		return nil, err
	}
	if in.details, err = conf.FieldString("status_details"); err != nil {
		return nil, err
	}
	if in.tlsOn, err = conf.FieldBool("tls", "enabled"); err != nil {
		return nil, err
	}
	if in.tlsCert, err = conf.FieldString("tls", "cert_file"); err != nil {
		return nil, err
	}
	if in.tlsKey, err = conf.FieldString("tls", "key_file"); err != nil {
		return nil, err
	}
	list, err := conf.FieldObjectList("sources")
	if err != nil {
		return nil, err
	}
	for _, sc := range list {
		src, err := parseSource(sc)
		if err != nil {
			return nil, err
		}
		in.sources = append(in.sources, src)
	}
	if err := checkSources(in.sources, int64(in.maxBuffered)); err != nil {
		return nil, err
	}
	markFirstLineSources(in.sources, settings.From(res).SchemasDir)
	return in, nil
}

// markFirstLineSources sets FirstLine on the sources whose log types (all
// of them for a source that names none) include a CSV schema taking its
// header from the first line. Schemas that do not load are the process
// stage's to report; here they only count as none.
func markFirstLineSources(sources []*Source, schemasDir string) {
	schemas, _ := schema.LoadDir(schemasDir)
	for _, s := range schemas {
		if !s.HeaderFromFirstLine() {
			continue
		}
		for _, src := range sources {
			src.FirstLine = src.FirstLine || len(src.LogTypes) == 0 || slices.Contains(src.LogTypes, s.Schema)
		}
	}
}

func parseSource(c *service.ParsedConfig) (*Source, error) {
	s := &Source{}
	str := func(into *string, path ...string) error {
		v, err := c.FieldString(path...)
		*into = v
		return err
	}
	for _, f := range []struct {
		into *string
		path []string
	}{
		{&s.ID, []string{"id"}}, {&s.Label, []string{"label"}}, {&s.Path, []string{"path"}},
		{&s.Auth.Type, []string{"auth", "type"}}, {&s.Auth.Header, []string{"auth", "header"}},
		{&s.Auth.Secret, []string{"auth", "secret"}}, {&s.Auth.Algorithm, []string{"auth", "algorithm"}},
		{&s.Auth.Token, []string{"auth", "token"}}, {&s.Auth.Username, []string{"auth", "username"}},
		{&s.Auth.Password, []string{"auth", "password"}},
	} {
		if err := str(f.into, f.path...); err != nil {
			return nil, err
		}
	}
	var err error
	if s.LogTypes, err = c.FieldStringList("log_types"); err != nil {
		return nil, err
	}
	secretFile, err := c.FieldString("auth", "secret_file")
	if err != nil {
		return nil, err
	}
	if secretFile != "" {
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, fmt.Errorf("source %s: secret_file: %w", s.ID, err)
		}
		secret := strings.TrimRight(string(b), "\r\n")
		switch s.Auth.Type {
		case AuthBearer:
			s.Auth.Token = secret
		case AuthBasic:
			s.Auth.Password = secret
		default:
			s.Auth.Secret = secret
		}
	}
	if s.SilentFor, err = c.FieldDuration("alert_if_silent_for"); err != nil {
		return nil, err
	}
	if s.EventsPerSecond, err = c.FieldFloat("rate_limit", "events_per_second"); err != nil {
		return nil, err
	}
	if s.BytesPerSecond, err = c.FieldFloat("rate_limit", "bytes_per_second"); err != nil {
		return nil, err
	}
	maxBody, err := c.FieldInt("max_body_bytes")
	if err != nil {
		return nil, err
	}
	maxDecompressed, err := c.FieldInt("max_decompressed_bytes")
	if err != nil {
		return nil, err
	}
	maxEvent, err := c.FieldInt("max_event_bytes")
	if err != nil {
		return nil, err
	}
	s.MaxBodyBytes = int64(maxBody)
	s.MaxInflated = maxInflated(s.MaxBodyBytes, int64(maxDecompressed))
	s.MaxEventBytes = maxEvent
	if s.Label == "" {
		s.Label = s.ID
	}
	return s, s.Validate()
}

func (in *input) Connect(ctx context.Context) error {
	if in.server != nil {
		return nil
	}
	st := settings.From(in.res)
	status := func() Status {
		out := Status{Version: in.res.EngineVersion(), Broker: "embedded", Lake: st.LakeURL}
		if !st.Embedded {
			out.Broker = strings.Join(st.Brokers, ",")
		}
		return out
	}
	srv, err := NewServer(in.sources, in.timeout, status)
	if err != nil {
		return err
	}
	in.metrics = newMetrics(in.res.Metrics())
	srv.SetObserver(in.metrics)
	srv.SetLimits(int64(in.maxBuffered), in.readTimeout)
	srv.SetStatusDetails(in.details)
	in.probe = kafka.NewProbe(st.Brokers)
	srv.SetReadiness(func(ctx context.Context) error {
		select {
		case <-st.Draining: // SIGTERM: take no new senders while draining
			return errors.New("stopping")
		default:
		}
		return in.probe.Check(ctx)
	})
	scheme := "http"
	if in.tlsOn {
		tc, err := NewTLSConfig(in.tlsCert, in.tlsKey)
		if err != nil {
			return err
		}
		srv.SetTLS(tc)
		scheme = "https"
	}
	if err := srv.Listen(in.addr); err != nil {
		return err
	}
	in.server = srv
	in.res.Logger().Infof("Webhook sources listening on %s://%s/http/<path>", scheme, srv.Addr())
	for _, s := range in.sources {
		if s.Auth.Type == AuthNone {
			in.res.Logger().Warnf("Source %s accepts unauthenticated requests (auth: none): use it only on loopback", s.ID)
		}
	}
	return nil
}

func (in *input) ReadBatch(ctx context.Context) (service.MessageBatch, service.AckFunc, error) {
	if in.server == nil {
		return nil, nil, service.ErrNotConnected
	}
	var req *Request
	select {
	case req = <-in.server.Requests():
	case <-in.server.closing:
		return nil, nil, service.ErrEndOfInput
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	if req.System != nil {
		b, err := json.Marshal(req.System)
		if err != nil {
			return nil, nil, err
		}
		m := service.NewMessage(b)
		m.MetaSetMut(envelope.MetaSourceID, req.Source.ID)
		m.MetaSetMut(envelope.MetaTopic, envelope.TopicSystemError)
		m.MetaSetMut(envelope.MetaKey, req.Source.ID)
		return service.MessageBatch{m}, func(context.Context, error) error { return nil }, nil
	}
	batch := eventMessages(req)
	return batch, func(ctx context.Context, err error) error {
		req.Ack(err)
		return nil
	}, nil
}

// eventMessages are a request's events as messages for caracal.raw. Their
// metadata is the request's, so they share it: each is a copy of one
// message that holds it (Benthos copies metadata only when a copy's is
// changed), not a new message given the same eight values.
func eventMessages(req *Request) service.MessageBatch {
	meta := service.NewMessage(nil)
	meta.MetaSetMut(envelope.MetaSourceID, req.Source.ID)
	meta.MetaSetMut(envelope.MetaSourceLabel, req.Source.Label)
	meta.MetaSetMut(envelope.MetaLogTypes, strings.Join(req.Source.LogTypes, ","))
	meta.MetaSetMut(envelope.MetaReceivedAt, envelope.FormatTime(req.ReceivedAt))
	meta.MetaSetMut(envelope.MetaRequestID, req.ID)
	meta.MetaSetMut(envelope.MetaTopic, envelope.TopicRaw)
	meta.MetaSetMut(envelope.MetaKey, req.ID)
	if len(req.Header) > 0 {
		meta.MetaSetMut(envelope.MetaHeader, string(req.Header))
	}
	if len(req.FirstLine) > 0 {
		meta.MetaSetMut(envelope.MetaFirstLine, string(req.FirstLine))
	}
	batch := make(service.MessageBatch, len(req.Events))
	for i, ev := range req.Events {
		m := meta.Copy()
		m.SetBytes(ev)
		batch[i] = m
	}
	return batch
}

func (in *input) Close(ctx context.Context) error {
	if in.probe != nil {
		in.probe.Close()
	}
	if in.server == nil {
		return nil
	}
	err := in.server.Close(ctx)
	in.metrics.close()
	return err
}
