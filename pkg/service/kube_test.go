package service

import "testing"

func TestParseNetwork(t *testing.T) {
	for _, tc := range []struct{ value, want string }{
		{"dmz", "shop/dmz"},
		{"lan/dmz", "lan/dmz"},
		{" lan / dmz ", "lan/dmz"}, // multus-service removed spaces
		{"dmz.example", "shop/dmz.example"},
		{"", ""},
		{"a/b/c", ""},
		{"/dmz", ""},
		{"lan/", ""},
		{"Bad_Name", ""},
		{"lan.x/dmz", ""}, // a namespace is a label
	} {
		got, err := ParseNetwork(tc.value, "shop")
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("ParseNetwork(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
		}
	}
}
