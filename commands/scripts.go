package commands

import (
	_ "embed"

	"github.com/redis/go-redis/v9"
)

// The gate's scripts (lua/). Each decides one step on one slot, checks
// everything that can fail before it writes, and appends the step's events
// to its slot's outbox in the same step.
var (
	//go:embed lua/lib.lua
	libLua string
	//go:embed lua/create_head.lua
	createHeadLua string
	//go:embed lua/init_shard.lua
	initShardLua string
	//go:embed lua/migrate_head.lua
	migrateHeadLua string
	//go:embed lua/purchase.lua
	purchaseLua string
	//go:embed lua/pay.lua
	payLua string
	//go:embed lua/expire.lua
	expireLua string
	//go:embed lua/move_out.lua
	moveOutLua string
	//go:embed lua/credit.lua
	creditLua string
	//go:embed lua/end_begin.lua
	endBeginLua string
	//go:embed lua/close_shard.lua
	closeShardLua string
	//go:embed lua/collect_shard.lua
	collectShardLua string
	//go:embed lua/end_finish.lua
	endFinishLua string
)

// scripts are the gate's scripts, made once per gate.
type scripts struct {
	createHead, initShard, migrateHead     *redis.Script
	purchase, pay, expire                  *redis.Script
	moveOut, credit                        *redis.Script
	endBegin, closeShard, collect, endDone *redis.Script
}

func newScripts() scripts {
	return scripts{
		createHead: redis.NewScript(createHeadLua), initShard: redis.NewScript(initShardLua),
		migrateHead: redis.NewScript(migrateHeadLua),
		purchase:    redis.NewScript(libLua + purchaseLua), pay: redis.NewScript(libLua + payLua), expire: redis.NewScript(libLua + expireLua),
		moveOut: redis.NewScript(moveOutLua), credit: redis.NewScript(creditLua),
		endBegin: redis.NewScript(endBeginLua), closeShard: redis.NewScript(closeShardLua),
		collect: redis.NewScript(collectShardLua), endDone: redis.NewScript(endFinishLua),
	}
}

func (s scripts) all() []*redis.Script {
	return []*redis.Script{s.createHead, s.initShard, s.migrateHead, s.purchase, s.pay, s.expire,
		s.moveOut, s.credit, s.endBegin, s.closeShard, s.collect, s.endDone}
}
