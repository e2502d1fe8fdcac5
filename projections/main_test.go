package projections_test

import (
	"testing"

	"github.com/seckill/seckill/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func kafkaBrokers(t testing.TB, partitions int) []string { return testenv.Kafka(t, partitions) }
