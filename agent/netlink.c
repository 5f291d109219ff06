/*
 * rtnetlink requests, one socket per request: the DHCP client changes
 * addresses rarely, so simplicity wins over keeping a socket open. The kernel
 * is trusted to answer; its answer is still checked for size and sequence.
 */
#include "netlink.h"

#include "core/error.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct nl_request {
	struct nlmsghdr hdr;
	union {
		struct ifaddrmsg ifa;
		struct rtmsg rt;
	} body;
	char attrs[128];
};

/* Appends an attribute; the request buffer has room for the few we add. */
static void
add_attr(struct nl_request *req, unsigned short type, const void *data, size_t len)
{
	struct rtattr *rta = (struct rtattr *)((char *)req + NLMSG_ALIGN(req->hdr.nlmsg_len));

	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	req->hdr.nlmsg_len = NLMSG_ALIGN(req->hdr.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/* Appends a 32-bit attribute. */
static void
add_attr32(struct nl_request *req, unsigned short type, uint32_t v)
{
	add_attr(req, type, &v, sizeof(v));
}

/* Sends req and waits for its ACK; errors in ignore_errno count as success. */
static int
transact(struct nl_request *req, int ignore_errno, const char *what)
{
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	char buf[4096];
	int fd, rc = -1;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd == -1)
		return or_error("netlink socket: %s", strerror(errno));
	req->hdr.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	req->hdr.nlmsg_seq = 1;
	if (sendto(fd, req, req->hdr.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) <
	    0) {
		or_error("%s: netlink send: %s", what, strerror(errno));
		goto out;
	}
	for (;;) {
		struct nlmsghdr *h;

		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			or_error("%s: netlink receive: %s", what, strerror(errno));
			goto out;
		}
		for (h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			struct nlmsgerr *err = NLMSG_DATA(h);

			if (h->nlmsg_seq != 1 || h->nlmsg_type != NLMSG_ERROR)
				continue;
			if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*err))) {
				or_error("%s: short netlink answer", what);
				goto out;
			}
			if (err->error == 0 || -err->error == ignore_errno) {
				rc = 0;
				goto out;
			}
			or_error("%s: %s", what, strerror(-err->error));
			goto out;
		}
	}
out:
	close(fd);
	return rc;
}

/* An address request for addr/prefix on ifindex. */
static void
init_addr(struct nl_request *req, unsigned short type, unsigned short flags, int ifindex,
	  uint32_t addr, unsigned prefix)
{
	memset(req, 0, sizeof(*req));
	req->hdr.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	req->hdr.nlmsg_type = type;
	req->hdr.nlmsg_flags = flags;
	req->body.ifa.ifa_family = AF_INET;
	req->body.ifa.ifa_prefixlen = (unsigned char)prefix;
	req->body.ifa.ifa_index = (unsigned)ifindex;
	add_attr32(req, IFA_LOCAL, htonl(addr));
	add_attr32(req, IFA_ADDRESS, htonl(addr));
}

/* RTM_NEWADDR with replace, so that a renewal repeats it harmlessly. */
int
nl_addr_set(int ifindex, uint32_t addr, unsigned prefix, uint32_t broadcast)
{
	struct nl_request req;

	init_addr(&req, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, addr, prefix);
	add_attr32(&req, IFA_BROADCAST, htonl(broadcast));
	return transact(&req, 0, "adding the leased address");
}

/* RTM_DELADDR; EADDRNOTAVAIL (already gone) is success. */
int
nl_addr_del(int ifindex, uint32_t addr, unsigned prefix)
{
	struct nl_request req;

	init_addr(&req, RTM_DELADDR, 0, ifindex, addr, prefix);
	return transact(&req, EADDRNOTAVAIL, "removing the leased address");
}

/* A default route request via gateway on ifindex, protocol dhcp. */
static void
init_route(struct nl_request *req, unsigned short type, unsigned short flags, int ifindex,
	   uint32_t gateway, unsigned metric)
{
	memset(req, 0, sizeof(*req));
	req->hdr.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req->hdr.nlmsg_type = type;
	req->hdr.nlmsg_flags = flags;
	req->body.rt.rtm_family = AF_INET;
	req->body.rt.rtm_table = RT_TABLE_MAIN;
	req->body.rt.rtm_protocol = RTPROT_DHCP;
	req->body.rt.rtm_scope = RT_SCOPE_UNIVERSE;
	req->body.rt.rtm_type = RTN_UNICAST;
	add_attr32(req, RTA_GATEWAY, htonl(gateway));
	add_attr32(req, RTA_OIF, (uint32_t)ifindex);
	add_attr32(req, RTA_PRIORITY, metric);
}

/* RTM_NEWROUTE with replace. */
int
nl_default_route_set(int ifindex, uint32_t gateway, unsigned metric)
{
	struct nl_request req;

	init_route(&req, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, ifindex, gateway, metric);
	return transact(&req, 0, "adding the default route");
}

/* RTM_DELROUTE; ESRCH (already gone) is success. */
int
nl_default_route_del(int ifindex, uint32_t gateway, unsigned metric)
{
	struct nl_request req;

	init_route(&req, RTM_DELROUTE, 0, ifindex, gateway, metric);
	return transact(&req, ESRCH, "removing the default route");
}
