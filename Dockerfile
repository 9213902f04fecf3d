# The prescale image: a static binary on a distroless, non-root base.
#   make image-docker IMAGE=prescale:v0.1.0   (needs a Docker engine and a registry; without
#   them, make image builds the same image: docs/install.md, "The image")
ARG GO_IMAGE=golang:1.26
ARG BASE_IMAGE=gcr.io/distroless/static-debian12:nonroot

FROM ${GO_IMAGE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/prescale ./cmd/prescale

FROM ${BASE_IMAGE}
COPY --from=build /out/prescale /prescale
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/prescale"]
