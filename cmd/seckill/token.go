package main

import (
	"context"
	"fmt"
	"time"

	shttp "github.com/seckill/seckill/http"
)

func runToken(ctx context.Context, c cli, args []string) error {
	fs := newFlags(c, "token", "token --user ID [--admin] [--ttl 24h]")
	var ep endpoints
	ep.bind(c, fs)
	user := fs.String("user", "", "user id (the token's sub)")
	admin := fs.Bool("admin", false, "give the token the admin role")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *user == "" {
		return usageError{"--user is required"}
	}
	ep.fromDev()
	if err := ep.need(false, false, false, true); err != nil {
		return err
	}
	tok, err := shttp.NewToken([]byte(ep.JWTSecret), *user, *admin, *ttl)
	if err != nil {
		return usageError{err.Error()}
	}
	fmt.Fprintln(c.stdout, tok)
	return nil
}
