package steering

// knobs are the kernel settings on steered interfaces, set by setKnobs and undone by resetKnobs
// (back to the namespace default):
//   - rp_filter loose: strict filtering drops a request from a remote subnet arriving on net1
//     (its source is routed via eth0) before any TC program can help;
//   - arp_ignore=1: otherwise net1 answers ARP for eth0's address.
var knobs = []struct{ key, val string }{
	{"rp_filter", "2"},
	{"arp_ignore", "1"},
}
