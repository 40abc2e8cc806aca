// SPDX-License-Identifier: GPL-2.0
/*
 * A data-path test for Linux's own PV Calls frontend (drivers/xen/
 * pvcalls-front.c) against our userspace backend.
 *
 * Nothing in mainline calls pvcalls-front's socket functions, and they
 * are not exported, so this file is linked into one module together with
 * an unmodified pvcalls-front.c taken from Debian's linux-source-6.1
 * (tests/kmod/build: the driver's own module_init registers the xenbus
 * frontend; this file adds no init of its own).  The test runs when a
 * request is written to a module parameter, in the writer's context:
 *
 *   echo 'echo 127.0.0.1 7000 1048576' > /sys/module/MOD/parameters/run
 *       connect to 127.0.0.1:7000 (in the backend's domain), send 1 MiB
 *       of a pattern, read back 1 MiB, compare, release;
 *   echo 'serve 0.0.0.0 7001 1048576' > .../run
 *       bind, listen, accept one connection, read 1 MiB, compare it
 *       with the pattern, send it back, release both.
 *
 * The write returns the length on success and a negative errno on
 * failure; .../parameters/result says what happened in one line, which
 * the test payload prints and checks.
 */
#include <linux/errno.h>
#include <linux/in.h>
#include <linux/inet.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/net.h>
#include <linux/slab.h>
#include <linux/uio.h>
#include <linux/vmalloc.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "pvcalls-front.h"

#define SELFTEST_MAX_BYTES (64u << 20)
#define CHUNK 65536

static char selftest_result[160] = "not run";

/* Byte i of the test stream: not periodic in any power of two. */
static u8 pattern_byte(size_t i)
{
	return (u8)((i * 7 + i / 251) & 0xff);
}

static int new_socket(struct socket **sock)
{
	/* A real kernel TCP socket: pvcalls-front keeps its state in the
	 * sock's sk_send_head, which an unconnected TCP socket never uses. */
	int ret = sock_create_kern(&init_net, AF_INET, SOCK_STREAM,
				   IPPROTO_TCP, sock);
	if (ret < 0)
		return ret;
	ret = pvcalls_front_socket(*sock);
	if (ret < 0) {
		sock_release(*sock);
		*sock = NULL;
	}
	return ret;
}

static void drop_socket(struct socket *sock)
{
	if (!sock)
		return;
	pvcalls_front_release(sock);
	sock_release(sock);
}

/* An accepted socket: its sock is pvcalls-front's (a bare struct sock
 * with no protocol operations), which the socket layer cannot release. */
static void drop_accepted(struct socket *sock)
{
	if (!sock)
		return;
	pvcalls_front_release(sock);
	if (sock->sk) {
		sk_free(sock->sk);
		sock->sk = NULL;
	}
	sock_release(sock);
}

/* pvcalls-front's sendmsg gives up after a bounded spin and may send 0:
 * the caller retries until everything is gone. */
static int send_all(struct socket *sock, const u8 *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		struct kvec kv = { (void *)(buf + done), min_t(size_t, len - done, CHUNK) };
		struct msghdr msg = { };
		int n;
		iov_iter_kvec(&msg.msg_iter, WRITE, &kv, 1, kv.iov_len);
		n = pvcalls_front_sendmsg(sock, &msg, kv.iov_len);
		if (n < 0)
			return n;
		if (n == 0) {
			if (signal_pending(current))
				return -EINTR;
			cond_resched();
		}
		done += n;
	}
	return 0;
}

static int recv_all(struct socket *sock, u8 *buf, size_t len)
{
	size_t done = 0;
	while (done < len) {
		struct kvec kv = { buf + done, min_t(size_t, len - done, CHUNK) };
		struct msghdr msg = { };
		int n;
		iov_iter_kvec(&msg.msg_iter, READ, &kv, 1, kv.iov_len);
		n = pvcalls_front_recvmsg(sock, &msg, kv.iov_len, 0);
		if (n < 0)
			return n;
		if (n == 0)
			return -ECONNRESET; /* EOF before everything came back */
		done += n;
	}
	return 0;
}

static long first_mismatch(const u8 *buf, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++)
		if (buf[i] != pattern_byte(i))
			return (long)i;
	return -1;
}

static void fill_pattern(u8 *buf, size_t len)
{
	size_t i;
	for (i = 0; i < len; i++)
		buf[i] = pattern_byte(i);
}

