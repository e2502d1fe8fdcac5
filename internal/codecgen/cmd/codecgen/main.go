// Command codecgen writes domain/codec_gen.go from domain's event structs
// (package internal/codecgen). Run by `go generate ./domain`, in that folder.
package main

import (
	"fmt"
	"os"

	"github.com/seckill/seckill/internal/codecgen"
)

func main() {
	if err := codecgen.Write("."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
