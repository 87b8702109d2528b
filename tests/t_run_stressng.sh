#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run_stressng.sh PAGEMOVE [ignored]
#
# stress-ng's vm stressors, every method, with --verify, under pagemove
# run with a fast tier of a quarter of their memory: 0 verify failures, and
# their buffers are managed (a userfaultfd registers them in the workers).
# 256 MB for 20 s (512 MB for 60 s under PMV_STRESS).
# Exit: 0 pass, 1 fail, 77 skip.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/run_lib.sh"
need stress-ng

mb=256 secs=20
[ -n "$big" ] && mb=512 secs=60
fast=$((mb / 4))
"$PM" run --tiers "mem:${fast}M,mem" -- stress-ng --vm 2 --vm-bytes "${mb}M" --vm-method all \
	--verify -t "${secs}s" --metrics-brief >"$tmp/log" 2>&1 &
rpid=$!
# the workers' buffers, once they exist (watchdog: the run itself)
seen=0
while kill -0 "$rpid" 2>/dev/null && [ "$seen" = 0 ]; do
	for p in $(pgrep -f stress-ng-vm 2>/dev/null); do
		[ "$(managed_vmas "$p")" -gt 0 ] && seen=1
	done
	sleep 0.5
done
wait "$rpid"
rc=$?
[ "$rc" = 0 ] && ok "stress-ng --vm --verify: exit 0" || { bad "stress-ng: exit $rc"; show "$tmp/log"; }
if grep -qi 'fail\|verif.*error\|detected' "$tmp/log"; then
	bad "stress-ng reports failures"; grep -i 'fail\|error\|detected' "$tmp/log" | show
else
	ok "stress-ng reports no verify failure"
fi
grep 'metrc.* vm ' "$tmp/log" | show
[ "$seen" = 1 ] && ok "the workers' buffers are managed" || bad "no worker had managed memory"
finish t_run_stressng "stress-ng --vm --verify under pagemove run: no failure, buffers managed"
