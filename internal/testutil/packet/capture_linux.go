package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"
	"time"
)

const (
	ethPAll        = 0x0003 // ETH_P_ALL
	packetOutgoing = 4      // PACKET_OUTGOING
)

// Capture receives the frames arriving at one interface through an AF_PACKET socket, to observe
// what a program sent there (bpf_clone_redirect copies, for instance). Frames the interface
// itself sends are ignored.
type Capture struct {
	fd      int
	ifindex int
}

// Listen opens a capture on ifindex. The socket belongs to the network namespace of the calling
// thread: call it inside ns.Do for an interface in another namespace. Reading works from any
// thread afterwards.
func Listen(ifindex int) (*Capture, error) {
	proto := int(htons(ethPAll))
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPAll), Ifindex: ifindex}); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("bind AF_PACKET socket to ifindex %d: %w", ifindex, err)
	}
	return &Capture{fd: fd, ifindex: ifindex}, nil
}

// Next returns the next frame received within timeout, or nil when none arrived.
func (c *Capture) Next(timeout time.Duration) ([]byte, error) {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 65536)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, nil
		}
		tv := syscall.NsecToTimeval(max(left.Nanoseconds(), int64(time.Millisecond)))
		if err := syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
			return nil, fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		n, from, err := syscall.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("receive on ifindex %d: %w", c.ifindex, err)
		}
		// Frames queued between socket() and bind() may come from other interfaces.
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && (ll.Ifindex != c.ifindex || ll.Pkttype == packetOutgoing) {
			continue
		}
		return append([]byte(nil), buf[:n]...), nil
	}
}

// Collect returns the frames accepted by match that arrive within d. It stops early, after a
// short grace period to catch extra copies, once want frames have matched (want <= 0: wait d).
func (c *Capture) Collect(d time.Duration, want int, match func([]byte) bool) ([][]byte, error) {
	var got [][]byte
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return got, nil
		}
		f, err := c.Next(left)
		if err != nil {
			return got, err
		}
		if f == nil || (match != nil && !match(f)) {
			continue
		}
		got = append(got, f)
		if want > 0 && len(got) == want {
			// Anything sent at the same time as the expected frames is queued by now.
			grace := min(left, 50*time.Millisecond)
			deadline = time.Now().Add(grace)
			want = 0
		}
	}
}

// Close closes the socket.
func (c *Capture) Close() error { return syscall.Close(c.fd) }

// htons puts v in network byte order, as sockaddr_ll and socket(2) take the protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
