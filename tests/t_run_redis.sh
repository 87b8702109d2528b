#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run_redis.sh PAGEMOVE [ignored]
#
# redis-server under pagemove run with a fast tier of a quarter of its
# data. The expected DEBUG DIGEST is that of a native redis given the same
# commands. Under run: keys loaded with redis-cli --pipe, a skewed GET mix
# (redis-benchmark) while tiering moves pages, BGSAVE (a fork) in the
# middle of it, then a second batch of writes; the digest must be the
# native one, redis-check-rdb must pass both dumps, and a redis
# restarted (under run) from that dump must have the same digest.
# About 60 MB of keys (400 MB under PMV_STRESS).
# Exit: 0 pass, 1 fail, 77 skip.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/run_lib.sh"
need redis-server redis-cli redis-benchmark redis-check-rdb

keys=200000 vlen=200 fast=16M reqs=200000
[ -n "$big" ] && keys=1000000 vlen=400 fast=100M reqs=2000000
port=$((20000 + $$ % 20000))
rpid=
# stop what start started, also a redis that does not answer
cleanup() {
	[ -n "$rpid" ] || return 0
	redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
	i=0
	while kill -0 "$rpid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	for c in $(pgrep -P "$rpid" 2>/dev/null); do kill -9 "$c"; done
	kill -9 "$rpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
	rpid=
}
cli() { redis-cli -p "$port" "$@"; }

# The commands, in redis protocol: A loads the keys benchmark names
# (key:%012d), B rewrites every seventh and deletes every eleventh.
gen() {
	awk -v n="$keys" -v vlen="$vlen" -v part="$1" 'BEGIN {
		pad = sprintf("%" vlen "s", ""); gsub(/ /, "x", pad)
		for (i = 0; i < n; i++) {
			k = sprintf("key:%012d", i)
			if (part == "A") {
				v = substr(sprintf("%d", i * 2654435761 % 4294967296) pad, 1, vlen)
				printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
			} else if (i % 11 == 0) {
				printf "*2\r\n$3\r\nDEL\r\n$%d\r\n%s\r\n", length(k), k
			} else if (i % 7 == 0) {
				v = "B" i
				printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n", length(k), k, length(v), v
			}
		}
	}'
}
gen A >"$tmp/a.resp"
gen B >"$tmp/b.resp"

# start DIR [pagemove run args...]: redis-server in DIR, wait until it answers
start() {
	dir=$1; shift
	mkdir -p "$dir"
	"$@" redis-server --port "$port" --dir "$dir" --save "" --appendonly no \
		--daemonize no --enable-debug-command local --logfile "$dir/log" &
	rpid=$!
	i=0
	until [ "$(cli ping 2>/dev/null)" = PONG ] &&
	      cli info persistence 2>/dev/null | grep -q '^loading:0'; do
		i=$((i + 1))
		[ $i -gt 100 ] && { bad "redis did not start"; show "$dir/log"; finish t_run_redis x; }
		sleep 0.1
	done
}
stop() { cleanup; }
wait_bgsave() {
	i=0
	while cli info persistence | grep -q 'rdb_bgsave_in_progress:1'; do
		i=$((i + 1)); [ $i -gt 1200 ] && break; sleep 0.1
	done
	cli info persistence | grep -q 'rdb_last_bgsave_status:ok'
}
RUN="$PM run --tiers mem:$fast,mem --"

start "$tmp/native"
cli --pipe <"$tmp/a.resp" >/dev/null && cli --pipe <"$tmp/b.resp" >/dev/null
want=$(cli debug digest)
stop
note "native digest $want"

start "$tmp/run" $RUN
cli --pipe <"$tmp/a.resp" >"$tmp/pipe" 2>&1 || { bad "redis-cli --pipe A"; show "$tmp/pipe"; }
um=$(managed_vmas "$(cli info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')")
[ "$um" -gt 0 ] && ok "redis's memory is managed ($um mappings)" || bad "redis has no managed mapping"
redis-benchmark -p "$port" -q -t get -n "$reqs" -r "$keys" -c 8 >"$tmp/bench" 2>&1 &
bpid=$!
sleep 1
cli bgsave >/dev/null
wait_bgsave && ok "BGSAVE during the GET mix" || bad "BGSAVE failed"
wait "$bpid"
tr '\r' '\n' <"$tmp/bench" | grep 'requests per second' | show
redis-check-rdb "$tmp/run/dump.rdb" >"$tmp/chk" 2>&1 && ok "redis-check-rdb: the mid-run dump" ||
	{ bad "redis-check-rdb mid-run"; show "$tmp/chk"; }
cli --pipe <"$tmp/b.resp" >/dev/null 2>&1
got=$(cli debug digest)
[ -n "$want" ] && [ "$got" = "$want" ] && ok "digest under run is the native one" ||
	bad "digest $got, want $want"
run_stats "$(cli info server | sed -n 's/^process_id:\([0-9]*\).*/\1/p')"
# the end's dump synchronously: a BGSAVE just asked may not have started yet
[ "$(cli save)" = OK ] && ok "SAVE at the end" || bad "SAVE at the end failed"
redis-check-rdb "$tmp/run/dump.rdb" >"$tmp/chk" 2>&1 && ok "redis-check-rdb: the final dump" ||
	{ bad "redis-check-rdb final"; show "$tmp/chk"; }
stop

start "$tmp/run" $RUN
got=$(cli debug digest)
[ "$got" = "$want" ] && ok "restarted from the dump: the same digest" ||
	bad "restarted: digest $got, want $want"
stop
finish t_run_redis "redis under pagemove run: digests, BGSAVE and its dumps are right"
