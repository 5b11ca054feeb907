package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestResolvePaths(t *testing.T) {
	cases := []struct {
		name string
		home string
		env  map[string]string
		want Paths
		ok   bool
	}{
		{"home", "/h", nil, Paths{Home: "/h", Config: "/h/config.toml", Identity: "/h/identity", Index: "/h/index", Socket: "/h/syncd.sock", Lock: "/h/syncd.lock"}, true},
		{"home wins over xdg", "/h/", map[string]string{"XDG_CONFIG_HOME": "/c"}, Paths{Home: "/h", Config: "/h/config.toml", Identity: "/h/identity", Index: "/h/index", Socket: "/h/syncd.sock", Lock: "/h/syncd.lock"}, true},
		{"xdg", "", map[string]string{"XDG_CONFIG_HOME": "/c", "XDG_DATA_HOME": "/d", "HOME": "/u"},
			Paths{Home: "/c/syncd", Config: "/c/syncd/config.toml", Identity: "/c/syncd/identity", Index: "/d/syncd/index", Socket: "/c/syncd/syncd.sock", Lock: "/c/syncd/syncd.lock"}, true},
		{"xdg defaults", "", map[string]string{"HOME": "/u"},
			Paths{Home: "/u/.config/syncd", Config: "/u/.config/syncd/config.toml", Identity: "/u/.config/syncd/identity", Index: "/u/.local/share/syncd/index", Socket: "/u/.config/syncd/syncd.sock", Lock: "/u/.config/syncd/syncd.lock"}, true},
		{"relative xdg ignored", "", map[string]string{"XDG_CONFIG_HOME": "rel", "XDG_DATA_HOME": "rel2", "HOME": "/u"},
			Paths{Home: "/u/.config/syncd", Config: "/u/.config/syncd/config.toml", Identity: "/u/.config/syncd/identity", Index: "/u/.local/share/syncd/index", Socket: "/u/.config/syncd/syncd.sock", Lock: "/u/.config/syncd/syncd.lock"}, true},
		{"xdg without HOME", "", map[string]string{"XDG_CONFIG_HOME": "/c", "XDG_DATA_HOME": "/d"},
			Paths{Home: "/c/syncd", Config: "/c/syncd/config.toml", Identity: "/c/syncd/identity", Index: "/d/syncd/index", Socket: "/c/syncd/syncd.sock", Lock: "/c/syncd/syncd.lock"}, true},
		{"no HOME", "", nil, Paths{}, false},
		{"relative HOME", "", map[string]string{"HOME": "u"}, Paths{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := resolvePathsEnv(tc.home, func(k string) string { return tc.env[k] })
			if (err == nil) != tc.ok {
				t.Fatalf("resolvePathsEnv(%q) error = %v, want ok=%v", tc.home, err, tc.ok)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("resolvePathsEnv(%q) mismatch (-want +got):\n%s", tc.home, diff)
			}
		})
	}
}

func TestResolvePathsRelativeHome(t *testing.T) {
	t.Chdir(t.TempDir())
	p, err := resolvePaths("rel")
	if err != nil {
		t.Fatal(err)
	}
	if p.Home[0] != '/' || p.Config != p.Home+"/config.toml" {
		t.Errorf("resolvePaths(rel) = %+v, want absolute paths", p)
	}
}
