package eventstore

import "github.com/IBM/sarama"

// SetSaramaVersion lets tests try protocol levels.
func SetSaramaVersion(v sarama.KafkaVersion) { saramaVersion = v }
