// Package strictjson decodes JSON request bodies strictly: one value, no
// unknown fields, no duplicate members, no trailing data. encoding/json
// accepts duplicate members (the last one wins), which lets two parsers of
// the same document disagree; we refuse them instead. As encoding/json
// matches member names to struct fields case-insensitively, names that
// differ only in case ("user_id", "USER_ID") count as duplicates too, and
// the members of the top-level object must match the target struct's field
// names exactly ("USER_ID" alone is an unknown field, not user_id). Nested
// objects are matched as encoding/json does; callsign's request bodies are
// flat. The body must be a JSON object.
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
	"reflect"
	"strings"
	"unicode"
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
	if first := firstByte(data); first != '{' && first != 0 {
		return callsign.Errorf(callsign.EInvalidJSON, "The request body must be a JSON object.")
	}
	top, err := checkDuplicates(data)
	if err != nil {
		return err
	}
	// encoding/json matches member names to fields ignoring case; we want
	// "user_id" to mean user_id and "USER_ID" to be an unknown field.
	if names := fieldNames(v); names != nil {
		for _, k := range top {
			if _, ok := names[k]; !ok {
				return callsign.Errorf(callsign.EUnknownField, "The request body has the unknown field %q (field names are case-sensitive).", k)
			}
		}
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

func firstByte(data []byte) byte {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

// fieldNames returns the JSON member names of the struct v points to, or
// nil when v is not a pointer to a struct.
func fieldNames(v any) map[string]struct{} {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	t = t.Elem()
	names := make(map[string]struct{}, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = struct{}{}
	}
	return names
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
		return callsign.Errorf(callsign.EInvalid, "The field %q must be %s.", typ.Field, jsonKind(typ.Type.Kind().String()))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return callsign.Errorf(callsign.EUnknownField, "The request body has the unknown field %s.", strings.TrimPrefix(err.Error(), "json: unknown field "))
	}
	return callsign.Errorf(callsign.EInvalidJSON, "The request body is not valid JSON.")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "slice", "array":
		return "an array"
	case "bool":
		return "a boolean"
	case "struct", "map":
		return "an object"
	}
	return "a number"
}

// checkDuplicates walks data's tokens and refuses an object with the same
// member name twice, and nesting deeper than MaxDepth. Syntax errors are
// left for the decoding pass to report.
func checkDuplicates(data []byte) (topKeys []string, err error) {
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
			return topKeys, nil // io.EOF or a syntax error the second pass reports
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
					return nil, callsign.Errorf(callsign.EInvalidJSON, "The request body nests deeper than %d levels.", MaxDepth)
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
				k := foldName(t)
				if _, dup := top.keys[k]; dup {
					return nil, callsign.Errorf(callsign.EDuplicateField, "The request body has the field %q more than once.", t)
				}
				if len(stack) == 1 {
					topKeys = append(topKeys, t)
				}
				top.keys[k] = struct{}{}
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

// foldName returns name with every rune replaced by the smallest rune of its
// case-folding set, as encoding/json does before matching a member name to a
// struct field: names with equal folds set the same field.
func foldName(name string) string {
	return strings.Map(func(r rune) rune {
		for {
			f := unicode.SimpleFold(r)
			if f <= r {
				return f
			}
			r = f
		}
	}, name)
}
