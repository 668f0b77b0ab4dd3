package strictjson_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/callsignhq/callsign"
	"github.com/callsignhq/callsign/internal/strictjson"
)

type inner struct {
	A int    `json:"a"`
	S string `json:"s"`
}

// request has a field of every kind a request body uses, and two that take
// anything (a map and an interface) to reach the nesting and duplicate
// checks without a struct in the way.
type request struct {
	A     string         `json:"a"`
	B     int            `json:"b"`
	Name  *string        `json:"name"`
	Tags  []string       `json:"tags"`
	OK    bool           `json:"ok"`
	Inner *inner         `json:"inner"`
	Meta  map[string]any `json:"meta"`
	Any   any            `json:"any"`
}

func ptr[T any](v T) *T { return &v }

// nest returns an object whose "any" member nests arrays so that the whole
// document is depth levels deep (the outer object counts as one).
func nest(depth int) string {
	return `{"any":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `}`
}

// nestObjects is nest with objects ({"x":{"x":...}}) inside "meta".
func nestObjects(depth int) string {
	return `{"meta":` + strings.Repeat(`{"x":`, depth-2) + `{}` + strings.Repeat(`}`, depth-2) + `}`
}

type testCase struct {
	name string
	in   string
	code string   // "" for success
	want *request // the decoded value, checked when set
	msg  string   // a substring of the error message, checked when set
}

var cases = []testCase{
	// Accepted.
	{name: "empty object", in: `{}`, want: &request{}},
	{name: "every field", in: `{"a":"x","b":-3,"name":"n","tags":["t1","t2"],"ok":true,"inner":{"a":1,"s":"y"},"meta":{"k":[1,"v",null]},"any":2.5}`,
		want: &request{A: "x", B: -3, Name: ptr("n"), Tags: []string{"t1", "t2"}, OK: true, Inner: &inner{A: 1, S: "y"},
			Meta: map[string]any{"k": []any{1.0, "v", nil}}, Any: 2.5}},
	{name: "surrounding whitespace", in: " \n\t{\"a\":\"x\"}\r\n ", want: &request{A: "x"}},
	{name: "null members", in: `{"name":null,"tags":null,"inner":null,"meta":null,"any":null}`, want: &request{}},
	{name: "same key in sibling objects", in: `{"inner":{"a":1},"meta":{"a":1,"s":2}}`,
		want: &request{Inner: &inner{A: 1}, Meta: map[string]any{"a": 1.0, "s": 2.0}}},
	{name: "same key in objects of an array", in: `{"any":[{"a":1},{"a":2},{"a":3}]}`,
		want: &request{Any: []any{map[string]any{"a": 1.0}, map[string]any{"a": 2.0}, map[string]any{"a": 3.0}}}},
	{name: "key of a nested object reused outside", in: `{"inner":{"a":1},"a":"x"}`, want: &request{Inner: &inner{A: 1}, A: "x"}},
	{name: "key equal to an earlier value", in: `{"a":"b","b":1}`, want: &request{A: "b", B: 1}},
	{name: "key equal to its own value", in: `{"a":"a"}`, want: &request{A: "a"}},
	{name: "key after an array of names", in: `{"tags":["a","b"],"a":"x","b":2}`, want: &request{Tags: []string{"a", "b"}, A: "x", B: 2}},
	{name: "key after a nested object of names", in: `{"meta":{"a":"b"},"a":"x","b":2}`,
		want: &request{Meta: map[string]any{"a": "b"}, A: "x", B: 2}},
	{name: "repeated strings in an array", in: `{"tags":["a","a"]}`, want: &request{Tags: []string{"a", "a"}}},
	{name: "escaped lone surrogate", in: `{"a":"\ud800"}`, want: &request{A: "\uFFFD"}},
	{name: "depth MaxDepth in arrays", in: nest(strictjson.MaxDepth)},
	{name: "depth MaxDepth in objects", in: nestObjects(strictjson.MaxDepth)},

	// Unknown fields.
	{name: "unknown field", in: `{"a":"x","nope":1}`, code: callsign.EUnknownField, msg: `"nope"`},
	{name: "unknown nested field", in: `{"inner":{"a":1,"zzz":1}}`, code: callsign.EUnknownField, msg: `"zzz"`},
	// encoding/json alone would set Name from "NAME": names are exact here.
	{name: "known field in another case", in: `{"NAME":"mallory"}`, code: callsign.EUnknownField, msg: `"NAME"`},
	{name: "known field through a Unicode fold", in: `{"ſ":"x"}`, code: callsign.EUnknownField},
	{name: "null body", in: `null`, code: callsign.EInvalidJSON},
	{name: "string body", in: ` "x"`, code: callsign.EInvalidJSON},

	// Duplicates.
	{name: "duplicate at top level", in: `{"a":"x","a":"y"}`, code: callsign.EDuplicateField, msg: `"a"`},
	{name: "duplicate with other members between", in: `{"a":"x","b":1,"tags":[],"a":"y"}`, code: callsign.EDuplicateField},
	{name: "duplicate object member", in: `{"inner":{"a":1},"inner":{"a":2}}`, code: callsign.EDuplicateField, msg: `"inner"`},
	{name: "duplicate after a nested object", in: `{"b":1,"meta":{"c":1},"b":2}`, code: callsign.EDuplicateField, msg: `"b"`},
	{name: "duplicate in a struct member", in: `{"inner":{"a":1,"a":2}}`, code: callsign.EDuplicateField},
	{name: "duplicate in a map member", in: `{"meta":{"x":1,"x":2}}`, code: callsign.EDuplicateField, msg: `"x"`},
	{name: "duplicate in an object in an array", in: `{"any":[{"a":1},{"b":1,"b":2}]}`, code: callsign.EDuplicateField},
	{name: "duplicate deep down", in: `{"meta":{"x":{"y":{"z":[{"q":1,"q":1}]}}}}`, code: callsign.EDuplicateField},
	{name: "duplicate through an escape", in: `{"a":"x","\u0061":"y"}`, code: callsign.EDuplicateField},
	// encoding/json sets the same field for names that differ only in case,
	// so they are duplicates as much as identical names are.
	{name: "duplicate differing in case", in: `{"name":"alice","NAME":"mallory"}`, code: callsign.EDuplicateField},
	{name: "duplicate differing in case, nested", in: `{"inner":{"s":"x","S":"y"}}`, code: callsign.EDuplicateField},
	{name: "duplicate through an escaped capital", in: `{"a":"x","\u0041":"y"}`, code: callsign.EDuplicateField},
	{name: "duplicate through a Unicode fold", in: `{"inner":{"s":"x","ſ":"y"}}`, code: callsign.EDuplicateField}, // U+017F long s folds to s
	{name: "duplicate through the Kelvin sign", in: `{"meta":{"k":1,"K":2}}`, code: callsign.EDuplicateField},     // U+212A

	// Trailing data.
	{name: "second object", in: `{}{}`, code: callsign.ETrailingData},
	{name: "second value after space", in: "{\"a\":\"x\"}\n{\"a\":\"y\"}", code: callsign.ETrailingData},
	{name: "trailing number", in: `{} 1`, code: callsign.ETrailingData},
	{name: "trailing garbage", in: `{}x`, code: callsign.ETrailingData},
	{name: "trailing close brace", in: `{}}`, code: callsign.ETrailingData},
	{name: "trailing close bracket", in: `{}]`, code: callsign.ETrailingData},

	// Not JSON, or not a whole value.
	{name: "empty body", in: ``, code: callsign.EInvalidJSON, msg: "empty"},
	{name: "only whitespace", in: " \n ", code: callsign.EInvalidJSON},
	{name: "truncated after colon", in: `{"a":`, code: callsign.EInvalidJSON},
	{name: "truncated in a string", in: `{"a":"x`, code: callsign.EInvalidJSON},
	{name: "truncated before close", in: `{"a":"x"`, code: callsign.EInvalidJSON},
	{name: "only an open brace", in: `{`, code: callsign.EInvalidJSON},
	{name: "unquoted key", in: `{a:1}`, code: callsign.EInvalidJSON},
	{name: "single quotes", in: `{'a':'x'}`, code: callsign.EInvalidJSON},
	{name: "trailing comma", in: `{"a":"x",}`, code: callsign.EInvalidJSON},
	{name: "invalid UTF-8", in: "{\"a\":\"\xff\"}", code: callsign.EInvalidJSON},
	{name: "invalid UTF-8 in a key", in: "{\"\xc3\":1}", code: callsign.EInvalidJSON},

	// Not an object.
	{name: "array", in: `[]`, code: callsign.EInvalidJSON, msg: "object"},
	{name: "string", in: `"a"`, code: callsign.EInvalidJSON, msg: "object"},
	{name: "number", in: `1`, code: callsign.EInvalidJSON, msg: "object"},
	{name: "boolean", in: `true`, code: callsign.EInvalidJSON, msg: "object"},

	// Wrong types.
	{name: "string for a number", in: `{"b":"1"}`, code: callsign.EInvalid, msg: `"b" must be a number`},
	{name: "number for a string", in: `{"a":1}`, code: callsign.EInvalid, msg: `"a" must be a string`},
	{name: "number for a pointer to string", in: `{"name":1}`, code: callsign.EInvalid, msg: `"name" must be a string`},
	{name: "string for an array", in: `{"tags":"t"}`, code: callsign.EInvalid, msg: `"tags" must be an array`},
	{name: "number in a string array", in: `{"tags":["t",1]}`, code: callsign.EInvalid, msg: `"tags" must be a string`},
	{name: "number for a boolean", in: `{"ok":1}`, code: callsign.EInvalid, msg: `"ok" must be a boolean`},
	{name: "array for an object", in: `{"inner":[]}`, code: callsign.EInvalid, msg: `"inner" must be an object`},
	{name: "wrong type nested", in: `{"inner":{"a":"1"}}`, code: callsign.EInvalid, msg: `"inner.a"`},
	{name: "fraction for an integer", in: `{"b":1.5}`, code: callsign.EInvalid, msg: `"b"`},
	{name: "integer overflow", in: `{"b":99999999999999999999}`, code: callsign.EInvalid, msg: `"b"`},

	// Too deep.
	{name: "depth MaxDepth+1 in arrays", in: nest(strictjson.MaxDepth + 1), code: callsign.EInvalidJSON, msg: "deeper"},
	{name: "depth MaxDepth+1 in objects", in: nestObjects(strictjson.MaxDepth + 1), code: callsign.EInvalidJSON, msg: "deeper"},
	{name: "very deep and unterminated", in: strings.Repeat("[", 100000), code: callsign.EInvalidJSON},
}

func TestUnmarshal(t *testing.T) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var got request
			err := strictjson.Unmarshal([]byte(tt.in), &got)
			if code := callsign.ErrorCode(err); code != tt.code {
				t.Fatalf("Unmarshal(%.80q) error = %v (code %q), want code %q", tt.in, err, code, tt.code)
			}
			if err != nil {
				if _, ok := err.(*callsign.Error); !ok {
					t.Errorf("error is a %T, want *callsign.Error", err)
				}
				if tt.msg != "" && !strings.Contains(callsign.ErrorMessage(err), tt.msg) {
					t.Errorf("message %q does not contain %q", callsign.ErrorMessage(err), tt.msg)
				}
				return
			}
			if tt.want != nil && !reflect.DeepEqual(&got, tt.want) {
				t.Errorf("decoded %+v, want %+v", got, *tt.want)
			}
		})
	}
}

