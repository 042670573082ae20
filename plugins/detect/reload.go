package detect

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"
)

// Reloader keeps an Engine current with the rule files in a directory.
// A new engine is built off to the side and swapped in atomically, so
// batches in flight finish with the rules they started with and no event
// is dropped. A file that no longer compiles keeps its last good version
// (and Reload reports why); a deleted file's rule goes away.
type Reloader struct {
	dir    string
	engine atomic.Pointer[Engine]
	// per file: content hash and the last rule that compiled from it
	files map[string]loaded
}

type loaded struct {
	sum  [32]byte
	rule *Rule
}

// NewReloader loads dir; a rule that does not compile at start is an error
// (there is no good version to keep).
func NewReloader(dir string) (*Reloader, error) {
	r := &Reloader{dir: dir, files: map[string]loaded{}}
	if _, errs := r.scan(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := r.swap(); err != nil {
		return nil, err
	}
	return r, nil
}

// Engine returns the current engine.
func (r *Reloader) Engine() *Engine { return r.engine.Load() }

// Reload rereads the directory. It reports whether the rules changed, and
// the files that failed to compile (whose previous version stays).
func (r *Reloader) Reload() (bool, []error) {
	changed, errs := r.scan()
	if changed {
		if err := r.swap(); err != nil {
			return false, append(errs, err)
		}
	}
	return changed, errs
}

// scan rereads every rule file whose content changed.
func (r *Reloader) scan() (changed bool, errs []error) {
	seen := map[string]bool{}
	err := eachYAML(r.dir, func(path string, data []byte) error {
		seen[path] = true
		sum := sha256.Sum256(data)
		prev, ok := r.files[path]
		if ok && prev.sum == sum {
			return nil
		}
		rule, err := ParseRule(path, data)
		if err != nil {
			errs = append(errs, err)
			if ok {
				// Remember the bad content so the error is reported once,
				// but keep serving the last good rule.
				r.files[path] = loaded{sum: sum, rule: prev.rule}
			}
			return nil
		}
		r.files[path] = loaded{sum: sum, rule: rule}
		changed = true
		return nil
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("rules in %s: %w", r.dir, err))
		return changed, errs
	}
	for path := range r.files {
		if !seen[path] {
			delete(r.files, path)
			changed = true
		}
	}
	return changed, errs
}

func (r *Reloader) swap() error {
	var rules []*Rule
	byID := map[string]string{}
	paths := make([]string, 0, len(r.files))
	for p := range r.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		rule := r.files[p].rule
		if rule == nil {
			continue
		}
		if prev, dup := byID[rule.RuleID]; dup {
			return fmt.Errorf("%s: RuleID %s already defined in %s; keeping the previous rules", p, rule.RuleID, prev)
		}
		byID[rule.RuleID] = p
		rules = append(rules, rule)
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].RuleID < rules[j].RuleID })
	r.engine.Store(NewEngine(rules))
	return nil
}

// Watch reloads every interval until ctx ends, calling report after each
// reload that changed the rules or failed.
func (r *Reloader) Watch(ctx context.Context, interval time.Duration, report func(changed bool, n int, errs []error)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, errs := r.Reload()
			if changed || len(errs) > 0 {
				report(changed, len(r.Engine().Rules()), errs)
			}
		}
	}
}
