package settings

import (
	"path/filepath"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"
)

// CARACAL_DATA_DIR places the local state of a root config that does not
// set data_dir itself (the field's default must not win over it), and the
// default lake follows it; a data_dir the config sets wins.
func TestDataDirFromTheEnvironment(t *testing.T) {
	t.Setenv(envDataDir, "/srv/caracal")
	t.Setenv(envLakeURL, "")
	spec := service.NewConfigSpec().Fields(Fields()...)
	for yaml, want := range map[string]string{
		"partitions: 3\n":               "/srv/caracal",
		"data_dir: /var/lib/x\n":        "/var/lib/x",
		"data_dir: ''\npartitions: 3\n": "/srv/caracal",
	} {
		conf, err := spec.ParseYAML(yaml, nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Parse(conf)
		if err != nil {
			t.Fatal(err)
		}
		if s.DataDir != want || s.LakeURL != filepath.Join(want, "lake") {
			t.Errorf("%q: data dir %q, lake %q; want %q", yaml, s.DataDir, s.LakeURL, want)
		}
	}
}
