package main

import "fmt"

// runCommand and pairCommand are placeholders until run.go lands; the lead
// deletes this file then.

func runCommand(g globalFlags, args []string) int {
	fmt.Fprintln(g.Stderr, "syncd: run: not yet; it lands with the sync engine")
	return exitFailure
}

func pairCommand(g globalFlags, args []string) int {
	fmt.Fprintln(g.Stderr, "syncd: pair: not yet; use 'syncd peer add ID' on both devices")
	return exitFailure
}
