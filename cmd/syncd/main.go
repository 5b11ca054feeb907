// Command syncd is the peer-to-peer file sync daemon and its command line.
// It is the only package that reads the config file and wires transport,
// discovery, index and peer together.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "syncd: not yet")
	os.Exit(2)
}
