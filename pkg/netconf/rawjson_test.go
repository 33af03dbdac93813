package netconf

import (
	"encoding/json"
	"testing"
)

func TestObjectMembersSpans(t *testing.T) {
	doc := []byte(" {\n \"a\" :\t1.5e3 , \"b\":{\"c\":[1, \"}\"]}, \"d\\u0041\":\"x\\\"y\",\"e\":null } \n")
	ms, err := objectMembers(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ key, val string }{{"a", "1.5e3"}, {"b", `{"c":[1, "}"]}`}, {"dA", `"x\"y"`}, {"e", "null"}}
	if len(ms) != len(want) {
		t.Fatalf("got %d members", len(ms))
	}
	for i, w := range want {
		if ms[i].key != w.key || string(doc[ms[i].val.start:ms[i].val.end]) != w.val {
			t.Errorf("member %d = %q %q, want %q %q", i, ms[i].key, doc[ms[i].val.start:ms[i].val.end], w.key, w.val)
		}
	}
	for _, bad := range []string{``, `[]`, `{"a":1} {}`, `{"a":1,}`, `{"a" 1}`, `{"a":1`} {
		if _, err := objectMembers([]byte(bad)); err == nil {
			t.Errorf("objectMembers(%q) accepted", bad)
		}
	}
}

func TestArrayElems(t *testing.T) {
	doc := []byte(`[ 1 ,{"a":[2]}, "x" ]`)
	sp, err := arrayElems(doc)
	if err != nil || len(sp) != 3 || string(doc[sp[1].start:sp[1].end]) != `{"a":[2]}` {
		t.Errorf("got %v, %v", sp, err)
	}
	if _, err := arrayElems([]byte(`{}`)); err == nil {
		t.Error("object accepted as array")
	}
}

func TestSetMember(t *testing.T) {
	for _, tc := range []struct{ in, key, val, want string }{
		{`{}`, "a", `1`, `{"a":1}`},
		{` { } `, "a", `1`, ` {"a":1 } `},
		{`{"a":1,"b":2}`, "a", `"x"`, `{"a":"x","b":2}`},
		{`{"a":1,"b":2}`, "c", `[]`, `{"a":1,"b":2,"c":[]}`},
		{`{"a":1,"a":2}`, "a", `3`, `{"a":1,"a":3}`},
		{`{"x":1}`, `we"ird`, `true`, `{"x":1,"we\"ird":true}`},
	} {
		got, err := setMember([]byte(tc.in), tc.key, []byte(tc.val))
		if err != nil || string(got) != tc.want || !json.Valid(got) {
			t.Errorf("setMember(%s, %s, %s) = %s, %v; want %s", tc.in, tc.key, tc.val, got, err, tc.want)
		}
	}
}
