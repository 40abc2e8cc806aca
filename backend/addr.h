/*
 * Validation of what a frontend says about sockets and addresses, and
 * formatting of addresses for the audit log.  Pure functions: no I/O, no
 * global state (unit-tested in tests/unit/test_backd_addr.c).
 *
 * The wire carries Linux's layouts (struct sockaddr_in / sockaddr_in6 with
 * a 16-bit family in host order) and Linux's numbers; this daemon runs on
 * Linux, so the host's structures are the wire's.
 */
#ifndef BACKD_ADDR_H
#define BACKD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_WIRE_MAX 28u /* sizeof(xen_pvcalls_connect.addr) */
#define ADDR_STR_MAX 64u  /* "[ffff:...:ffff%4294967295]:65535" fits */

/* SOCKET's domain, type and protocol.  Returns 0 and the host family in
 * *family, or -EAFNOSUPPORT for anything but a TCP stream socket (AF_INET6
 * only when ipv6 is allowed), as Linux's backend answers every mismatch. */
int addr_check_socket(uint32_t domain, uint32_t type, uint32_t protocol,
                      bool ipv6, int *family);

/* The address of a CONNECT or BIND for a socket of the given family:
 * raw is the request's 28-byte addr field and len its len field.
 * Returns 0 with a host sockaddr in *out and its length in *out_len, or
 * -EINVAL (length) / -EAFNOSUPPORT (family).  AF_INET needs
 * 16 <= len <= 28 and uses 16; AF_INET6 needs 24 <= len <= 28. */
int addr_from_wire(int family, const uint8_t raw[ADDR_WIRE_MAX],
                   uint32_t len, struct sockaddr_storage *out,
                   socklen_t *out_len);

/* A host address as the wire carries it: 16 bytes for AF_INET, 28 for
 * AF_INET6, zero-padded to 28.  Returns 0, or -EAFNOSUPPORT. */
int addr_to_wire(const struct sockaddr *sa, socklen_t len,
                 uint8_t out[ADDR_WIRE_MAX], uint32_t *out_len);

/* "192.0.2.1:80", "[2001:db8::1]:80", "[fe80::1%2]:80".  Returns buf, or
 * NULL if sa is not an IPv4/IPv6 address of a sufficient length. */
char *addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                  size_t buflen);

/* The same for a request's raw address, read as the family it claims (for
 * the audit log, whatever the socket).  NULL if it is neither family or
 * too short. */
char *addr_format_wire(const uint8_t raw[ADDR_WIRE_MAX], uint32_t len,
                       char *buf, size_t buflen);

#endif
