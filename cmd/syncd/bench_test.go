package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/syncd-project/syncd/transport/deviceid"
)

// bigConfig has n peers and n folders, each folder shared with every peer.
func bigConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("name = \"bench\"\n")
	var ids []string
	for i := range n {
		id := deviceid.FromPublicKeyInfo(fmt.Appendf(nil, "peer %d", i)).String()
		ids = append(ids, `"`+id+`"`)
		fmt.Fprintf(&b, "[[peer]]\nid = \"%s\"\nname = \"p%d\"\naddrs = [\"10.0.0.%d:22027\"]\n", id, i, i%250+1)
	}
	for i := range n {
		fmt.Fprintf(&b, "[[folder]]\nid = \"f%d\"\npath = \"/data/f%d\"\npeers = [%s]\n", i, i, strings.Join(ids, ", "))
	}
	return []byte(b.String())
}

// BenchmarkParseConfig: loading a config of 20 peers and 20 folders (what
// every CLI command and every reload pays).
func BenchmarkParseConfig(b *testing.B) {
	data := bigConfig(20)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := parseConfig("config.toml", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStatusRoundTrip: one GET /v1/status over the control socket,
// new connection each time, as 'syncd status' does.
func BenchmarkStatusRoundTrip(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, fakeStatus(time.Now()))
	})
	paths, _ := startControl(b, mux)
	for b.Loop() {
		var r statusReport
		if err := callDaemon(paths, "GET", "/v1/status", nil, &r); err != nil {
			b.Fatal(err)
		}
	}
}
