FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/seckill ./cmd/seckill

FROM gcr.io/distroless/static-debian12
COPY --from=build /out/seckill /usr/local/bin/seckill
ENTRYPOINT ["/usr/local/bin/seckill"]
