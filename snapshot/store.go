package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// store is a directory of snapshots of one topic, named
// <topic>.<UTC time>.snap so that names sort by age.
type store struct {
	dir, topic string
}

const stampLayout = "20060102T150405.000000000Z"

func (s store) path(at time.Time) string {
	return filepath.Join(s.dir, s.topic+"."+at.UTC().Format(stampLayout)+".snap")
}

// paths lists the topic's snapshots, newest first.
func (s store) paths() ([]string, error) {
	ents, err := os.ReadDir(s.dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshots: %w", err)
	}
	var out []string
	for _, e := range ents {
		stamp, ok := strings.CutPrefix(e.Name(), s.topic+".")
		if !ok || e.IsDir() {
			continue
		}
		if stamp, ok = strings.CutSuffix(stamp, ".snap"); !ok {
			continue
		}
		if _, err := time.Parse(stampLayout, stamp); err == nil {
			out = append(out, filepath.Join(s.dir, e.Name()))
		}
	}
	slices.Sort(out)
	slices.Reverse(out)
	return out, nil
}

// latest opens the newest snapshot that verifies and is of the topic; each
// one that does not is named to warn and left alone. Nil when there is none.
func (s store) latest(warn func(string)) (*reader, error) {
	paths, err := s.paths()
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		r, err := open(p)
		if err != nil {
			warn(fmt.Sprintf("ignoring snapshot: %v", err))
			continue
		}
		if r.head.Topic != s.topic {
			warn(fmt.Sprintf("ignoring snapshot %s: it is of topic %q", p, r.head.Topic))
			r.close()
			continue
		}
		return r, nil
	}
	return nil, nil
}

// prune removes all but the newest keep snapshots.
func (s store) prune(keep int) error {
	paths, err := s.paths()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range paths[min(keep, len(paths)):] {
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
