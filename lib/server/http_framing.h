/*
 * Is the length of a request's body said one way only?
 *
 * A request whose length two parties may read differently is the tool of
 * request smuggling: two Content-Length headers ("first wins" in libevent
 * 2.1), Content-Length together with Transfer-Encoding, or a transfer coding
 * evhttp does not decode (it decodes "chunked" alone, and would read such a
 * body as the next request). Such a request is refused with 400, never
 * handled, and its connection closed.
 */
#ifndef ONRAMP_HTTP_FRAMING_H
#define ONRAMP_HTTP_FRAMING_H

struct evkeyvalq;

/* 0 when the headers (as evhttp parsed them, duplicates kept) frame the body one
 * way only; -1 otherwise, *why saying what is wrong (a constant string). */
int http_framing_check(const struct evkeyvalq *headers, const char **why);

#endif
