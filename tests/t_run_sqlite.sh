#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run_sqlite.sh PAGEMOVE [ignored]
#
# sqlite3 under pagemove run: an in-memory database built by a script, its
# page cache one large block (-pagecache: sqlite's own pages are small
# mallocs, which stay glibc's), on a fast tier of a quarter of it. PRAGMA
# integrity_check and a checksum of every row before and after a loop of
# scans while the policy migrates; the page cache is managed (sqlite's
# .system asks the kernel). About 80 MB (400 MB under PMV_STRESS).
# Exit: 0 pass, 1 fail, 77 skip.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/run_lib.sh"
need sqlite3

rows=150000 loops=8
[ -n "$big" ] && rows=800000 loops=100
slots=$((rows / 6))
cat >"$tmp/db.sql" <<SQL
PRAGMA page_size=4096;
CREATE TABLE t(id INTEGER PRIMARY KEY, a TEXT, b BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < $rows)
INSERT INTO t SELECT i, printf('row%09d', i * 7919 % $rows), zeroblob(300) || printf('%d', i) FROM c;
CREATE INDEX ta ON t(a);
SELECT 'check1', (SELECT integrity_check FROM pragma_integrity_check),
	hex(sha3_query('SELECT * FROM t ORDER BY id'));
SQL
i=0
while [ $i -lt $loops ]; do
	echo "SELECT count(*), sum(length(b)) FROM t WHERE a > 'row$(printf %09d $((i * 4000)))';" >>"$tmp/db.sql"
	i=$((i + 1))
done
cat >>"$tmp/db.sql" <<'SQL'
.print managed
.system grep -c 'VmFlags:.* um' /proc/$PPID/smaps
SQL
cat >>"$tmp/db.sql" <<SQL
SELECT 'check2', (SELECT integrity_check FROM pragma_integrity_check),
	hex(sha3_query('SELECT * FROM t ORDER BY id'));
SQL
"$PM" run --tiers mem:24M,mem -- sqlite3 -pagecache 4360 "$slots" :memory: \
	<"$tmp/db.sql" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ "$rc" = 0 ] && ok "sqlite3: exit 0" || { bad "sqlite3: exit $rc"; show "$tmp/err"; }
c1=$(grep '^check1|' "$tmp/out")
c2=$(grep '^check2|' "$tmp/out" | sed 's/^check2/check1/')
case $c1 in check1\|ok\|*) ok "integrity_check ok before" ;; *) bad "before: $c1" ;; esac
[ -n "$c1" ] && [ "$c1" = "$c2" ] && ok "integrity and checksum the same after the scans" ||
	{ bad "after: '$c2' vs '$c1'"; show "$tmp/out"; }
um=$(sed -n '/^managed$/{n;p;}' "$tmp/out")
[ "${um:-0}" -gt 0 ] 2>/dev/null && ok "sqlite3's page cache is managed ($um mappings)" ||
	{ bad "sqlite3 has no managed mapping: '$um'"; show "$tmp/out"; }
finish t_run_sqlite "sqlite3's in-memory database is intact under pagemove run"
