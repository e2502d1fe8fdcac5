package main

import (
	"context"
	"fmt"

	"github.com/seckill/seckill/migrations"
)

func runMigrate(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "migrate", "migrate [--database-url URL] [--daily-database-url URL]")
	var ep endpoints
	ep.bind(c, fs)
	dailyURL := fs.String("daily-database-url", c.getenv("SECKILL_DAILY_DATABASE_URL"),
		"the daily projection's own database, if it has one: migrated too (env SECKILL_DAILY_DATABASE_URL)")
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
	if *dailyURL != "" && *dailyURL != ep.DatabaseURL {
		if err := migrations.Up(ctx, *dailyURL); err != nil {
			return fmt.Errorf("daily database: %w", err)
		}
	}
	fmt.Fprintln(c.stdout, "migrations applied")
	return nil
}
