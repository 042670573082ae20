package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/caracal-sec/caracal/plugins/alert"
	"github.com/caracal-sec/caracal/plugins/kafka"
	"github.com/caracal-sec/caracal/plugins/settings"
	"github.com/caracal-sec/caracal/plugins/suggest"
)

// Stages in pipeline order; each is pipelines/<stage>.yaml.
var allStages = []string{"ingest", "process", "detect", "alert", "lake"}

// rewriteArgs turns `caracal` and `caracal run [flags]` into Benthos streams
// mode over config.yaml and the stage pipelines, noting the stages in rt;
// every other command is passed through unchanged.
func (rt *runtime) rewriteArgs(args []string) ([]string, error) {
	if len(args) > 1 && args[1] != "run" {
		return streamsWithoutAPI(args), nil
	}
	fs := flag.NewFlagSet("caracal run", flag.ContinueOnError)
	config := fs.String("config", "config.yaml", "root config: http, logger, metrics and the caracal section")
	fs.StringVar(config, "c", "config.yaml", "shorthand for --config")
	dir := fs.String("pipelines", "pipelines", "directory of the stage pipelines (<stage>.yaml)")
	stages := fs.String("stages", strings.Join(allStages, ","), "comma-separated stages to run in this process: "+strings.Join(allStages, ","))
	chilled := fs.Bool("chilled", false, "keep running despite lint errors in the configs")
	var rest []string
	if len(args) > 2 {
		rest = args[2:]
	}
	if err := fs.Parse(rest); err != nil {
		return nil, err
	}
	out := []string{args[0]}
	if *chilled {
		out = append(out, "--chilled")
	}
	out = append(out, "streams", "--no-api")
	if _, err := os.Stat(*config); err == nil {
		out = append(out, "-o", *config)
	} else if *config != "config.yaml" {
		return nil, fmt.Errorf("config %s: %w", *config, err)
	}
	for _, s := range settings.SplitList(*stages) {
		p := filepath.Join(*dir, s+".yaml")
		if _, err := os.Stat(p); err != nil {
			hint := ""
			if !slices.Contains(allStages, s) {
				hint = suggest.Hint(s, allStages)
			}
			return nil, fmt.Errorf("stage %q: %w%s", s, err, hint)
		}
		out = append(out, p)
		rt.stages = append(rt.stages, s)
		if s == "ingest" {
			rt.ingestPipeline = p
		}
	}
	if p, err := rt.brokerStream(); err != nil {
		fmt.Fprintf(os.Stderr, "Warning: /ready will not follow the broker: %v\n", err)
	} else {
		out = append(out, p)
	}
	return append(out, fs.Args()...), nil
}

// brokerStream writes the `broker` stream's pipeline to a temporary
// directory: its caracal_broker_ready input makes /ready answer 503 while no
// broker answers, which the Kafka components alone do not (see
// plugins/kafka/ready.go).
func (rt *runtime) brokerStream() (string, error) {
	removeStaleRunDirs(os.TempDir())
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", runDirPrefix, os.Getpid()))
	if err != nil {
		return "", err
	}
	rt.tempDir = dir
	p := filepath.Join(dir, "broker.yaml")
	return p, os.WriteFile(p, []byte("input:\n  caracal_broker_ready: {}\noutput:\n  drop: {}\n"), 0o644)
}

const runDirPrefix = "caracal-run-"

// removeStaleRunDirs removes the broker stream directories of processes
// that are gone: one killed while it waited for its broker, or stopped by
// a config error before its streams were built, left its own behind (a
// unit restarting in a loop would leave one per start).
func removeStaleRunDirs(tmp string) {
	dirs, _ := filepath.Glob(filepath.Join(tmp, runDirPrefix+"*"))
	for _, d := range dirs {
		pidText, _, ok := strings.Cut(strings.TrimPrefix(filepath.Base(d), runDirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d) // another user's is not ours to remove, and stays
		}
	}
}

// registerBrokerReady registers caracal_broker_ready. Benthos builds the
// streams once it has read every stream's file, so the temporary one is
// removed then: a process killed later leaves nothing behind.
func (rt *runtime) registerBrokerReady() {
	service.MustRegisterInput("caracal_broker_ready", kafka.ReadyInputSpec(),
		func(_ *service.ParsedConfig, res *service.Resources) (service.Input, error) {
			rt.removeTemp()
			return kafka.NewReadyInput(res), nil
		})
}

func (rt *runtime) removeTemp() {
	rt.tempOnce.Do(func() {
		if rt.tempDir != "" {
			os.RemoveAll(rt.tempDir)
		}
	})
}

