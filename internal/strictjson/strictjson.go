// Package strictjson decodes JSON request bodies strictly: one value, no
// unknown fields, no duplicate members, no trailing data. encoding/json
// accepts duplicate members (the last one wins), which lets two parsers of
// the same document disagree; we refuse them instead.
//
// Errors are *callsign.Error with codes EInvalidJSON, EUnknownField,
// EDuplicateField, ETrailingData or EInvalid (a value of the wrong type).
// A body that is not valid UTF-8 is EInvalidJSON. Escaped lone surrogates
// ("\ud800") still decode to U+FFFD, as encoding/json does.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/callsignhq/callsign"
)

// MaxDepth is the deepest nesting of objects and arrays accepted.
const MaxDepth = 32

// Unmarshal decodes data into v strictly.
func Unmarshal(data []byte, v any) error {
	// encoding/json would silently turn invalid UTF-8 into U+FFFD, so that
	// the value we act on is not the one that was sent.
	if !utf8.Valid(data) {
		return callsign.Errorf(callsign.EInvalidJSON, "The request body is not valid UTF-8.")
	}
	if err := checkDuplicates(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return translate(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return callsign.Errorf(callsign.ETrailingData, "The request body has data after its JSON value.")
	}
	return nil
}

func translate(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, io.EOF):
		return callsign.Errorf(callsign.EInvalidJSON, "The request body is empty; a JSON object is required.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return callsign.Errorf(callsign.EInvalidJSON, "The request body ends in the middle of its JSON value.")
	case errors.As(err, &syn):
		return callsign.Errorf(callsign.EInvalidJSON, "The request body is not valid JSON (at byte %d).", syn.Offset)
	case errors.As(err, &typ):
		if typ.Field == "" {
			return callsign.Errorf(callsign.EInvalidJSON, "The request body must be a JSON object.")
		}
		return callsign.Errorf(callsign.EInvalid, "The field %q must be a %s.", typ.Field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return callsign.Errorf(callsign.EUnknownField, "The request body has the unknown field %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return callsign.Errorf(callsign.EInvalidJSON, "The request body is not valid JSON.")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	}
	return "number"
}

// checkDuplicates walks data's tokens and refuses an object with the same
// member name twice, and nesting deeper than MaxDepth. Syntax errors are
// left for the decoding pass to report.
func checkDuplicates(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		keys    map[string]struct{}
		wantKey bool
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // io.EOF or a syntax error the second pass reports
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top != nil && top.keys != nil {
					top.wantKey = true
				}
				if len(stack) >= MaxDepth {
					return callsign.Errorf(callsign.EInvalidJSON, "The request body nests deeper than %d levels.", MaxDepth)
				}
				f := &frame{}
				if t == '{' {
					f.keys = map[string]struct{}{}
					f.wantKey = true
				}
				stack = append(stack, f)
			case '}', ']':
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.keys != nil && top.wantKey {
				if _, dup := top.keys[t]; dup {
					return callsign.Errorf(callsign.EDuplicateField, "The request body has the field %q more than once.", t)
				}
				top.keys[t] = struct{}{}
				top.wantKey = false
				continue
			}
			if top != nil && top.keys != nil {
				top.wantKey = true
			}
		default:
			if top != nil && top.keys != nil {
				top.wantKey = true
			}
		}
	}
}
