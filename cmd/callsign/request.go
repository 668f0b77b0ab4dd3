package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/callsignhq/callsign/auth/hmacsig"
	"github.com/callsignhq/callsign/auth/reqtoken"
	"github.com/callsignhq/callsign/client"
	"github.com/golang-jwt/jwt/v5"
	"github.com/spf13/cobra"
)

type requestFlags struct {
	data, hmacCred, reqtokenCred, bearer string
	jwtCred                              string
	claims                               []string
	jwtTTL                               time.Duration
	headers, signedHeaders               []string
	digest, include, explain             bool
	upgrade                              bool
	public, secret, user                 string
	timeout                              time.Duration
}

func newRequestCmd(g *globals) *cobra.Command {
	f := &requestFlags{}
	cmd := &cobra.Command{
		Use:   "request METHOD URL",
		Short: "Send a request signed with HMAC, an Ed25519 request token or a bearer token",
		Long: `Send one HTTP request with credentials, to try an API from the shell.

  --hmac KEY:SECRET          go-hmacauth signature (--signed-headers must match the server's)
  --reqtoken UID:SID:KEY     Ed25519 request token (Mixin style; KEY as the SDKs encode it)
  --bearer TOKEN             a bearer token (a JWT, or an app access token)
  --jwt [KID:]SECRET         mint an HS256 JWT with --claim NAME=VALUE (as jwt.io does in seed 000)
  --upgrade                  get an app access token from the callsign server first
                             (--public, and --secret with --user to bind a user)

The response body goes to stdout. When the server refuses a signature, the
string that was signed is printed on stderr to compare with the server's
(see also: callsign explain).`,
		Example: `  callsign request --hmac abc123:$SECRET --signed-headers Content-Type,User-Agent \
    -H 'Content-Type: application/json' POST http://127.0.0.1:8081/notes -d '{"t":"x"}'
  callsign request --upgrade --public $PUB GET http://127.0.0.1:8081/whoami`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error { return doRequest(cmd, g, f, args[0], args[1]) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.data, "data", "d", "", "request body (@FILE reads a file, @- standard input)")
	fl.StringArrayVarP(&f.headers, "header", "H", nil, "extra header 'Name: value' (repeatable)")
	fl.StringVar(&f.hmacCred, "hmac", "", "sign with HMAC: API_KEY:SECRET")
	fl.StringSliceVar(&f.signedHeaders, "signed-headers", nil, "headers covered by the HMAC signature")
	fl.BoolVar(&f.digest, "digest", false, "add a signed Content-Digest of the body (HMAC)")
	fl.StringVar(&f.reqtokenCred, "reqtoken", "", "sign an Ed25519 request token: USER_ID:SESSION_ID:PRIVATE_KEY")
	fl.StringVar(&f.bearer, "bearer", "", "send Authorization: Bearer TOKEN")
	fl.StringVar(&f.jwtCred, "jwt", "", "mint and send an HS256 JWT signed with [KID:]SECRET")
	fl.StringArrayVar(&f.claims, "claim", nil, "claim NAME=VALUE of the --jwt token (repeatable; exp and iat are set)")
	fl.DurationVar(&f.jwtTTL, "jwt-ttl", 5*time.Minute, "lifetime of the --jwt token")
	fl.BoolVar(&f.upgrade, "upgrade", false, "obtain an app access token from --server first")
	fl.StringVar(&f.public, "public", os.Getenv("CALLSIGN_PUBLIC_TOKEN"), "public token for --upgrade")
	fl.StringVar(&f.secret, "secret", os.Getenv("CALLSIGN_SECRET_TOKEN"), "secret token for --upgrade with --user")
	fl.StringVar(&f.user, "user", "", "verified user id for --upgrade")
	fl.BoolVarP(&f.include, "include", "i", false, "print the response status and headers")
	fl.BoolVar(&f.explain, "explain", false, "print what was signed on stderr")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Second, "request timeout")
	return cmd
}

func readData(d string) ([]byte, error) {
	switch {
	case d == "@-":
		return io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	case strings.HasPrefix(d, "@"):
		return os.ReadFile(d[1:])
	}
	return []byte(d), nil
}

