package auth

import (
	"errors"
	"net/http"
)

// Failure codes. Every refusal carries one; they are stable and
// machine-readable. The code of a failure is precise (unknown_key is not
// bad_signature); what the caller is told may be coarser (see PublicCode),
// while logs and analytics keep the precise one.
const (
	CodeMissing           = "missing_credentials"   // no credentials where they are required
	CodeMalformed         = "malformed"             // credentials that do not parse
	CodeTooLarge          = "too_large"             // a token or header over its size limit
	CodeAmbiguous         = "ambiguous"             // credentials of several schemes, or repeated headers
	CodeSchemeNotAllowed  = "scheme_not_allowed"    // a scheme this route does not accept
	CodeUnknownKey        = "unknown_key"           // no key, session or secret for the presented id
	CodeBadSignature      = "bad_signature"         // the signature does not verify
	CodeAlgNotAllowed     = "alg_not_allowed"       // alg none, or not the algorithm of the key
	CodeUnsupported       = "unsupported"           // an unknown crit header, a typ of another kind
	CodeExpired           = "expired"               // past exp, past max age, or outside the signature window
	CodeNotYetValid       = "not_yet_valid"         // nbf or iat (or timestamp) in the future
	CodeInvalidClaims     = "invalid_claims"        // wrong iss or aud, missing required claim
	CodeUserMismatch      = "user_mismatch"         // a request token's uid does not own its sid
	CodeReplayed          = "replayed"              // a single-use token or signature seen before
	CodeReplayStoreFull   = "replay_store_full"     // cannot remember one more token: refused (fail closed)
	CodeBodyMismatch      = "body_mismatch"         // the signed digest of method/uri/body does not match
	CodeBodyTooLarge      = "body_too_large"        // the body to verify is over the limit
	CodeHeaderMissing     = "signed_header_missing" // a header that must be signed is absent or empty
	CodeHeaderInvalid     = "invalid_header"        // a signed value with CR/LF, or a repeated signed header
	CodeHostNotAllowed    = "host_not_allowed"      // the Host is not in the allow-list
	CodeInsufficientScope = "insufficient_scope"    // valid credentials without the scope the route needs
	CodeInternal          = "internal"              // a locator or store failed; details are logged
)

// Error is a coded authentication error. Scheme packages declare their
// sentinel errors as *Error values (hmacsig.ErrExpired, ...) so that
// callers test them with errors.Is and the middleware reads the code with
// Code.
type Error struct {
	code, msg string
}

// NewError returns an *Error with the given code and message. The message
// should start with the package name ("hmacsig: signature expired").
func NewError(code, msg string) *Error { return &Error{code: code, msg: msg} }

// Error implements error.
func (e *Error) Error() string { return e.msg }

// Code returns the failure code.
func (e *Error) Code() string { return e.code }

// Code returns the failure code of the *Error in err's chain, "" for nil and
// CodeInternal for any other error.
func Code(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.code
	}
	return CodeInternal
}

// PublicCode is the code a caller is told. An unknown key answers exactly
// as a bad signature does, so that callers cannot probe which keys exist.
func PublicCode(code string) string {
	if code == CodeUnknownKey {
		return CodeBadSignature
	}
	return code
}

// Status is the HTTP status of a failure code: 401 for missing or bad
// credentials, 403 for valid ones that may not do this, 413 for a body over
// the limit, 503 when the replay store is full, 500 for internal failures.
func Status(code string) int {
	switch code {
	case CodeInsufficientScope, CodeHostNotAllowed:
		return http.StatusForbidden
	case CodeBodyTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeReplayStoreFull:
		return http.StatusServiceUnavailable
	case CodeInternal:
		return http.StatusInternalServerError
	}
	return http.StatusUnauthorized
}

// Message is the human sentence sent with a code. It never contains
// anything from the request.
func Message(code string) string {
	switch code {
	case CodeMissing:
		return "This endpoint requires credentials."
	case CodeMalformed:
		return "The credentials could not be parsed."
	case CodeTooLarge:
		return "The credentials are larger than allowed."
	case CodeAmbiguous:
		return "The request carries more than one set of credentials."
	case CodeSchemeNotAllowed:
		return "This endpoint does not accept this kind of credentials."
	case CodeBadSignature, CodeUnknownKey:
		return "The signature or key is not valid."
	case CodeAlgNotAllowed:
		return "The token's algorithm is not allowed for its key."
	case CodeUnsupported:
		return "The token uses a feature that is not supported."
	case CodeExpired:
		return "The credentials have expired."
	case CodeNotYetValid:
		return "The credentials are not valid yet; check the client's clock."
	case CodeInvalidClaims:
		return "The token's claims are not acceptable."
	case CodeUserMismatch:
		return "The token's user does not own its session."
	case CodeReplayed:
		return "These credentials were already used; sign each request anew."
	case CodeReplayStoreFull:
		return "The server cannot accept new single-use credentials right now; retry shortly."
	case CodeBodyMismatch:
		return "The signature does not match the request's method, URI or body."
	case CodeBodyTooLarge:
		return "The request body is larger than allowed."
	case CodeHeaderMissing:
		return "A header that must be signed is missing or empty."
	case CodeHeaderInvalid:
		return "A signed header is repeated or contains a line break."
	case CodeHostNotAllowed:
		return "The request's Host is not served here."
	case CodeInsufficientScope:
		return "The credentials do not grant the scope this endpoint requires."
	}
	return "Authentication failed because of an internal error; it has been logged."
}
