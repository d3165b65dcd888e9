# A shard image for `cargo shard go` and `cargo shard exec` on Go suites.
#
# `cargo shard go` builds static test binaries (CGO_ENABLED=0) on the build machine and ships
# them: any image with a shell runs them, so the plain Dockerfile's base alone is enough.
# `cargo shard exec -- make test-integration` runs your own build inside the shard: then the
# image needs the Go toolchain and make, which this one adds on the official Go image.
#
#   docker build --network none -t registry.example.com/ci/shard:go1.22 -f examples/shard-image/Dockerfile.go examples/shard-image
#   docker push registry.example.com/ci/shard:go1.22
#
# `--cgo` test binaries load the image's libc: build them on the same Debian release as BASE.
ARG BASE=golang:1.22-bookworm
FROM ${BASE}
# gocheck suites in GOPATH mode read GOPATH from the job's env; modules need nothing more.
ENV CGO_ENABLED=0
RUN ["go", "version"]
WORKDIR /shard
