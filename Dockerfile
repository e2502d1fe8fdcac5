FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# docker build --build-arg VERSION=v1.2.3: what `seckill version` and
# seckill_build_info report (the build context has no .git to stamp).
ARG VERSION=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-X github.com/seckill/seckill/internal/buildinfo.version=${VERSION}" -o /out/seckill ./cmd/seckill

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/seckill /usr/local/bin/seckill
ENTRYPOINT ["/usr/local/bin/seckill"]