func doRequest(cmd *cobra.Command, g *globals, f *requestFlags, method, url string) error {
	n := 0
	for _, set := range []bool{f.hmacCred != "", f.reqtokenCred != "", f.bearer != "", f.upgrade, f.jwtCred != ""} {
		if set {
			n++
		}
	}
	if n > 1 {
		return errors.New("choose one of --hmac, --reqtoken, --bearer, --jwt and --upgrade")
	}
	body, err := readData(f.data)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(cmd.Context(), strings.ToUpper(method), url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	for _, h := range f.headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("-H %q is not 'Name: value'", h)
		}
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(value))
	}
	stderr := cmd.ErrOrStderr()
	var signed string // what was signed, to show when the server refuses it
	switch {
	case f.hmacCred != "":
		key, secret, ok := strings.Cut(f.hmacCred, ":")
		if !ok || key == "" || secret == "" {
			return errors.New("--hmac must be API_KEY:SECRET")
		}
		s := &hmacsig.Signer{APIKey: key, Secret: []byte(secret), SignedHeaders: f.signedHeaders, ContentDigest: f.digest}
		if signed, err = s.Sign(req); err != nil {
			return err
		}
		signed = "string to sign (go-hmacauth):\n" + indent(signed)
	case f.reqtokenCred != "":
		parts := strings.SplitN(f.reqtokenCred, ":", 3)
		if len(parts) != 3 {
			return errors.New("--reqtoken must be USER_ID:SESSION_ID:PRIVATE_KEY")
		}
		key, err := reqtoken.ParsePrivateKey(parts[2])
		if err != nil {
			return err
		}
		uri := req.URL.RequestURI()
		tok, err := reqtoken.Sign(parts[0], parts[1], key, req.Method, uri, body)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		d := reqtoken.Digest(req.Method, uri, body)
		signed = fmt.Sprintf("request token sig = hex(sha256(method + uri + body)) = %x\n  method %q\n  uri    %q\n  body   %d bytes\n", d, req.Method, uri, len(body))
	case f.bearer != "":
		req.Header.Set("Authorization", "Bearer "+f.bearer)
	case f.jwtCred != "":
		tok, err := mintJWT(f.jwtCred, f.claims, f.jwtTTL)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	case f.upgrade:
		src := &client.UpgradeSource{Server: g.server, PublicToken: f.public, SecretToken: f.secret, UserID: f.user}
		if f.user == "" {
			src.SecretToken = ""
		}
		tok, err := src.Token(cmd.Context())
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if f.explain && signed != "" {
		fmt.Fprint(stderr, signed)
	}
	resp, err := (&http.Client{Timeout: f.timeout}).Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %v", req.Method, url, unwrapURLError(err))
	}
	defer resp.Body.Close()
	out := cmd.OutOrStdout()
	if f.include {
		fmt.Fprintf(out, "%s %s\n", resp.Proto, resp.Status)
		names := make([]string, 0, len(resp.Header))
		for k := range resp.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			for _, v := range resp.Header[k] {
				fmt.Fprintf(out, "%s: %s\n", k, v)
			}
		}
		fmt.Fprintln(out)
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized && signed != "" && !f.explain {
		fmt.Fprint(stderr, "the server refused the credentials; this is what was signed:\n"+signed)
	}
	if resp.StatusCode >= 400 {
		return fmt.Errorf("%s %s answered %s", req.Method, url, resp.Status)
	}
	return nil
}

// mintJWT signs an HS256 JWT with [KID:]SECRET and NAME=VALUE claims,
// adding iat and exp.
func mintJWT(cred string, claims []string, ttl time.Duration) (string, error) {
	kid, secret, ok := strings.Cut(cred, ":")
	if !ok {
		kid, secret = "", cred
	}
	if secret == "" {
		return "", errors.New("--jwt needs a secret: [KID:]SECRET")
	}
	now := time.Now()
	c := jwt.MapClaims{"iat": now.Unix(), "exp": now.Add(ttl).Unix()}
	for _, kv := range claims {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return "", fmt.Errorf("--claim %q is not NAME=VALUE", kv)
		}
		c[k] = v
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	if kid != "" {
		t.Header["kid"] = kid
	}
	return t.SignedString([]byte(secret))
}

func indent(s string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString("  | " + strings.TrimSuffix(line, "\n") + "\\n\n")
	}
	return b.String()
}

func newExplainCmd() *cobra.Command {
	var secret, requestFile string
	var signedHeaders []string
	cmd := &cobra.Command{
		Use:   "explain",
		Short: "Explain an HMAC signature: the string to sign a server computes for a raw HTTP request",
		Long: `Read a raw HTTP/1.1 request (as captured, e.g. with curl -v or a proxy)
and print what a go-hmacauth server with --signed-headers computes for it:
the string to sign, the signature the secret gives, the signature the request
carries, and whether they match. Use it on both sides of a failing call.`,
		Example: `  printf 'POST /notes/?create=true HTTP/1.1\r\nHost: notes.someapp.com\r\nUser-Agent: CoolClientLib 1.0\r\nContent-Type: application/json;charset=UTF-8\r\nAuthorization: APIKey=abc123,Signature=Ii/RLNlJd38suVDA5hRbQqOF7uafallGasC2FIVmhg8=,Timestamp=2014-04-01T10:16:38-04:00\r\n\r\n' \
    | callsign explain --secret secret --signed-headers User-Agent,Content-Type`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var in io.Reader = os.Stdin
			if requestFile != "" && requestFile != "-" {
				fh, err := os.Open(requestFile)
				if err != nil {
					return err
				}
				defer fh.Close()
				in = fh
			}
			r, err := http.ReadRequest(bufio.NewReader(io.LimitReader(in, 1<<20)))
			if err != nil {
				return fmt.Errorf("the input is not a raw HTTP/1.1 request: %v", err)
			}
			p, err := hmacsig.ParseAuthorization(r.Header.Get("Authorization"))
			if err != nil {
				return fmt.Errorf("the Authorization header: %v", err)
			}
			sorted := append([]string(nil), signedHeaders...)
			sort.Strings(sorted)
			sts, err := hmacsig.StringToSign(r, p.Timestamp, sorted)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "api key:    %s\ntimestamp:  %s\nstring to sign (each line ends in \\n):\n%s", p.APIKey, p.Timestamp, indent(sts))
			if secret == "" {
				return nil
			}
			want := hmacsig.Signature([]byte(secret), sts)
			verdict := "MATCH"
			if want != p.Signature {
				verdict = "MISMATCH: the client signed another string, or used another secret"
			}
			fmt.Fprintf(out, "expected:   %s\npresented:  %s\n%s\n", want, p.Signature, verdict)
			return nil
		},
	}
	cmd.Flags().StringVar(&secret, "secret", "", "the API key's secret, to compute the expected signature")
	cmd.Flags().StringSliceVar(&signedHeaders, "signed-headers", nil, "the server's SignedHeaders")
	cmd.Flags().StringVar(&requestFile, "request", "-", "file with the raw request (- for standard input)")
	return cmd
}
