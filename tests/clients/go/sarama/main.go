// Sarama test client for chronik-tui's tests/clients.rs, built in GOPATH mode against Debian's
// golang-github-shopify-sarama-dev (1.22). Usage:
//
//	sarama-client MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]
//
// Prints one JSON object a line. Sarama 1.22 commits marked offsets every CommitInterval and
// when the consumer group closes.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Shopify/sarama"
)

var outMu sync.Mutex

func emit(fields map[string]interface{}) {
	b, _ := json.Marshal(fields)
	outMu.Lock()
	fmt.Println(string(b))
	outMu.Unlock()
}

func fail(msg string) {
	emit(map[string]interface{}{"event": "error", "message": msg})
	os.Exit(1)
}

func key(i int) []byte { return []byte(fmt.Sprintf("key-%d", i)) }

func value(i int) []byte {
	v := []byte(fmt.Sprintf("chronik-%06d|", i))
	v = append(v, 0x00, 0xff, 0xfe, 0x80, 0xc3, 0x28, byte(i&0xff), byte((i*7)&0xff), '|')
	for n := 0; n < 1+i%5; n++ {
		v = append(v, []byte("compressible-")...)
	}
	return v
}

type args struct {
	mode, bootstrap, topic, group, compression string
	count, start                               int
	idleMs, timeoutMs                          int
	stopFile                                   string
	sasl                                       []string
}

func parse() args {
	if len(os.Args) < 8 {
		fail("usage: MODE BOOTSTRAP TOPIC GROUP COUNT COMPRESSION START [key=value ...]")
	}
	a := args{mode: os.Args[1], bootstrap: os.Args[2], topic: os.Args[3], group: os.Args[4],
		compression: os.Args[6], timeoutMs: 40000}
	var err error
	if a.count, err = strconv.Atoi(os.Args[5]); err != nil {
		fail("bad COUNT")
	}
	if a.start, err = strconv.Atoi(os.Args[7]); err != nil {
		fail("bad START")
	}
	for _, kv := range os.Args[8:] {
		parts := strings.SplitN(kv, "=", 2)
		if len(parts) != 2 {
			continue
		}
		n, _ := strconv.Atoi(parts[1])
		switch parts[0] {
		case "stop_file":
			a.stopFile = parts[1]
		case "sasl":
			a.sasl = strings.SplitN(parts[1], ":", 2)
		case "idle_ms":
			a.idleMs = n
		case "timeout_ms":
			a.timeoutMs = n
		}
	}
	return a
}

func config(a args) *sarama.Config {
	c := sarama.NewConfig()
	c.ClientID = "sarama-1.22"
	c.Version = sarama.V2_1_0_0
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 10 * time.Second
	c.Net.WriteTimeout = 10 * time.Second
	c.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Return.Successes = true
	c.Producer.Retry.Backoff = 100 * time.Millisecond
	switch a.compression {
	case "none":
		c.Producer.Compression = sarama.CompressionNone
	case "gzip":
		c.Producer.Compression = sarama.CompressionGZIP
	case "snappy":
		c.Producer.Compression = sarama.CompressionSnappy
	case "lz4":
		c.Producer.Compression = sarama.CompressionLZ4
	case "zstd":
		c.Producer.Compression = sarama.CompressionZSTD
	default:
		fail("unknown compression " + a.compression)
	}
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Offsets.CommitInterval = 500 * time.Millisecond
	c.Consumer.Group.Session.Timeout = 6 * time.Second
	c.Consumer.Group.Heartbeat.Interval = 1 * time.Second
	c.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	c.Consumer.MaxWaitTime = 200 * time.Millisecond
	c.Consumer.Return.Errors = true
	if len(a.sasl) == 2 {
		c.Net.SASL.Enable = true
		c.Net.SASL.Handshake = true
		c.Net.SASL.User = a.sasl[0]
		c.Net.SASL.Password = a.sasl[1]
	}
	return c
}

