//go:build !unix

package diskspace

import "math"

func free(string) (uint64, error) { return math.MaxUint64, nil }
