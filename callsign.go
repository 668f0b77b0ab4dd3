// Package callsign holds the domain types of callsign, self-hosted API
// identity and per-user API analytics: apps and their tokens, admin tokens,
// signing keys, the storage interfaces the server consumes, and the Error
// type whose codes every HTTP answer carries.
//
// The package imports only the standard library. Storage engines (package
// sqlite), HTTP handlers (package httpapi) and the binary (cmd/callsign)
// depend on it; it depends on none of them.
package callsign

import (
	"errors"
	"fmt"
)

// Error codes. They are stable, snake_case and machine-readable: clients
// switch on them. The HTTP status each maps to is chosen in package httpapi
// and nowhere else.
const (
	EInternal         = "internal"        // unexpected failure; details are logged, not returned
	ENotFound         = "not_found"       // the named resource does not exist (or is not yours)
	EInvalid          = "invalid_request" // the request is well-formed but a value is not acceptable
	EUnauthorized     = "unauthorized"    // missing or unknown credentials, or a wrong secret
	EForbidden        = "forbidden"       // valid credentials that may not do this
	EMalformedToken   = "malformed_token" // a token that does not have the shape of its kind
	EBadChecksum      = "bad_checksum"    // a token whose checksum does not match (a typo)
	EWrongTokenKind   = "wrong_token_kind"
	ERevoked          = "revoked"      // the token, secret or app was revoked
	EAppMismatch      = "app_mismatch" // the secret and the public token belong to different apps
	EInvalidUserID    = "invalid_user_id"
	EMissingField     = "missing_field"
	EUnknownField     = "unknown_field"
	EDuplicateField   = "duplicate_field"
	EInvalidJSON      = "invalid_json"
	ETrailingData     = "trailing_data"
	EBodyTooLarge     = "body_too_large"
	EUnsupportedMedia = "unsupported_media_type"
	ERateLimited      = "rate_limited"
	EOriginNotAllowed = "origin_not_allowed"
	EMethodNotAllowed = "method_not_allowed"
	EConflict         = "conflict"
)

// Error is the error every callsign service returns for a condition the
// caller can act on. Code is one of the E* constants; Message is a human
// sentence that never contains a secret.
type Error struct {
	Code    string
	Message string
}

// Error implements the error interface.
func (e *Error) Error() string { return fmt.Sprintf("callsign: %s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the *Error in err's chain, "" for a nil err
// and EInternal for any other error.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// ErrorMessage returns the message of the *Error in err's chain, and a
// generic sentence for any other error so that internal details never reach
// a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "An internal error occurred; it has been logged."
}