func produce(a args) {
	p, err := sarama.NewSyncProducer([]string{a.bootstrap}, config(a))
	if err != nil {
		fail("new producer: " + err.Error())
	}
	msgs := make([]*sarama.ProducerMessage, 0, a.count)
	for i := a.start; i < a.start+a.count; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic:   a.topic,
			Key:     sarama.ByteEncoder(key(i)),
			Value:   sarama.ByteEncoder(value(i)),
			Headers: []sarama.RecordHeader{{Key: []byte("idx"), Value: []byte(strconv.Itoa(i))}},
		})
	}
	if err := p.SendMessages(msgs); err != nil {
		fail("produce: " + err.Error())
	}
	for n, m := range msgs {
		emit(map[string]interface{}{"event": "produced", "index": a.start + n, "partition": m.Partition, "offset": m.Offset})
	}
	if err := p.Close(); err != nil {
		fail("close producer: " + err.Error())
	}
	emit(map[string]interface{}{"event": "done", "count": len(msgs)})
}

type handler struct {
	a       args
	mu      sync.Mutex
	got     int
	last    time.Time
	records chan struct{}
}

func (h *handler) Setup(s sarama.ConsumerGroupSession) error {
	parts := [][]interface{}{}
	for topic, ps := range s.Claims() {
		for _, p := range ps {
			parts = append(parts, []interface{}{topic, p})
		}
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i][1].(int32) < parts[j][1].(int32) })
	emit(map[string]interface{}{"event": "assigned", "partitions": parts, "generation": s.GenerationID()})
	return nil
}

func (h *handler) Cleanup(s sarama.ConsumerGroupSession) error {
	emit(map[string]interface{}{"event": "revoked"})
	return nil
}

func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		headers := map[string]interface{}{}
		for _, rh := range m.Headers {
			headers[string(rh.Key)] = hex.EncodeToString(rh.Value)
		}
		var k, v interface{}
		if m.Key != nil {
			k = hex.EncodeToString(m.Key)
		}
		if m.Value != nil {
			v = hex.EncodeToString(m.Value)
		}
		emit(map[string]interface{}{"event": "consumed", "partition": m.Partition, "offset": m.Offset,
			"key": k, "value": v, "headers": headers})
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.got++
		h.last = time.Now()
		h.mu.Unlock()
		select {
		case h.records <- struct{}{}:
		default:
		}
	}
	return nil
}

func (h *handler) done() bool {
	if h.a.stopFile != "" {
		_, err := os.Stat(h.a.stopFile)
		return err == nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	idle := time.Duration(h.a.idleMs) * time.Millisecond
	if h.a.count > 0 && h.got >= h.a.count {
		return h.a.idleMs == 0 || time.Since(h.last) >= idle
	}
	return h.a.count == 0 && h.got > 0 && h.a.idleMs > 0 && time.Since(h.last) >= idle
}

func consume(a args) {
	g, err := sarama.NewConsumerGroup([]string{a.bootstrap}, a.group, config(a))
	if err != nil {
		fail("new consumer group: " + err.Error())
	}
	go func() {
		for err := range g.Errors() {
			emit(map[string]interface{}{"event": "warning", "message": err.Error()})
		}
	}()
	h := &handler{a: a, records: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	consumeErr := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{a.topic}, h); err != nil {
				consumeErr <- err
				return
			}
		}
		consumeErr <- nil
	}()
	deadline := time.Now().Add(time.Duration(a.timeoutMs) * time.Millisecond)
	for !h.done() {
		if time.Now().After(deadline) {
			fail(fmt.Sprintf("consume: timed out after %d of %d records", h.got, a.count))
		}
		select {
		case err := <-consumeErr:
			if err != nil {
				fail("consume: " + err.Error())
			}
		case <-h.records:
		case <-time.After(100 * time.Millisecond):
		}
	}
	cancel()
	if err := <-consumeErr; err != nil {
		fail("consume: " + err.Error())
	}
	// Closing flushes the marked offsets (OffsetCommit) and leaves the group.
	if err := g.Close(); err != nil {
		fail("close consumer group: " + err.Error())
	}
	emit(map[string]interface{}{"event": "committed"})
	emit(map[string]interface{}{"event": "done", "count": h.got})
}

func main() {
	a := parse()
	switch a.mode {
	case "produce":
		produce(a)
	case "consume":
		consume(a)
	default:
		fail("unknown mode " + a.mode)
	}
}
