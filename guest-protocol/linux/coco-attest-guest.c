/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * coco-attest-guest: talk to -device coco-attest from Linux user space,
 * through the same guest library firmware uses.
 *
 * Port I/O uses ioperm(2) (root).  The port-only channel needs nothing
 * else.  The page channel needs guest-physical memory that user space can
 * map: reserve it on the kernel command line with memmap=, for example
 * memmap=1M$0x7000000, and pass --mem 0x7000000; the tool maps it through
 * /dev/mem (a memmap= reservation is not System RAM, so STRICT_DEVMEM
 * allows it).  The first 4 KiB are the request page, the next 64 KiB the
 * external buffer for large objects.
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "coco-attest/guest.h"

#define MEM_LEN     (COCA_PAGE_SIZE + 64 * 1024)

static int verbose;

static uint32_t op_inl(void *ctx, uint16_t port)
{
    (void)ctx;
    return inl(port);
}

static void op_outl(void *ctx, uint16_t port, uint32_t v)
{
    (void)ctx;
    outl(v, port);
}

static uint8_t op_inb(void *ctx, uint16_t port)
{
    (void)ctx;
    return inb(port);
}

static void op_outw(void *ctx, uint16_t port, uint16_t v)
{
    (void)ctx;
    outw(v, port);
}

