// Package perpkt measures the cost of Steer's BPF programs per packet with BPF_PROG_TEST_RUN
// (internal/testutil/progrun): every branch (primary-path miss, pinned reply, source steering,
// multicast, ingress learning) on flow tables of several sizes, cold lookups in a full table, and
// how the LRU flow table behaves when more flows arrive than it holds.
package perpkt
