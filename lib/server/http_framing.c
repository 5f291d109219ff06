/*
 * The framing check of a request's headers (see http_framing.h). Trusts only
 * that evhttp kept every header line, duplicates included, in order.
 */
#include "server/http_framing.h"

#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdbool.h>
#include <stddef.h>
#include <strings.h>

/* RFC 9110 8.6: Content-Length = 1*DIGIT (evhttp's strtoll also takes "+5" and " 5"). */
static bool
all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* See http_framing.h. */
int
http_framing_check(const struct evkeyvalq *headers, const char **why)
{
	const struct evkeyval *h;
	const char *length = NULL, *coding = NULL;
	unsigned n_length = 0, n_coding = 0;

	*why = NULL;
	TAILQ_FOREACH(h, headers, next)
	{
		if (strcasecmp(h->key, "Content-Length") == 0) {
			n_length++;
			length = h->value;
		} else if (strcasecmp(h->key, "Transfer-Encoding") == 0) {
			n_coding++;
			coding = h->value;
		}
	}
	if (n_length > 1)
		*why = "more than one Content-Length header";
	else if (n_length == 1 && !all_digits(length))
		*why = "Content-Length is not a number";
	else if (n_coding > 0 && n_length > 0)
		*why = "both Content-Length and Transfer-Encoding";
	else if (n_coding > 1)
		*why = "more than one Transfer-Encoding header";
	else if (n_coding == 1 && strcasecmp(coding, "chunked") != 0)
		*why = "Transfer-Encoding other than chunked";
	return *why == NULL ? 0 : -1;
}
