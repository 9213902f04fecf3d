package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// dockerfile is what the published Dockerfile says of the final image: its ENTRYPOINT, USER
// and EXPOSE lines, and where its COPY puts the binary.
type dockerfile struct {
	entrypoint []string
	user       string
	expose     string
	copyTo     string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerfile
	final := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			final = !slices.Contains(fields, "AS") // the last stage has no name here
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(strings.TrimSpace(strings.TrimPrefix(sc.Text(), fields[0]))), &d.entrypoint); err != nil {
				t.Fatalf("Dockerfile ENTRYPOINT: want the exec form, got %q: %v", sc.Text(), err)
			}
		case "USER":
			d.user = fields[1]
		case "EXPOSE":
			d.expose = fields[1]
		case "COPY":
			if final {
				d.copyTo = fields[len(fields)-1]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

// built builds the image from a stand-in binary and reads it back from its archive, as
// podman load would.
func built(t *testing.T) (*v1.ConfigFile, map[string]*tar.Header, map[string][]byte) {
	t.Helper()
	dir := t.TempDir()
	bin, ca := filepath.Join(dir, "prescale"), filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(bin, []byte("\x7fELF stand-in"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "image.tar")
	if err := run(options{binary: bin, ca: ca, tag: "prescale:test", out: out, arch: "amd64"}); err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d (%v), want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	headers, bodies := map[string]*tar.Header{}, map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		headers[name] = h
		if bodies[name], err = io.ReadAll(tr); err != nil {
			t.Fatal(err)
		}
	}
	return cf, headers, bodies
}

// The image that make image builds is the Dockerfile's: the same entrypoint, user, port and
// binary path, and the files of distroless' static nonroot base that prescale uses.
func TestImageIsTheDockerfiles(t *testing.T) {
	d := readDockerfile(t)
	cf, headers, bodies := built(t)
	if !slices.Equal(cf.Config.Entrypoint, d.entrypoint) {
		t.Errorf("entrypoint %q, the Dockerfile's %q", cf.Config.Entrypoint, d.entrypoint)
	}
	if d.copyTo != d.entrypoint[0] || headers[d.copyTo] == nil || headers[d.copyTo].Mode&0o111 == 0 {
		t.Errorf("the Dockerfile copies the binary to %s, its entrypoint is %s; the image has it: %+v", d.copyTo, d.entrypoint[0], headers[d.copyTo])
	}
	// USER nonroot:nonroot is distroless' 65532:65532, which the image names by number so
	// that runAsNonRoot can verify it without reading /etc/passwd.
	name, grp, _ := strings.Cut(d.user, ":")
	if name != userName || grp != userName || cf.Config.User != "65532:65532" {
		t.Errorf("user %q, the Dockerfile's %q (distroless' nonroot is 65532)", cf.Config.User, d.user)
	}
	if !strings.Contains(string(bodies["/etc/passwd"]), "nonroot:x:65532:65532:") || !strings.Contains(string(bodies["/etc/group"]), "nonroot:x:65532:") {
		t.Errorf("passwd %q, group %q: want distroless' nonroot entries", bodies["/etc/passwd"], bodies["/etc/group"])
	}
	if _, ok := cf.Config.ExposedPorts[d.expose+"/tcp"]; !ok {
		t.Errorf("exposed ports %v, the Dockerfile's %s", cf.Config.ExposedPorts, d.expose)
	}
	if h := headers[caPath]; h == nil || string(bodies[caPath]) != "-----BEGIN CERTIFICATE-----\n" {
		t.Errorf("no CA bundle at %s", caPath)
	}
	if h := headers["/tmp"]; h == nil || h.Typeflag != tar.TypeDir || h.Mode != 0o1777 {
		t.Errorf("/tmp: %+v, want a world-writable sticky directory", h)
	}
	if h := headers[home]; h == nil || h.Uid != uid {
		t.Errorf("%s: %+v, want a directory owned by %d", home, h, uid)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" {
		t.Errorf("platform %s/%s, want linux/amd64", cf.OS, cf.Architecture)
	}
}

// Two builds of the same inputs are the same image: no timestamp of the build is in it.
func TestImageIsReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prescale")
	if err := os.WriteFile(bin, []byte("binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	var digests []v1.Hash
	for range 2 {
		img, err := build(options{binary: bin, ca: bin, arch: "amd64"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("two builds: %s and %s", digests[0], digests[1])
	}
}

func TestRunNamesWhatIsMissing(t *testing.T) {
	for _, tc := range []struct {
		o    options
		want string
	}{
		{options{out: "x"}, "-binary: required"},
		{options{binary: "x"}, "-out: required"},
		{options{binary: "/nonexistent/prescale", out: "x"}, "read the binary"},
		{options{binary: "image_test.go", ca: "/nonexistent/ca.crt", out: "x"}, "read the CA bundle"},
		{options{binary: "image_test.go", ca: "image_test.go", out: filepath.Join(t.TempDir(), "i.tar"), tag: "Not A Tag!"}, `-tag "Not A Tag!"`},
	} {
		if err := run(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%+v) = %v, want an error saying %q", tc.o, err, tc.want)
		}
	}
}
