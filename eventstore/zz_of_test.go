package eventstore_test

import (
	"os"
	"testing"

	"github.com/IBM/sarama"
)

func TestZZOffsetFetch(t *testing.T) {
	if os.Getenv("ZZ") == "" {
		t.Skip()
	}
	b := startBroker(t, 2)
	for _, v := range []sarama.KafkaVersion{sarama.V2_3_0_0, sarama.V2_4_0_0, sarama.V2_5_0_0} {
		conf := sarama.NewConfig()
		conf.Version = v
		br := sarama.NewBroker(b.Addrs()[0])
		if err := br.Open(conf); err != nil {
			t.Fatal(err)
		}
		req := sarama.NewOffsetFetchRequest(v, "g", map[string][]int32{testTopic: {0}})
		resp, err := br.FetchOffset(req)
		t.Logf("%v offsetfetch v%d: err=%v resp=%+v", v, req.Version, err, resp)
		hb, err := br.Heartbeat(&sarama.HeartbeatRequest{Version: 4, GroupId: "g", MemberId: "m", GenerationId: 1})
		t.Logf("%v heartbeat v4: err=%v resp=%+v", v, err, hb)
		br.Close()
	}
}
