package eventstore_test

import (
	"context"
	"testing"

	"github.com/seckill/seckill/domain"
	"github.com/seckill/seckill/eventstore"
	"github.com/seckill/seckill/internal/testenv"
)

const testTopic = testenv.Topic

func newPublisher(t testing.TB, brokers []string) eventstore.Publisher {
	t.Helper()
	pub, err := eventstore.NewPublisher(brokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close() })
	return pub
}

// countLog returns how many records the log holds, and fails the test if an
// event sits in it twice.
func countLog(t testing.TB, brokers []string) int {
	t.Helper()
	n, seen := 0, map[string]bool{}
	err := eventstore.ReadAll(context.Background(), brokers, testTopic, func(rec eventstore.Record) error {
		env, err := domain.DecodeEnvelope(rec.Value)
		if err != nil {
			return err
		}
		n++
		if seen[env.ID] {
			t.Errorf("event %s is in the log twice", env.ID)
		}
		seen[env.ID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}
