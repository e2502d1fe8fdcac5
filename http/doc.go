// Package http is the REST face of seckill: the chi router, its handlers, JWT
// authentication, request decoding, the one table that maps domain errors
// to HTTP statuses and error codes, and the static sale page (page.go).
package http
