// Command podimage is the one binary of the real node's local images: "pause" holds a pod
// sandbox (the runtime's pinned sandbox image), "echo" is a test pod's application, TCP and UDP
// echo servers on the wildcard address like the emulation's pods run.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

// Ports, the emulation's (emulation.EchoTCPPort, emulation.EchoUDPPort): kept in step by the
// real node's tests, which probe them with the emulation's probes.
const (
	tcpPort = 8080
	udpPort = 5353
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: podimage pause|echo")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "pause":
		pause()
	case "echo":
		fmt.Fprintln(os.Stderr, "echo:", echo())
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// pause waits for SIGTERM or SIGINT and reaps the children the sandbox inherits as PID 1.
func pause() {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			if pid, _ := syscall.Wait4(-1, nil, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}

// echo serves until a signal ends the process; it returns only on failure.
func echo() error {
	tl, err := net.Listen("tcp", fmt.Sprintf(":%d", tcpPort))
	if err != nil {
		return err
	}
	ul, err := net.ListenPacket("udp", fmt.Sprintf(":%d", udpPort))
	if err != nil {
		return err
	}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := ul.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = ul.WriteTo(buf[:n], from)
		}
	}()
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		<-sigs
		os.Exit(0)
	}()
	for {
		c, err := tl.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}
