package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/seckill/seckill/eventstore"
)

func runBroker(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "broker", "broker [--addr 127.0.0.1:9092] [--data DIR]")
	var ep endpoints
	ep.bind(c, fs)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address of the broker")
	partitions := fs.Int("partitions", 16, "partitions of the event topic")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := eventstore.StartBroker(ctx, eventstore.BrokerConfig{
		Addr: *addr, DataDir: filepath.Join(ep.Data, "kafka"), Topic: ep.Topic, Partitions: *partitions,
	})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(c.stdout, "broker listening on %v, topic %s, log in %s\n", b.Addrs(), ep.Topic, filepath.Join(ep.Data, "kafka"))
	<-ctx.Done()
	return nil
}
