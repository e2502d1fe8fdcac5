package readmodels_test

import (
	"testing"

	"github.com/seckill/seckill/internal/testenv"
	"github.com/seckill/seckill/projections"
)

const topic = projections.DefaultTopic

func TestMain(m *testing.M) { testenv.Main(m) }