static int run_echo_client(struct sockaddr_in *sa, u8 *buf, size_t len)
{
	struct socket *sock;
	size_t done, chunk;
	long bad;
	int ret = new_socket(&sock);
	if (ret < 0)
		return ret;
	ret = pvcalls_front_connect(sock, (struct sockaddr *)sa, sizeof(*sa), 0);
	fill_pattern(buf, len);
	/* A chunk out, the same chunk back: an echo server cannot stall on
	 * full buffers in both directions. */
	for (done = 0; ret == 0 && done < len; done += chunk) {
		chunk = min_t(size_t, len - done, CHUNK);
		ret = send_all(sock, buf + done, chunk);
		if (ret == 0) {
			memset(buf + done, 0, chunk);
			ret = recv_all(sock, buf + done, chunk);
		}
	}
	drop_socket(sock);
	if (ret < 0)
		return ret;
	bad = first_mismatch(buf, len);
	if (bad >= 0) {
		snprintf(selftest_result, sizeof(selftest_result),
			 "FAIL echo: byte %ld differs", bad);
		return -EIO;
	}
	return 0;
}

static int run_server(struct sockaddr_in *sa, u8 *buf, size_t len)
{
	struct socket *lsock, *conn = NULL;
	long bad = -1;
	int ret = new_socket(&lsock);
	if (ret < 0)
		return ret;
	ret = pvcalls_front_bind(lsock, (struct sockaddr *)sa, sizeof(*sa));
	if (ret == 0)
		ret = pvcalls_front_listen(lsock, 1);
	/* The accepted socket comes without a sock: pvcalls-front's accept
	 * allocates one of its own (as the kernel's accept path expects). */
	if (ret == 0)
		ret = sock_create_lite(AF_INET, SOCK_STREAM, IPPROTO_TCP, &conn);
	if (ret == 0) {
		ret = pvcalls_front_accept(lsock, conn, 0);
		if (ret < 0) {
			sock_release(conn);
			conn = NULL;
		}
	}
	if (ret == 0)
		ret = recv_all(conn, buf, len);
	if (ret == 0) {
		bad = first_mismatch(buf, len);
		if (bad < 0)
			ret = send_all(conn, buf, len);
	}
	drop_accepted(conn);
	drop_socket(lsock);
	if (ret == 0 && bad >= 0) {
		snprintf(selftest_result, sizeof(selftest_result),
			 "FAIL serve: byte %ld differs", bad);
		return -EIO;
	}
	return ret;
}

/* "MODE ADDR PORT BYTES" */
static int selftest_run(const char *val, const struct kernel_param *kp)
{
	char mode[8], addr[20];
	unsigned int port;
	size_t len;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	u8 *buf;
	int ret;

	if (sscanf(val, "%7s %19s %u %zu", mode, addr, &port, &len) != 4 ||
	    port == 0 || port > 65535 || len == 0 || len > SELFTEST_MAX_BYTES ||
	    !in4_pton(addr, -1, (u8 *)&sa.sin_addr.s_addr, -1, NULL))
		return -EINVAL;
	sa.sin_port = htons(port);
	buf = vmalloc(len);
	if (!buf)
		return -ENOMEM;
	snprintf(selftest_result, sizeof(selftest_result), "running %s", mode);
	if (!strcmp(mode, "echo"))
		ret = run_echo_client(&sa, buf, len);
	else if (!strcmp(mode, "serve"))
		ret = run_server(&sa, buf, len);
	else
		ret = -EINVAL;
	vfree(buf);
	if (ret == 0)
		snprintf(selftest_result, sizeof(selftest_result),
			 "PASS %s %s:%u %zu bytes", mode, addr, port, len);
	else if (ret != -EIO)
		snprintf(selftest_result, sizeof(selftest_result),
			 "FAIL %s %s:%u: error %d", mode, addr, port, ret);
	pr_info("pvcalls-front selftest: %s\n", selftest_result);
	return ret;
}

static const struct kernel_param_ops selftest_run_ops = {
	.set = selftest_run,
};
module_param_cb(run, &selftest_run_ops, NULL, 0200);
MODULE_PARM_DESC(run, "write \"echo|serve ADDR PORT BYTES\" to run a test");
module_param_string(result, selftest_result, sizeof(selftest_result), 0444);
MODULE_PARM_DESC(result, "the last test's outcome");
