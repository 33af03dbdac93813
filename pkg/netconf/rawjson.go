package netconf

// Helpers that edit JSON documents in place. Delegate configurations are
// passed to plugins we do not know, so they are never decoded into structs and
// re-encoded (Multus 4.3 loses unmodelled fields that way): an edit replaces
// or inserts exactly one value and leaves every other byte as it was.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// span is the byte range [start, end) of one JSON value inside a document.
type span struct{ start, end int }

// member is one key of a JSON object and the span of its value.
type member struct {
	key string
	val span
}

var (
	errNotObject = errors.New("not a JSON object")
	errNotArray  = errors.New("not a JSON array")
)

// firstByte returns the first non-whitespace byte of a JSON document, or 0.
func firstByte(doc []byte) byte {
	for _, c := range doc {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// isJSONObject reports whether doc starts like an object; syntax is checked
// by whoever decodes it.
func isJSONObject(doc []byte) bool { return firstByte(doc) == '{' }

// objectMembers lists the members of the single JSON object in doc, in
// document order (duplicates included), with the exact span of each value.
func objectMembers(doc []byte) ([]member, error) {
	ms, err := scanObject(doc)
	return ms, truncated(err)
}

func scanObject(doc []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("object key is a %T", tok)
		}
		sp, err := nextValue(dec)
		if err != nil {
			return nil, err
		}
		ms = append(ms, member{key: key, val: sp})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return ms, expectEOF(dec)
}

// arrayElems lists the spans of the elements of the single JSON array in doc.
func arrayElems(doc []byte) ([]span, error) {
	sp, err := scanArray(doc)
	return sp, truncated(err)
}

func scanArray(doc []byte) ([]span, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var out []span
	for dec.More() {
		sp, err := nextValue(dec)
		if err != nil {
			return nil, err
		}
		out = append(out, sp)
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, expectEOF(dec)
}

// truncated gives a cut-off document a JSON error instead of a bare EOF.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unexpected end of JSON input")
	}
	return err
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		if want == '{' {
			return errNotObject
		}
		return errNotArray
	}
	return nil
}

// nextValue consumes one value. The decoder's offset is then the end of the
// value, and json.RawMessage holds its bytes without surrounding whitespace,
// so the two give the value's exact span.
func nextValue(dec *json.Decoder) (span, error) {
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return span{}, err
	}
	end := int(dec.InputOffset())
	return span{start: end - len(v), end: end}, nil
}

func expectEOF(dec *json.Decoder) error {
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			return errors.New("trailing data after the JSON value")
		}
		return err
	}
	return nil
}

// lastMember returns the span of the last member named key (decoders keep the
// last of duplicate keys, so that is the one that counts).
func lastMember(ms []member, key string) (span, bool) {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].key == key {
			return ms[i].val, true
		}
	}
	return span{}, false
}

// splice returns a new document with doc[sp] replaced by val.
func splice(doc []byte, sp span, val []byte) []byte {
	out := make([]byte, 0, len(doc)-(sp.end-sp.start)+len(val))
	out = append(out, doc[:sp.start]...)
	out = append(out, val...)
	return append(out, doc[sp.end:]...)
}

// setMember sets key to the JSON value val in the object obj: it replaces the
// value of the last member with that key, or appends a member after the last
// one. Nothing else in obj changes.
func setMember(obj []byte, key string, val []byte) ([]byte, error) {
	ms, err := objectMembers(obj)
	if err != nil {
		return nil, err
	}
	if sp, ok := lastMember(ms, key); ok {
		return splice(obj, sp, val), nil
	}
	k, err := json.Marshal(key)
	if err != nil {
		return nil, err
	}
	m := append(append(k, ':'), val...)
	if len(ms) == 0 {
		at := bytes.IndexByte(obj, '{') + 1
		return splice(obj, span{at, at}, m), nil
	}
	at := ms[len(ms)-1].val.end
	return splice(obj, span{at, at}, append([]byte{','}, m...)), nil
}
