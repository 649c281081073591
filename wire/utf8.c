/* Strict UTF-8 (utf8.h). */
#include "utf8.h"

size_t
utf8_char_len(const unsigned char *p, size_t n)
{
	unsigned char c;
	size_t len, i;
	unsigned long cp;

	if (n == 0)
		return 0; /* before reading p[0]: p may be the buffer's end */
	c = p[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0; /* a continuation byte, or 0xc0/0xc1/0xf5.. */
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool
utf8_valid(const char *p, size_t n)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0, len;

	while (i < n) {
		if ((len = utf8_char_len(u + i, n - i)) == 0)
			return false;
		i += len;
	}
	return true;
}