// TestUnmarshalMessageHasNoValue checks that error messages, which reach
// clients and logs, never repeat a value of the body (it may be a secret).
func TestUnmarshalMessageHasNoValue(t *testing.T) {
	const secret = "cs_sec_should_never_be_echoed"
	tests := []struct {
		name string
		in   string
	}{
		{"duplicate", `{"a":"` + secret + `","a":"` + secret + `"}`},
		{"wrong type", `{"b":"` + secret + `"}`},
		{"trailing", `{"a":"x"}"` + secret + `"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v request
			err := strictjson.Unmarshal([]byte(tt.in), &v)
			if err == nil {
				t.Fatal("accepted")
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q repeats a value of the body", err)
			}
		})
	}
}

var codes = map[string]bool{
	callsign.EInvalidJSON:    true,
	callsign.EUnknownField:   true,
	callsign.EDuplicateField: true,
	callsign.ETrailingData:   true,
	callsign.EInvalid:        true,
}

func FuzzUnmarshal(f *testing.F) {
	for _, tt := range cases {
		if len(tt.in) < 1000 {
			f.Add([]byte(tt.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v request
		err := strictjson.Unmarshal(data, &v)
		if err != nil {
			if code := callsign.ErrorCode(err); !codes[code] {
				t.Fatalf("Unmarshal(%q) error %v has code %q, want one of the documented codes", data, err, code)
			}
			return
		}
		out, err := json.Marshal(&v)
		if err != nil {
			t.Fatalf("accepted %q, but cannot marshal %+v: %v", data, v, err)
		}
		var again request
		if err := strictjson.Unmarshal(out, &again); err != nil {
			t.Fatalf("accepted %q, but not its re-marshalled form %q: %v", data, out, err)
		}
		if !reflect.DeepEqual(v, again) {
			t.Fatalf("round trip of %q changed the value: %+v, then %+v", data, v, again)
		}
	})
}
