/*
 * The few rtnetlink requests the DHCP client needs: put a leased address and
 * its default route on an interface, and take them off again. Each request
 * waits for the kernel's acknowledgement. Addresses in host byte order.
 */
#ifndef ONRAMP_NETLINK_H
#define ONRAMP_NETLINK_H

#include <stdbool.h>
#include <stdint.h>

/* Adds (or replaces) addr/prefix with its broadcast address on ifindex. */
int nl_addr_set(int ifindex, uint32_t addr, unsigned prefix, uint32_t broadcast);

/* Removes addr/prefix from ifindex; one already gone is not an error. */
int nl_addr_del(int ifindex, uint32_t addr, unsigned prefix);

/* Adds (or replaces) the default route via gateway on ifindex with metric. */
int nl_default_route_set(int ifindex, uint32_t gateway, unsigned metric);

/* Removes that route; one already gone is not an error. */
int nl_default_route_del(int ifindex, uint32_t gateway, unsigned metric);

#endif
