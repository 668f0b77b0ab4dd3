package hmacsig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Signer signs requests the way go-hmacauth clients do.
type Signer struct {
	APIKey string
	Secret []byte
	// SignedHeaders must be the server's SignedHeaders.
	SignedHeaders []string
	// ContentDigest adds a Content-Digest header (RFC 9530, sha-256) of the
	// body before signing; SignedHeaders must then contain "Content-Digest"
	// for the digest to be covered.
	ContentDigest bool
	// Now is the clock; time.Now if nil.
	Now func() time.Time
}

// Sign sets r's Authorization header (and Content-Digest when enabled). It
// reads and restores r.Body only for the digest. It returns the string it
// signed, which is what to compare when a server refuses the signature.
func (s *Signer) Sign(r *http.Request) (stringToSign string, err error) {
	if s.APIKey == "" || len(s.Secret) == 0 {
		return "", errors.New("hmacsig: Signer needs an APIKey and a Secret")
	}
	sorted, err := sortHeaders(s.SignedHeaders)
	if err != nil {
		return "", err
	}
	if s.ContentDigest {
		var body []byte
		if r.Body != nil && r.Body != http.NoBody {
			if body, err = io.ReadAll(r.Body); err != nil {
				return "", fmt.Errorf("hmacsig: read body: %w", err)
			}
			r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		r.Header.Set("Content-Digest", ContentDigest(body))
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ts := now().UTC().Format(time.RFC3339)
	sts, err := StringToSign(r, ts, sorted)
	if err != nil {
		return "", err
	}
	r.Header.Set("Authorization", Params{APIKey: s.APIKey, Signature: sign(s.Secret, sts), Timestamp: ts}.String())
	return sts, nil
}

// Transport is an http.RoundTripper that signs every request with Signer
// before sending it with Base (http.DefaultTransport if nil). It does not
// modify the caller's request.
type Transport struct {
	Base   http.RoundTripper
	Signer *Signer
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody && t.Signer.ContentDigest {
		// Clone shares the body; read it once here so that req is untouched.
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		r.ContentLength = int64(len(body))
	}
	if _, err := t.Signer.Sign(r); err != nil {
		return nil, err
	}
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r)
}
