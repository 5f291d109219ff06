/*
 * URL paths of the admin APIs, split into segments and matched against
 * patterns such as "organizations/ * /sites" (without the spaces: '*' stands
 * for one segment). Segments are not percent-decoded: names allowed in paths
 * (cloud_proto.h identifiers) never need it, and a '%' is simply refused by
 * the name check of whoever uses the segment.
 */
#ifndef ONRAMP_API_PATH_H
#define ONRAMP_API_PATH_H

#include <stdbool.h>
#include <stddef.h>

#define API_PATH_SEGMENTS 8
#define API_PATH_MAX 512

struct api_path {
	size_t n;
	const char *seg[API_PATH_SEGMENTS];
	char buf[API_PATH_MAX + 1];
};

/*
 * Splits what follows prefix in path ("/v1/admin/" in "/v1/admin/tokens/x")
 * into segments; a query string is dropped. -1 (with or_error) when path does
 * not start with prefix, is too long, has an empty segment or too many.
 */
int api_path_split(const char *path, const char *prefix, struct api_path *out);

/* True when the path has as many segments as pattern and each matches ('*' any). */
bool api_path_is(const struct api_path *p, const char *pattern);

#endif
