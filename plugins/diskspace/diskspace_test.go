package diskspace

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckKeepsTheReserve(t *testing.T) {
	dir := t.TempDir()
	free, err := Free(dir)
	if err != nil || free == 0 {
		t.Fatalf("Free(%s) = %d, %v", dir, free, err)
	}
	if err := Check(dir, 0, free/2); err != nil {
		t.Fatalf("half the free space as reserve: %v", err)
	}
	err = Check(dir, free/2, free/2+1<<30)
	var low *LowError
	if !errors.As(err, &low) || low.Path != dir || low.Need != free/2+free/2+1<<30 {
		t.Fatalf("a write past the reserve: %#v", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "free space on it") {
		t.Fatalf("the error should say where and what to do: %v", err)
	}
	if err := Check(dir+"/missing", 0, 0); err == nil {
		t.Fatal("a path that does not exist has no free space to tell")
	}
}
