// Package replay remembers single-use credentials (a request token's jti, an
// HMAC signature) so that each is accepted once.
//
// A Store must never forget an entry before it expires: forgetting early
// would let a replay through. A Store that cannot take one more entry fails
// closed, refusing the new credential (ErrFull) rather than evicting a live
// one. Shared stores (for several API replicas) live in their engine's
// package and implement Store.
package replay

import (
	"context"
	"time"

	"github.com/callsignhq/callsign/auth"
)

// Errors returned by Store.Use.
var (
	ErrReplayed = auth.NewError(auth.CodeReplayed, "replay: credential already used")
	ErrFull     = auth.NewError(auth.CodeReplayStoreFull, "replay: store full; refusing new single-use credentials")
)

// Store records used credentials.
type Store interface {
	// Use records key as used until expires. It returns ErrReplayed if key
	// is already recorded and not expired, and ErrFull if it cannot record
	// it. Callers call Use only after every other check has passed, so that
	// a refused request does not burn its key.
	Use(ctx context.Context, key string, expires time.Time) error
}
