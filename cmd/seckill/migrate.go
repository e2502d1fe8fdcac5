package main

import (
	"context"
	"fmt"

	"github.com/seckill/seckill/migrations"
)

func runMigrate(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "migrate", "migrate [--database-url URL]")
	var ep endpoints
	ep.bind(c, fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	ep.fromDev()
	if err := ep.need(false, true, false, false); err != nil {
		return err
	}
	if err := migrations.Up(ctx, ep.DatabaseURL); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "migrations applied")
	return nil
}
