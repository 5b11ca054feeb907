package main

import "net/http"

// pairing is a 'syncd pair' in progress on this daemon.
type pairing struct{}

// pairRoutes adds the pairing endpoints of the control API.
func (d *daemon) pairRoutes(mux *http.ServeMux) {}

// pairTXT is the extra mDNS TXT while a pairing code waits.
func (d *daemon) pairTXT() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pair != nil {
		return []string{"pair=1"}
	}
	return nil
}

func pairCommand(g globalFlags, args []string) int {
	return reportError(g.Stderr, withHint(errorString("pair: not available yet"), "pin the other device with 'syncd peer add ID' on both sides"))
}

type errorString string

func (e errorString) Error() string { return string(e) }
