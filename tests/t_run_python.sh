#!/bin/sh
# SPDX-License-Identifier: MIT
#
# t_run_python.sh PAGEMOVE [ignored]
#
# python3 under pagemove run with a fast tier of a quarter of its data:
# large lists, dicts and bytearrays (NumPy arrays when installed), hashed
# when built and again after a skewed access loop while the policy
# migrates; the hashes must match and the data be managed.
# Exit: 0 pass, 1 fail, 77 skip.
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/tests/run_lib.sh"
need python3

scale=1
[ -n "$big" ] && scale=4
cat >"$tmp/work.py" <<'PY'
import hashlib, os, random, sys, time
scale, secs = int(sys.argv[1]), float(sys.argv[2])
random.seed(12)
def digest(objs):
    h = hashlib.sha256()
    for o in objs:
        if isinstance(o, (bytes, bytearray)):
            h.update(o)
        elif isinstance(o, dict):
            for k, v in o.items():
                h.update(b"%d=%s;" % (k, v))
        else:
            h.update(repr(o).encode())
    try:
        import numpy
        h.update(arr.tobytes())
    except Exception:
        pass
    return h.hexdigest()
blob = bytearray(random.getrandbits(8) for _ in range(1 << 20)) * (48 * scale)
lst = [i * 7 % 1000003 for i in range(3000000 * scale)]
dct = {i: b"v%08d" % i for i in range(400000 * scale)}
arr = None
try:
    import numpy
    arr = numpy.arange(8000000 * scale, dtype=numpy.int64) * 3
except Exception:
    pass
objs = [blob, lst, dct]
h1 = digest(objs)
um = sum(1 for l in open("/proc/self/smaps") if l.startswith("VmFlags") and " um" in l)
print("managed mappings", um, "numpy", arr is not None, flush=True)
# skewed reads and writes (a hot tenth), written back as they were
end = time.time() + secs
n = len(blob)
while time.time() < end:
    for _ in range(2000):
        i = random.randrange(n // 10) if random.random() < 0.9 else random.randrange(n)
        blob[i] = blob[i] ^ 0xff
        blob[i] = blob[i] ^ 0xff
    s = sum(lst[:100000])
h2 = digest(objs)
print("hash", h1[:16], h2[:16], flush=True)
try:
    st = open("/dev/shm/pagemove-run.%d.%d" % (os.getuid(), os.getpid())).read().split("\n")
    print(" ".join(l for l in st if l.split(" ")[0] in ("migrations", "promoted", "demoted")))
except OSError:
    pass
sys.exit(0 if h1 == h2 and um > 0 else 1)
PY
"$PM" run --tiers mem:32M,mem --stats-interval 0.5 -- python3 "$tmp/work.py" "$scale" 8 \
	>"$tmp/out" 2>&1
rc=$?
show "$tmp/out"
[ "$rc" = 0 ] && ok "python3: the hashes match after migration, data managed" ||
	bad "python3: exit $rc"
finish t_run_python "python3 under pagemove run keeps its lists, dicts and bytearrays"
