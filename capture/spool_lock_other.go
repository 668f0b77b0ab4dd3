//go:build !unix

package capture

import "os"

// lockSpool does nothing where flock is not available: one directory must
// serve one Shipper at a time, as the documentation says.
func lockSpool(dir string) (*os.File, error) { return nil, nil }
