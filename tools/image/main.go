// Command image builds prescale's container image without a Docker engine or a registry:
// one layer holding the static binary, a CA bundle and the passwd entry of the non-root
// user, on no base, written as an image archive that `podman load` (or `docker load`) reads.
// Its content is the Dockerfile's: the binary at /prescale as the entrypoint, user 65532
// (distroless' nonroot), port 8080, and the files of the distroless static base that the
// binary uses (image_test.go holds the two to each other).
//
//	go run . -binary ../../bin/image/prescale -tag prescale:dev -out ../../bin/prescale-image.tar
//
// The archive is reproducible: every timestamp is zero, so the same binary and CA bundle
// give the same image digest.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
)

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the static prescale binary (CGO_ENABLED=0)")
	flag.StringVar(&o.ca, "ca", "/etc/ssl/certs/ca-certificates.crt", "the CA bundle to install at "+caPath)
	flag.StringVar(&o.tag, "tag", "prescale:dev", "the image's name and tag")
	flag.StringVar(&o.out, "out", "", "the image archive to write")
	flag.StringVar(&o.arch, "arch", runtime.GOARCH, "the binary's architecture")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "image:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	switch {
	case o.binary == "":
		return fmt.Errorf("-binary: required")
	case o.out == "":
		return fmt.Errorf("-out: required")
	}
	img, err := build(o)
	if err != nil {
		return err
	}
	if err := write(img, o.tag, o.out); err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return fmt.Errorf("digest of the image: %w", err)
	}
	fmt.Printf("image: %s (%s) written to %s\n", o.tag, d, o.out)
	return nil
}