// mainSchema is Benthos's root config schema plus the `caracal:` section.
func mainSchema() *service.ConfigSchema {
	return service.GlobalEnvironment().FullConfigSchema(version, dateBuilt).
		Field(service.NewObjectField(settings.Section, settings.Fields(destinationFields()...)...).
			Description("Caracal's settings: the broker, the lake, topic defaults and alert destinations.").
			Optional())
}

// streamsWithoutAPI adds --no-api to `caracal streams` (the way to run a
// stage on its own) unless the command line sets it: Benthos's streams API
// on http.address, which the deploy examples bind to 0.0.0.0 for
// /metrics, lets anyone who reaches it create streams, and a stream can
// read and write any file the process can. --no-api=false keeps it.
func streamsWithoutAPI(args []string) []string {
	i := commandIndex(args)
	if i < 1 || args[i] != "streams" {
		return args
	}
	for _, a := range args[i+1:] {
		if name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "="); strings.HasPrefix(a, "-") && name == "no-api" {
			return args
		}
	}
	return slices.Concat(args[:i+1], []string{"--no-api"}, args[i+1:])
}

// rootValueFlags are Benthos's root flags that take a value as the next
// argument.
var rootValueFlags = []string{"config", "c", "log.level", "set", "s", "resources", "r", "env-file", "e", "templates", "t"}

// commandIndex is where the subcommand stands in args: the first argument
// after the root flags (and their values), or 0 when there is none. An
// argument after the subcommand that reads "streams" (a directory such
// commands are given) is no subcommand.
func commandIndex(args []string) int {
	for i := 1; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			return i
		}
		if a == "--" {
			return 0
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && slices.Contains(rootValueFlags, name) {
			i++ // its value
		}
	}
	return 0
}

// runtime holds what `caracal run` starts besides the streams.
type runtime struct {
	stages []string // those `caracal run` runs
	// ingestPipeline is the ingest stage's file, when it runs: its
	// address is answered while the broker is awaited (waiting.go).
	ingestPipeline string
	embedded       *kafka.Embedded
	stop           context.CancelFunc // ends the hanging-transaction watch
	tempDir        string             // holds the broker stream's pipeline
	tempOnce       sync.Once
	stopMu         sync.Mutex
	atStop         []func() string // settings.AtStop
}

// registerAtStop is settings.AtStop.
func (rt *runtime) registerAtStop(left func() string) {
	rt.stopMu.Lock()
	rt.atStop = append(rt.atStop, left)
	rt.stopMu.Unlock()
}

// exitCode turns a clean exit into 1 when a stage left work undone,
// saying what it left.
func (rt *runtime) exitCode(code int, stderr io.Writer) int {
	rt.stopMu.Lock()
	defer rt.stopMu.Unlock()
	undone := false
	for _, left := range rt.atStop {
		if what := left(); what != "" {
			fmt.Fprintf(stderr, "caracal: stopped with work unfinished: %s\n", what)
			undone = true
		}
	}
	if code == 0 && undone {
		return 1
	}
	return code
}

