package challenge_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seckill/seckill/challenge"
	"github.com/seckill/seckill/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func newChallenges(t *testing.T, now *time.Time) *challenge.Challenges {
	t.Helper()
	c, err := challenge.New(challenge.Config{Key: challenge.DeriveKey([]byte("a secret of 16+ bytes")), Now: func() time.Time { return *now }}, testenv.Redis(t))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 11, 20, 0, 0, 0, time.UTC)
	c := newChallenges(t, &now)
	ch, err := c.Issue("sale1", "alice", 10)
	if err != nil {
		t.Fatal(err)
	}
	if ch.Bits != 10 || !ch.ExpiresAt.Equal(now.Add(10*time.Minute)) || ch.Header != challenge.Header || len(ch.Challenge) > 55 {
		t.Errorf("issued %+v (%d bytes): want 10 bits, 10 minutes, ≤ 55 bytes", ch, len(ch.Challenge))
	}
	sol, err := challenge.Solve(context.Background(), ch.Challenge, 10)
	if err != nil {
		t.Fatal(err)
	}
	if challenge.LeadingZeroBits(sha256.Sum256([]byte(sol))) < 10 {
		t.Fatalf("Solve returned %q, which has too few zero bits", sol)
	}
	// A counter that fails: the next ones until one has too few bits.
	var wrong string
	for i := 0; ; i++ {
		s := ch.Challenge + "." + strings.Repeat("9", 1+i%5) + string(rune('0'+i%10))
		if challenge.LeadingZeroBits(sha256.Sum256([]byte(s))) < 10 {
			wrong = s
			break
		}
	}
	later := now.Add(10 * time.Minute)
	for _, tc := range []struct {
		name       string
		solution   string
		sale, user string
		minBits    int
		at         time.Time
		want       error
	}{
		{"right", sol, "sale1", "alice", 10, now, nil},
		{"right, easier sale", sol, "sale1", "alice", 8, now, nil},
		{"another user", sol, "sale1", "bob", 10, now, challenge.ErrInvalid},
		{"another sale", sol, "sale2", "alice", 10, now, challenge.ErrInvalid},
		{"the sale asks more bits than the challenge", sol, "sale1", "alice", 12, now, challenge.ErrInvalid},
		{"too few zero bits", wrong, "sale1", "alice", 10, now, challenge.ErrInvalid},
		{"the challenge alone", ch.Challenge, "sale1", "alice", 10, now, challenge.ErrInvalid},
		{"bits raised by the client", strings.Replace(sol, ".10.", ".30.", 1), "sale1", "alice", 10, now, challenge.ErrInvalid},
		{"not a number", ch.Challenge + ".x1", "sale1", "alice", 10, now, challenge.ErrInvalid},
		{"too long", sol + strings.Repeat("0", 200), "sale1", "alice", 10, now, challenge.ErrInvalid},
		{"empty", "", "sale1", "alice", 10, now, challenge.ErrInvalid},
		{"expired", sol, "sale1", "alice", 10, later, challenge.ErrExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			c := newChallenges(t, &at)
			if err := c.Check(tc.solution, tc.sale, tc.user, tc.minBits); !errors.Is(err, tc.want) {
				t.Errorf("Check = %v, want %v", err, tc.want)
			}
		})
	}
}

// A solution is spent once, however many nodes try at the same moment.
func TestSpendOnce(t *testing.T) {
	t.Parallel()
	now := time.Now()
	c := newChallenges(t, &now)
	ch, err := c.Issue("sale1", "alice", 4)
	if err != nil {
		t.Fatal(err)
	}
	sol, err := challenge.Solve(context.Background(), ch.Challenge, 4)
	if err != nil {
		t.Fatal(err)
	}
	var spent, used atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			switch err := c.Spend(context.Background(), sol); {
			case err == nil:
				spent.Add(1)
			case errors.Is(err, challenge.ErrUsed):
				used.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if spent.Load() != 1 || used.Load() != 31 {
		t.Errorf("32 concurrent spends: %d succeeded, %d told used; want 1 and 31", spent.Load(), used.Load())
	}
	// Another challenge of the same user is a fresh one.
	ch2, _ := c.Issue("sale1", "alice", 4)
	sol2, _ := challenge.Solve(context.Background(), ch2.Challenge, 4)
	if err := c.Spend(context.Background(), sol2); err != nil {
		t.Errorf("a second challenge: %v", err)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	if _, err := challenge.New(challenge.Config{Key: []byte("short")}, testenv.Redis(t)); err == nil {
		t.Error("New accepted a 5-byte key")
	}
}
