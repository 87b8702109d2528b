# abi-stub.awk MAP: the C source of a stub library exporting every symbol
# of a version script at every node that lists it, as the release did:
# the newest node of a symbol as its default version (name@@NODE, what a
# program linked against the stub binds to), the older ones as name@NODE.
# Without the .symver lines a symbol listed in two nodes (pmv_create in
# PAGEMOVE_0.1 and PAGEMOVE_0.3) would get only one of them.
{ sub(/\/\*.*\*\//, "") }
/\/\*/ { incomment = 1 }
incomment { if (/\*\//) incomment = 0; next }
/^[A-Za-z0-9_.]+[[:space:]]*\{/ { node = $1; sub(/\{.*/, "", node); next }
/^[[:space:]]*pmv_[a-z0-9_]*;/ {
	s = $1; sub(/;.*/, "", s)
	n[s]++; at[s, n[s]] = node
	if (!(s in seen)) { seen[s] = 1; order[++nsyms] = s }
}
END {
	for (i = 1; i <= nsyms; i++) {
		s = order[i]
		for (k = 1; k < n[s]; k++) {
			printf "void %s_v%d(void) {}\n", s, k
			printf "__asm__(\".symver %s_v%d, %s@%s\");\n", s, k, s, at[s, k]
		}
		printf "void %s(void) {}\n", s
		if (n[s] > 1)
			printf "__asm__(\".symver %s, %s@@@%s\");\n", s, s, at[s, n[s]]
	}
}
