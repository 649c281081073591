/*
 * Waiting longer after each failure in a row, for what is made again
 * when it goes: the link to the host gateway (gwlink.c), the links to
 * the user's registries on other hosts (dist.c) and the standby
 * (standby.c).
 */
#ifndef LOCAL_BACKOFF_H
#define LOCAL_BACKOFF_H

/* min_ms after no failure, doubled for each one, at most max_ms. */
static inline int
backoff_ms(int min_ms, int max_ms, int failures)
{
	int ms = min_ms;

	while (failures-- > 0 && ms < max_ms)
		ms *= 2;
	return ms < max_ms ? ms : max_ms;
}

#endif
