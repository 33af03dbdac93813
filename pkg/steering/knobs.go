package steering

// knobs are the kernel settings on steered interfaces, set by setKnobs and undone by resetKnobs
// (back to the namespace default):
//   - rp_filter loose: strict filtering drops a request from a remote subnet arriving on net1
//     (its source is routed via eth0) before any TC program can help;
//   - arp_ignore=1: otherwise net1 answers ARP for eth0's address;
//   - arp_announce=2: an ARP request for net1's gateway carries net1's address, not the source
//     of the packet waiting for it (eth0's, for a reply the kernel routes by a default route on
//     net1 before Steer pins it back to eth0), which routers with uRPF ignore.
var knobs = []struct{ key, val string }{
	{"rp_filter", "2"},
	{"arp_ignore", "1"},
	{"arp_announce", "2"},
}
