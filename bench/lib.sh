# Shell helpers shared by bench/gateway/run.sh and bench/federation/run.sh
# (sourced).

# bench_stats DIGITS: values on stdin -> "median p99 max", DIGITS after
# the point ("- - -" for none).
bench_stats() {
	sort -g | awk -v d="$1" '{ v[NR] = $1 } END {
		if (NR == 0) { print "- - -"; exit }
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		r = int(0.99 * NR + 0.999999); if (r < 1) r = 1
		f = "%." d "f %." d "f %." d "f\n"
		printf f, m, v[r], v[NR] }'
}

# bench_remove_users USER...: end every process of each throwaway user,
# then the user.  A registry's standby takes over when its registry is
# killed, and forks a standby of its own, so one pass may leave a
# process behind: every process is stopped first (a stopped one cannot
# take over or fork), then killed, and that again (bounded) until none
# is left.
bench_remove_users() {
	local u i list
	[ "$#" -gt 0 ] || return 0
	# One scan of the processes for all of them (pkill -u takes a list).
	list=$(IFS=,; echo "$*")
	for i in 1 2 3 4 5 6 7 8 9 10; do
		pkill -STOP -u "$list" 2>/dev/null || true
		pkill -KILL -u "$list" 2>/dev/null || true
		sleep 0.2
		pgrep -u "$list" >/dev/null 2>&1 || break
	done
	for u in "$@"; do userdel "$u" 2>/dev/null || true; done
}
