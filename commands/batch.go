package commands

import "sync"

// Group commit. Concurrent commands of one shard are decided by one script
// call: the first caller runs at once with whatever is queued (a lone request
// waits for nothing), and while up to inFlight calls are on their way to
// Redis the callers that arrive queue up and go together in the next one.
// The batch is formed in arrival order and the script decides its items in
// that order, each atomically, exactly as one call per item would (the
// script is the one-at-a-time script in a loop; TestBatchedEqualsOneAtATime).
// The wait is bounded by the round trip in progress: no timer, no linger.

// batchItem is what a batched command carries: a channel (buffered, one)
// on which it is handed a batch to run, itself first, or nil once a batch
// that held it has run.
type batchItem[T any] interface{ wakeup() chan []T }

// batcher runs batches of items with run, at most inFlight at a time and at
// most max items each.
type batcher[T batchItem[T]] struct {
	max, inFlight int
	run           func([]T)

	mu      sync.Mutex
	queue   []T
	running int
}

func newBatcher[T batchItem[T]](max, inFlight int, run func([]T)) *batcher[T] {
	return &batcher[T]{max: max, inFlight: inFlight, run: run}
}

// do queues item and returns once a batch that held it has run. The caller's
// goroutine may run a batch itself (its own and others'), so no goroutine
// is started per batch and a lone request pays one call.
func (b *batcher[T]) do(item T) {
	wake := item.wakeup()
	b.mu.Lock()
	b.queue = append(b.queue, item)
	if b.running >= b.inFlight {
		b.mu.Unlock()
	} else {
		b.running++
		batch := b.cut()
		b.mu.Unlock()
		b.lead(batch)
	}
	for batch := range wake {
		if batch == nil {
			return
		}
		b.lead(batch)
	}
}

// cut takes the head of the queue as a batch; the caller holds mu.
func (b *batcher[T]) cut() []T {
	n := min(len(b.queue), b.max)
	batch := make([]T, n)
	copy(batch, b.queue)
	b.queue = b.queue[n:]
	if len(b.queue) == 0 {
		b.queue = nil // do not pin the items' memory
	}
	return batch
}

// lead runs batch and wakes its items; then it hands the next batch to its
// first item, if anything is queued, rather than run it on a goroutine whose
// own answer is ready. The caller is counted in running, which the hand-off
// passes on.
func (b *batcher[T]) lead(batch []T) {
	b.run(batch)
	for _, it := range batch {
		it.wakeup() <- nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.queue) == 0 {
		b.running--
		return
	}
	next := b.cut()
	next[0].wakeup() <- next
}