// onConfigParse resolves the `caracal:` section once the root config is
// read, before any stream starts: it starts the embedded broker when no
// cluster is configured, creates missing topics and shares the settings.
func (rt *runtime) onConfigParse(pConf *service.ParsedConfig) error {
	s := settings.Default()
	if pConf.Contains(settings.Section) {
		var err error
		if s, err = settings.Parse(pConf.Namespace(settings.Section)); err != nil {
			return fmt.Errorf("config caracal: %w", err)
		}
	}
	// A destination missing a setting would stop the alert stage after
	// the others started; say so before anything starts.
	if slices.Contains(rt.stages, "alert") {
		if _, err := alert.Destinations(s, nil); err != nil {
			return fmt.Errorf("config %w (`caracal lint` shows the line)", err)
		}
	}
	log := pConf.Resources().Logger()
	if len(s.Brokers) == 0 {
		dir := filepath.Join(s.DataDir, "broker")
		e, err := kafka.StartEmbedded(dir, s.Partitions)
		if err != nil {
			return err
		}
		rt.embedded = e
		e.OnDiskFull(func(low error) {
			if low != nil {
				log.Errorf("Embedded broker: refusing events until there is space (producers retry, the HTTP input answers 503): %v", low)
			} else {
				log.Infof("Embedded broker: disk space is back, taking events again")
			}
		})
		s.Brokers, s.Embedded = e.Addrs, true
		// Commands such as `caracal alerts unsuppress` find it here.
		if err := os.WriteFile(filepath.Join(dir, embeddedAddressFile), []byte(strings.Join(e.Addrs, ",")), 0o644); err != nil {
			log.Warnf("Could not record the embedded broker's address: %v", err)
		}
		log.Infof("Embedded broker on %s, log in %s (set CARACAL_BROKERS to use a Redpanda/Kafka cluster)", strings.Join(e.Addrs, ","), dir)
	} else {
		log.Infof("Broker cluster %s", strings.Join(s.Brokers, ","))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	topics := kafka.DefaultTopics(s.Partitions, s.Retention)
	var warned time.Time
	var waiting *waitingListener
	err := kafka.EnsureTopicsWaiting(ctx, s.Brokers, s.ReplicationFactor, topics, func(err error) {
		if waiting == nil && rt.ingestPipeline != "" {
			var lerr error
			if waiting, lerr = listenWhileWaiting(rt.ingestPipeline); lerr != nil {
				log.Warnf("Could not answer on the ingest address while waiting for the broker: %v", lerr)
				rt.ingestPipeline = "" // tried once
			} else {
				log.Infof("Answering 503 (Retry-After) on the ingest address until the broker is reachable")
			}
		}
		if time.Since(warned) < 10*time.Second {
			return // a refused connection fails at once: say it every 10 s
		}
		warned = time.Now()
		log.Warnf("Waiting for the broker at %s (caracal.brokers, CARACAL_BROKERS) to create Caracal's topics: %v", strings.Join(s.Brokers, ","), err)
	})
	waiting.close() // the HTTP input listens there next
	if _, ok := errors.AsType[*kafka.RefusalError](err); ok {
		return fmt.Errorf("config caracal: %w", err)
	}
	if err != nil {
		return fmt.Errorf("no broker at %s answered in 2 minutes (is it running and reachable? caracal.brokers or CARACAL_BROKERS names it; empty runs the embedded one): %w", strings.Join(s.Brokers, ","), err)
	}
	report, err := kafka.CheckTopics(ctx, s.Brokers, topics)
	if err != nil {
		log.Warnf("Could not read the topics' settings (max.message.bytes, cleanup.policy, partitions): %v", err)
	}
	if small := report.SmallRecords; len(small) > 0 {
		log.Warnf("Topics taking records under %d bytes: %s. An event near max_event_bytes grows past that once normalized, and a record its topic refuses stops the stage producing it: set max.message.bytes=%d on them (kafka-configs.sh --alter --entity-type topics --add-config, or rpk topic alter-config)",
			kafka.MaxRecordBytes, strings.Join(small, ", "), kafka.MaxRecordBytes)
	}
	if loose := report.Uncompacted; len(loose) > 0 {
		log.Warnf("Topics that should be compacted but delete old records: %s. The alert stage restores its dedup windows, thresholds and alert numbers from them, so deleted records lose that state: repeated alerts, and alert ids reused that destinations take for duplicates. Set cleanup.policy=compact on them (kafka-configs.sh --alter --entity-type topics --entity-name <topic> --add-config cleanup.policy=compact, or rpk topic alter-config <topic> --set cleanup.policy=compact)",
			strings.Join(loose, ", "))
	}
	// (The embedded broker serves one process: one worker per stage.)
	if few := report.FewPartitions; len(few) > 0 && !s.Embedded {
		log.Warnf("Topics with fewer partitions than caracal.topic_partitions (%d): %s. Topics are created once, and the workers of a stage share its input topic's partitions, so workers beyond their number stay idle: add partitions (rpk topic add-partitions <topic> --num <more>, or kafka-topics.sh --alter --topic <topic> --partitions %d)",
			s.Partitions, strings.Join(few, ", "), s.Partitions)
	}
	// Every minute, abort transactions left hanging on Caracal's topics
	// (see docs/operations.md, Delivery guarantees): a hang on a data
	// partition shows nowhere else, its readers just wait.
	wctx, stop := context.WithCancel(context.Background())
	rt.stop = stop
	go kafka.WatchHanging(wctx, s.Brokers, time.Minute, func(aborted []string, err error) {
		if err != nil {
			log.Warnf("Looking for hanging transactions failed (aborted %v): %v", aborted, err)
			return
		}
		log.Errorf("Aborted hanging transactions on %s: their partitions were blocked for read_committed readers", strings.Join(aborted, ", "))
	})
	log.Infof("Lake at %s", s.LakeURL)
	s.Draining = drainOnSignal()
	s.AtStop = rt.registerAtStop
	settings.Put(pConf.Resources(), s)
	return nil
}

// drainOnSignal returns a channel closed at the first SIGTERM or SIGINT
// (Benthos also receives it and stops the streams).
func drainOnSignal() <-chan struct{} {
	ch := make(chan struct{})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-sig
		close(ch)
	}()
	return ch
}

func (rt *runtime) close() {
	rt.removeTemp()
	if rt.stop != nil {
		rt.stop()
	}
	if rt.embedded != nil {
		rt.embedded.Close()
	}
}
