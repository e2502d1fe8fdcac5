package eventstore

import (
	"hash/fnv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Partitioner returns the partitioner a franz-go (kgo) writer of the log must
// use: the one the relay's producer uses (sarama's hash partitioner, FNV-1a of
// the key modulo the partition count), so that an aggregate's events land in
// one partition whichever tool wrote them (docs/CONTRACTS.md).
func Partitioner() kgo.Partitioner {
	return kgo.StickyKeyPartitioner(kgo.SaramaCompatHasher(func(key []byte) uint32 {
		h := fnv.New32a()
		_, _ = h.Write(key)
		return h.Sum32()
	}))
}

// PartitionOf is the partition of n that the relay's partitioner puts key in.
func PartitionOf(key string, n int) int32 {
	return int32(Partitioner().ForTopic("").Partition(&kgo.Record{Key: []byte(key)}, n))
}
