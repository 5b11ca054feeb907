package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLayers enforces DESIGN.md's import direction: transport, discovery and
// index never import each other or peer; the device ID leaf is shared.
func TestLayers(t *testing.T) {
	const mod = "github.com/syncd-project/syncd/"
	layers := []string{"transport", "discovery", "index", "peer"}
	forbidden := map[string][]string{
		"transport": {"discovery", "index", "peer", "cmd"},
		"discovery": {"transport", "index", "peer", "cmd"},
		"index":     {"transport", "discovery", "peer", "cmd"},
		"peer":      {"cmd"},
	}
	const leaf = mod + "transport/deviceid"
	for _, layer := range layers {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+layer+"/...").CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", layer, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if !strings.HasPrefix(dep, mod) || dep == leaf {
				continue
			}
			for _, bad := range forbidden[layer] {
				if dep == mod+bad || strings.HasPrefix(dep, mod+bad+"/") {
					t.Errorf("%s depends on %s: DESIGN.md forbids it", layer, dep)
				}
			}
		}
	}
}

// TestDeviceIDLeaf checks the shared leaf imports only the standard library.
func TestDeviceIDLeaf(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "../../transport/deviceid").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 1 {
		t.Errorf("transport/deviceid depends on %v, want the standard library only", got)
	}
}
