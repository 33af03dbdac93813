package datapath

// The layouts of the programs' maps, for code that reads or writes the maps of Objects directly
// (tests, the per-packet benchmarks). Aliases of the types bpf2go generates from bpf/lib/*.h: one
// definition, checked against the object when it is built.
type (
	// FlowKey is a key of SteerFlows (struct flow_key). Ports are in network byte order; an
	// IPv4 address is in the first four bytes of Remote.V6 (see AddrBytes).
	FlowKey = steerFlowKey
	// FlowValue is a value of SteerFlows (struct flow_value).
	FlowValue = steerFlowValue
	// CounterValue is one CPU's value of a SteerCounters row (struct steer_counter).
	CounterValue = steerSteerCounter
)

// NumReasons is the number of reasons, the width of a row of counters (STEER_REASON_MAX).
const NumReasons = int(steerSteerReasonSTEER_REASON_MAX)

// CounterKey is the SteerCounters key of the row of slot and reason; slot MaxInterfaces is the
// row of interfaces that are not configured.
func CounterKey(slot int, r Reason) uint32 {
	return uint32(slot)*uint32(NumReasons) + uint32(r)
}