static void op_mb(void *ctx)
{
    (void)ctx;
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

static uint64_t op_now_us(void *ctx)
{
    struct timespec ts;

    (void)ctx;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void op_relax(void *ctx)
{
    (void)ctx;
    __builtin_ia32_pause();
}

static void op_log(void *ctx, const char *msg)
{
    (void)ctx;
    if (verbose) {
        fprintf(stderr, "%s\n", msg);
    }
}

static void usage(FILE *f)
{
    fprintf(f,
"usage: coco-attest-guest [options] COMMAND [args]\n"
"\n"
"commands:\n"
"  probe                 find the device (fw_cfg, signature)\n"
"  negotiate             negotiate and print the agreement\n"
"  echo [SIZE]           ECHO SIZE bytes (default 64) and check them\n"
"\n"
"options:\n"
"  -m, --mem PHYS        memmap=-reserved guest-physical memory (at least\n"
"                        68 KiB) for the page channel; without it only the\n"
"                        port channel is used\n"
"  -c, --channel CH      page or port (default: page with --mem, else port)\n"
"  -a, --async           ask for asynchronous completion (ECHO)\n"
"  -p, --iobase PORT     device I/O base (default: from fw_cfg)\n"
"  -v, --verbose         print the library's diagnostics\n"
"  -h, --help\n");
}

static int fail(const char *what, int err, const struct coca_dev *d)
{
    fprintf(stderr, "coco-attest-guest: %s: %s", what, coca_strerror(err));
    if (err == COCA_E_STATUS || err == COCA_E_TOOBIG) {
        fprintf(stderr, " (host status %s)", coca_status_name(d->last_status));
    }
    fputc('\n', stderr);
    return 1;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "mem", required_argument, NULL, 'm' },
        { "channel", required_argument, NULL, 'c' },
        { "async", no_argument, NULL, 'a' },
        { "iobase", required_argument, NULL, 'p' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct coca_ops ops = {
        .inl = op_inl, .outl = op_outl, .inb = op_inb, .outw = op_outw,
        .mb = op_mb, .now_us = op_now_us, .relax = op_relax, .log = op_log,
    };
    struct coca_dev dev;
    enum coca_channel ch = COCA_CH_AUTO;
    unsigned long long mem = 0;
    unsigned long iobase = 0;
    uint32_t flags = 0;
    const char *cmd;
    char *end;
    int c, err;

    while ((c = getopt_long(argc, argv, "m:c:ap:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            errno = 0;
            mem = strtoull(optarg, &end, 0);
            if (errno || *end || !mem || mem % COCA_PAGE_SIZE) {
                fprintf(stderr, "coco-attest-guest: --mem needs a 4 KiB-"
                        "aligned physical address\n");
                return 2;
            }
            break;
        case 'c':
            if (!strcmp(optarg, "page")) {
                ch = COCA_CH_PAGE;
            } else if (!strcmp(optarg, "port")) {
                ch = COCA_CH_PORT;
            } else {
                fprintf(stderr, "coco-attest-guest: channel is page or "
                        "port\n");
                return 2;
            }
            break;
        case 'a':
            flags |= COCA_ECHO_ASYNC;
            break;
        case 'p':
            errno = 0;
            iobase = strtoul(optarg, &end, 0);
            if (errno || *end || !iobase || iobase > 0xffe0) {
                fprintf(stderr, "coco-attest-guest: bad --iobase\n");
                return 2;
            }
            break;
        case 'v':
            verbose = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    cmd = argv[optind];

    if (ioperm(0x510, 2, 1) < 0) {
        perror("coco-attest-guest: ioperm (fw_cfg; are you root?)");
        return 1;
    }
    if (mem) {
        int fd = open("/dev/mem", O_RDWR | O_SYNC);
        void *p;

        if (fd < 0) {
            perror("coco-attest-guest: /dev/mem");
            return 1;
        }
        p = mmap(NULL, MEM_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                 (off_t)mem);
        close(fd);
        if (p == MAP_FAILED) {
            perror("coco-attest-guest: mmap /dev/mem (reserved with "
                   "memmap=?)");
            return 1;
        }
        ops.page = p;
        ops.page_gpa = mem;
        ops.buf = (uint8_t *)p + COCA_PAGE_SIZE;
        ops.buf_gpa = mem + COCA_PAGE_SIZE;
        ops.buf_len = MEM_LEN - COCA_PAGE_SIZE;
    }
    if (!iobase) {
        struct coca_fw_cfg info;

        err = coca_fw_cfg_find(&ops, &info);
        if (err) {
            return fail("fw_cfg etc/coco-attest", err, &dev);
        }
        iobase = info.iobase;
    }
    if (ioperm(iobase, COCA_IO_SIZE, 1) < 0) {
        perror("coco-attest-guest: ioperm");
        return 1;
    }
    err = coca_probe(&dev, &ops, (uint16_t)iobase);
    if (err) {
        return fail("probe", err, &dev);
    }
    if (!strcmp(cmd, "probe")) {
        printf("device iobase=0x%x irq=%u transport=%u.%u channel=%s\n",
               dev.iobase, dev.irq, dev.transport >> 16,
               dev.transport & 0xffff, dev.page_registered ? "page" : "port");
        return 0;
    }
    err = coca_negotiate(&dev, COCA_FEAT_ALL);
    if (err) {
        return fail("negotiate", err, &dev);
    }
    if (!strcmp(cmd, "negotiate")) {
        printf("negotiated version=%u offered=0x%" PRIx64 " negotiated=0x%"
               PRIx64 " max-object=%u inline-max=%u\n", dev.proto,
               dev.offered, dev.negotiated, dev.max_object, dev.inline_max);
        return 0;
    }
    if (!strcmp(cmd, "echo")) {
        uint32_t len = 64, n = 0, i;
        uint8_t *data, *out;

        if (optind + 1 < argc) {
            errno = 0;
            len = strtoul(argv[optind + 1], &end, 0);
            if (errno || *end || len > dev.max_object - 8) {
                fprintf(stderr, "coco-attest-guest: echo size must be at "
                        "most %u\n", dev.max_object - 8);
                return 2;
            }
        }
        data = malloc(len + 1);
        out = malloc(len + 8);
        if (!data || !out) {
            return 1;
        }
        for (i = 0; i < len; i++) {
            data[i] = (uint8_t)(i * 31 + 7);
        }
        err = coca_echo(&dev, ch, flags, data, len, out, len + 8, &n);
        if (err) {
            return fail("echo", err, &dev);
        }
        printf("echo ok bytes=%u channel=%s%s crc=0x%08x\n", len,
               dev.cur_chan == COCA_CH_PAGE ? "page" : "port",
               dev.cur_ext ? "+ext-buf" : "",
               coca_crc32c(0, data, len));
        free(data);
        free(out);
        return 0;
    }
    usage(stderr);
    return 2;
}
