/*
 * SPDX-License-Identifier: GPL-2.0-or-later OR MIT
 *
 * coco-attest bare-metal test guest.
 *
 * A multiboot kernel built from the freestanding guest library, exactly
 * as firmware or an SVSM would embed it.  Scenarios are chosen on the
 * command line (-append "probe echo ..."; "all" runs every one); the
 * verdict is printed on COM1 and returned through isa-debug-exit
 * (iobase 0xf4): QEMU exits with 33 on success and 35 on failure.
 */

#include "coco-attest/guest.h"

#define COM1            0x3f8
#define DEBUG_EXIT      0xf4
#define EXIT_PASS       0x10
#define EXIT_FAIL       0x11
#define BUF_SIZE        (64u * 1024)

/* ------------------------------------------------------------------ */
/* Platform                                                            */
/* ------------------------------------------------------------------ */

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ __volatile__("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw_(uint16_t port, uint16_t v)
{
    __asm__ __volatile__("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl_(uint16_t port, uint32_t v)
{
    __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb_(uint16_t port)
{
    uint8_t v;

    __asm__ __volatile__("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static inline uint32_t inl_(uint16_t port)
{
    uint32_t v;

    __asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;

    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return (uint64_t)hi << 32 | lo;
}

static uint32_t op_inl(void *ctx, uint16_t port)
{
    (void)ctx;
    return inl_(port);
}

static void op_outl(void *ctx, uint16_t port, uint32_t v)
{
    (void)ctx;
    outl_(port, v);
}

static uint8_t op_inb(void *ctx, uint16_t port)
{
    (void)ctx;
    return inb_(port);
}

static void op_outw(void *ctx, uint16_t port, uint16_t v)
{
    (void)ctx;
    outw_(port, v);
}

static void op_mb(void *ctx)
{
    (void)ctx;
    __asm__ __volatile__("mfence" ::: "memory");
}

static void op_relax(void *ctx)
{
    (void)ctx;
    __asm__ __volatile__("pause");
}

/* gcc may emit calls to these even in freestanding code */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;

    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;

    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

static uint8_t page[COCA_PAGE_SIZE] __attribute__((aligned(4096)));
static uint8_t bigbuf[BUF_SIZE] __attribute__((aligned(4096)));
static uint8_t data[BUF_SIZE];
static uint8_t out[BUF_SIZE + 64];

static void serial_putc(char c)
{
    while (!(inb_(COM1 + 5) & 0x20)) {
        ;
    }
    outb(COM1, (uint8_t)c);
}

static void puts_(const char *s)
{
    while (*s) {
        if (*s == '\n') {
            serial_putc('\r');
        }
        serial_putc(*s++);
    }
}

static void put_hex(uint64_t v)
{
    char b[19];
    int i;

    b[0] = '0';
    b[1] = 'x';
    for (i = 0; i < 16; i++) {
        b[2 + i] = "0123456789abcdef"[(v >> (60 - 4 * i)) & 0xf];
    }
    b[18] = 0;
    /* drop leading zeros, keep at least one digit */
    for (i = 2; i < 17 && b[i] == '0'; i++) {
        ;
    }
    puts_("0x");
    puts_(b + i);
}

static void put_dec(uint32_t v)
{
    char b[11];
    int i = 10;

    b[i] = 0;
    do {
        b[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    puts_(b + i);
}

static void op_log(void *ctx, const char *msg)
{
    (void)ctx;
    puts_("  lib: ");
    puts_(msg);
    puts_("\n");
}

static struct coca_ops ops = {
    .inl = op_inl, .outl = op_outl, .inb = op_inb, .outw = op_outw,
    .mb = op_mb, .relax = op_relax, .log = op_log,
};

static void __attribute__((noreturn)) guest_exit(int pass)
{
    puts_(pass ? "coco-attest guest: PASS\n" : "coco-attest guest: FAIL\n");
    outb(DEBUG_EXIT, pass ? EXIT_PASS : EXIT_FAIL);
    for (;;) {
        __asm__ __volatile__("cli; hlt");
    }
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */
/* ------------------------------------------------------------------ */

static int failures;
static struct coca_dev dev;

static void check(int cond, const char *what, int err)
{
    puts_(cond ? "  ok   " : "  FAIL ");
    puts_(what);
    if (!cond) {
        puts_(" (");
        puts_(coca_strerror(err));
        puts_(", host status ");
        puts_(coca_status_name(dev.last_status));
        puts_(")");
        failures++;
    }
    puts_("\n");
}

static void fill(uint32_t len, uint8_t seed)
{
    uint32_t i;

    for (i = 0; i < len; i++) {
        data[i] = (uint8_t)(seed + i * 7 + (i >> 9));
    }
}

static int setup(void)
{
    int err;

    ops.page = page;
    ops.page_gpa = (uintptr_t)page;
    ops.buf = bigbuf;
    ops.buf_gpa = (uintptr_t)bigbuf;
    ops.buf_len = BUF_SIZE;
    err = coca_probe(&dev, &ops, 0);
    check(err == 0, "probe: signature, transport version, page", err);
    return err;
}

static int setup_negotiated(void)
{
    int err = setup();

    if (err) {
        return err;
    }
    err = coca_negotiate(&dev, COCA_FEAT_ALL);
    check(err == 0, "negotiate", err);
    return err;
}

static void scenario_probe(void)
{
    struct coca_fw_cfg info;
    int err = coca_fw_cfg_find(&ops, &info);

    check(err == 0, "fw_cfg etc/coco-attest found", err);
    if (!err) {
        puts_("  fw_cfg: iobase ");
        put_hex(info.iobase);
        puts_(" irq ");
        put_dec(info.irq);
        puts_(" transport ");
        put_dec(info.transport_major);
        puts_(".");
        put_dec(info.transport_minor);
        puts_("\n");
    }
    if (setup() == 0) {
        puts_("  device at ");
        put_hex(dev.iobase);
        puts_(", transport ");
        put_hex(dev.transport);
        puts_("\n");
    }
}

static void scenario_negotiate(void)
{
    int err;

    if (setup()) {
        return;
    }
    /* a guest that only wants DIAG gets only DIAG */
    err = coca_negotiate(&dev, COCA_FEAT_DIAG);
    check(err == 0 && dev.negotiated == COCA_FEAT_DIAG,
          "negotiate a subset", err);
    err = coca_negotiate(&dev, COCA_FEAT_ALL);
    check(err == 0 && dev.proto == 1, "negotiate everything", err);
    puts_("  negotiated: version ");
    put_dec(dev.proto);
    puts_(" offered ");
    put_hex(dev.offered);
    puts_(" negotiated ");
    put_hex(dev.negotiated);
    puts_(" max-object ");
    put_dec(dev.max_object);
    puts_("\n");
}

static void echo_on(enum coca_channel ch, uint32_t len, uint32_t flags,
                    const char *what)
{
    uint32_t n = 0;
    int err;

    fill(len, (uint8_t)len);
    err = coca_echo(&dev, ch, flags, data, len, out, sizeof(out), &n);
    check(err == 0 && n == len + 8, what, err);
}

static void scenario_echo(void)
{
    if (setup_negotiated()) {
        return;
    }
    echo_on(COCA_CH_PAGE, 16, 0, "echo 16 B over the page channel");
    echo_on(COCA_CH_PORT, 16, 0, "echo 16 B over the port channel");
    echo_on(COCA_CH_PAGE, 4000, 0, "echo 4000 B inline");
    echo_on(COCA_CH_PORT, 4000, 0, "echo 4000 B over ports");
}

static void scenario_large(void)
{
    uint32_t len = BUF_SIZE - 8;

    if (setup_negotiated()) {
        return;
    }
    echo_on(COCA_CH_PAGE, len, 0, "echo 64 KiB through the external buffer");
    echo_on(COCA_CH_PORT, len, 0, "echo 64 KiB over the port channel");
}

static void async_on(enum coca_channel ch, const char *what)
{
    uint32_t n = 0, polls = 0, len = 256;
    int err;

    fill(len, 3);
    out[0] = COCA_ECHO_ASYNC;
    out[1] = out[2] = out[3] = 0;
    out[4] = out[5] = out[6] = out[7] = 0;
    memcpy(out + 8, data, len);
    err = coca_submit(&dev, ch, COCA_OP_ECHO, out, len + 8, sizeof(out));
    while (err == 0) {
        err = coca_poll(&dev, out, sizeof(out), &n);
        if (err != COCA_E_AGAIN) {
            break;
        }
        err = 0;
        polls++;
        op_relax(0);
    }
    check(err == 0 && n == len + 8 && polls > 0, what, err);
    puts_("    polls while pending: ");
    put_dec(polls);
    puts_("\n");
}

static void scenario_async(void)
{
    if (setup_negotiated()) {
        return;
    }
    async_on(COCA_CH_PAGE, "asynchronous echo over the page channel");
    async_on(COCA_CH_PORT, "asynchronous echo over the port channel");
    echo_on(COCA_CH_PAGE, 64, 0, "synchronous echo afterwards");
}

/*
 * Run with a long x-echo-delay-ms: the host migrates the VM while the
 * request is pending (tests/guest/run-baremetal-migrate.py), the
 * destination answers RETRY, and the library resends it transparently.
 */
static void scenario_migrate(void)
{
    if (setup_negotiated()) {
        return;
    }
    echo_on(COCA_CH_PAGE, 256, COCA_ECHO_ASYNC,
            "asynchronous echo across a live migration (page channel)");
    echo_on(COCA_CH_PORT, 256, COCA_ECHO_ASYNC,
            "asynchronous echo across a second migration (port channel)");
    puts_("    resent after RETRY: ");
    put_dec(dev.retries);
    puts_("\n");
    check(dev.retries == 2, "each request answered RETRY was resent once",
          0);
}

static void scenario_errors(void)
{
    struct coca_ops bad;
    struct coca_dev d2;
    uint32_t n = 0;
    int err;

    if (setup()) {
        return;
    }
    memset(out, 0, 8);
    err = coca_call(&dev, COCA_CH_PAGE, COCA_OP_ECHO, out, 8, out,
                    sizeof(out), &n);
    check(err == COCA_E_STATUS && dev.last_status ==
          COCA_STATUS_NOT_NEGOTIATED, "command before NEGOTIATE refused",
          err);
    if (coca_negotiate(&dev, COCA_FEAT_ALL)) {
        check(0, "negotiate", -1);
        return;
    }
    err = coca_call(&dev, COCA_CH_PAGE, 0x7777, 0, 0, out, sizeof(out), &n);
    check(err == COCA_E_STATUS && dev.last_status == COCA_STATUS_UNSUPPORTED,
          "unknown command refused", err);
    err = coca_call(&dev, COCA_CH_PORT, 0x7777, 0, 0, out, sizeof(out), &n);
    check(err == COCA_E_STATUS && dev.last_status == COCA_STATUS_UNSUPPORTED,
          "unknown command refused (port)", err);
    fill(16, 1);
    err = coca_echo(&dev, COCA_CH_PAGE, 0x80, data, 16, out, sizeof(out), &n);
    check(err == COCA_E_STATUS && dev.last_status == COCA_STATUS_INVALID,
          "reserved ECHO flag refused", err);
    err = coca_echo(&dev, COCA_CH_PAGE, 0, data, 16, out, 20, &n);
    check(err == COCA_E_TOOBIG, "too small a buffer refused", err);

    /* a request page on MMIO (the local APIC) and on ROM */
    bad = ops;
    bad.page_gpa = 0xfee00000;
    err = coca_probe(&d2, &bad, dev.iobase);
    check(err == COCA_E_REFUSED, "request page on MMIO refused", err);
    bad.page_gpa = 0xfffff000;
    err = coca_probe(&d2, &bad, dev.iobase);
    check(err == COCA_E_REFUSED, "request page on ROM refused", err);

    /* and a valid request still works after all that */
    if (coca_probe(&dev, &ops, 0) == 0 &&
        coca_negotiate(&dev, COCA_FEAT_ALL) == 0) {
        echo_on(COCA_CH_PAGE, 32, 0, "echo after the errors");
    } else {
        check(0, "probe again", -1);
    }
}

struct bench_point {
    uint32_t size;
    uint64_t cycles;
};

/*
 * Library round trips in TSC cycles (best of 8): request copied into
 * shared memory, one exit, response copied out and compared.
 */
static uint64_t time_echo(enum coca_channel ch, uint32_t len)
{
    uint64_t best = ~0ull, t;
    uint32_t n, i;

    fill(len, 9);
    for (i = 0; i < 8; i++) {
        t = rdtsc();
        if (coca_echo(&dev, ch, COCA_ECHO_NO_CRC, data, len, out,
                      sizeof(out), &n)) {
            return 0;
        }
        t = rdtsc() - t;
        best = t < best ? t : best;
    }
    return best;
}

/*
 * Transport only (best of 8): the request is already in shared memory;
 * time the doorbell until the response is there, as fw_cfg DMA is timed
 * from its doorbell until the data is there.
 */
static uint64_t time_page_raw(uint32_t len)
{
    volatile uint32_t *h = (volatile uint32_t *)page;
    int ext = len + 8 > COCA_INLINE_MAX;
    volatile uint8_t *pl = ext ? bigbuf : page + COCA_HDR_SIZE;
    uint64_t best = ~0ull, t;
    uint32_t i;

    for (i = 0; i < len + 8; i++) {
        pl[i] = (uint8_t)i;
    }
    pl[0] = COCA_ECHO_NO_CRC;
    pl[1] = pl[2] = pl[3] = pl[4] = pl[5] = pl[6] = pl[7] = 0;
    for (i = 0; i < 8; i++) {
        h[0] = COCA_MSG_MAGIC;
        h[1] = COCA_MSG_VERSION | (uint32_t)COCA_OP_ECHO << 16;
        h[2] = ext ? COCA_FLAG_EXT_BUF : 0;
        h[3] = 0x1000 + i;
        h[4] = COCA_STATUS_NONE;
        h[5] = len + 8;
        h[6] = h[7] = 0;
        h[8] = ext ? (uint32_t)(uintptr_t)bigbuf : 0;
        h[9] = 0;
        h[10] = ext ? BUF_SIZE : 0;
        h[11] = 0;
        pl[0] = COCA_ECHO_NO_CRC;
        pl[4] = pl[5] = pl[6] = pl[7] = 0;
        t = rdtsc();
        outl_(dev.iobase + COCA_REG_CMD, COCA_CMD_RING);
        while (h[4] == COCA_STATUS_NONE || h[4] == COCA_STATUS_PENDING) {
            ;
        }
        t = rdtsc() - t;
        if (h[4] != COCA_STATUS_OK || h[6] != len + 8) {
            return 0;
        }
        best = t < best ? t : best;
    }
    return best;
}

/* fw_cfg DMA read of a named file into bigbuf */
static uint16_t fw_cfg_select(const char *name, uint32_t *size)
{
    struct coca_fw_cfg unused;
    uint8_t ent[64];
    uint32_t count, i, j;

    (void)unused;
    outw_(0x510, 0x19);
    count = 0;
    for (j = 0; j < 4; j++) {
        count = count << 8 | inb_(0x511);
    }
    for (i = 0; i < count && i < 4096; i++) {
        int same = 1;

        for (j = 0; j < 64; j++) {
            ent[j] = inb_(0x511);
        }
        for (j = 0; name[j] || ent[8 + j]; j++) {
            if (name[j] != (char)ent[8 + j]) {
                same = 0;
                break;
            }
        }
        if (same) {
            *size = (uint32_t)ent[0] << 24 | (uint32_t)ent[1] << 16 |
                    (uint32_t)ent[2] << 8 | ent[3];
            return (uint16_t)(ent[4] << 8 | ent[5]);
        }
    }
    return 0;
}

static uint32_t be32(uint32_t v)
{
    return v >> 24 | (v >> 8 & 0xff00) | (v << 8 & 0xff0000) | v << 24;
}

/* one fw_cfg DMA read of the selected item into bigbuf */
static void fw_cfg_dma(uint16_t sel, uint32_t len)
{
    static volatile uint32_t dma[4] __attribute__((aligned(16)));

    /* control: select | read, big-endian; length; address */
    dma[0] = be32((uint32_t)sel << 16 | 0x08 | 0x02);
    dma[1] = be32(len);
    dma[2] = 0;
    dma[3] = be32((uint32_t)(uintptr_t)bigbuf);
    outl_(0x518, be32((uint32_t)(uintptr_t)dma));
    while (be32(dma[0]) & ~0x01u) {
        ;
    }
}

static uint64_t time_fw_cfg_dma(uint16_t sel, uint32_t len)
{
    uint64_t best = ~0ull, t;
    uint32_t i;

    for (i = 0; i < 8; i++) {
        t = rdtsc();
        fw_cfg_dma(sel, len);
        t = rdtsc() - t;
        best = t < best ? t : best;
    }
    return best;
}

static uint64_t time_fw_cfg_io(uint16_t sel, uint32_t len)
{
    uint64_t best = ~0ull, t;
    uint32_t i, j;

    for (i = 0; i < 4; i++) {
        t = rdtsc();
        outw_(0x510, sel);
        for (j = 0; j < len; j++) {
            bigbuf[j] = inb_(0x511);
        }
        t = rdtsc() - t;
        best = t < best ? t : best;
    }
    return best;
}

/*
 * Benchmark: print one machine-readable line per measurement,
 * "bench <what> <bytes> <cycles>", for bench/run-bench.sh to tabulate.
 */
static void scenario_bench(void)
{
    static const uint32_t sizes[] = {
        16, 256, 1024, 4096, 16384, 65536 - 8,
    };
    static const char *const blobs[] = {
        "opt/coco-bench-16", "opt/coco-bench-256", "opt/coco-bench-1024",
        "opt/coco-bench-4096", "opt/coco-bench-16384",
        "opt/coco-bench-65528",
    };
    uint32_t i, sz;
    uint16_t sel;

    if (setup_negotiated()) {
        return;
    }
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint64_t c;

        puts_("bench page-raw ");
        put_dec(sizes[i]);
        puts_(" ");
        c = time_page_raw(sizes[i]);
        put_dec((uint32_t)(c > 0xffffffffu ? 0xffffffffu : c));
        puts_("\nbench page ");
        put_dec(sizes[i]);
        puts_(" ");
        c = time_echo(COCA_CH_PAGE, sizes[i]);
        put_dec((uint32_t)(c > 0xffffffffu ? 0xffffffffu : c));
        puts_("\nbench port ");
        put_dec(sizes[i]);
        puts_(" ");
        c = time_echo(COCA_CH_PORT, sizes[i]);
        put_dec((uint32_t)(c > 0xffffffffu ? 0xffffffffu : c));
        puts_("\n");
        sel = fw_cfg_select(blobs[i], &sz);
        if (!sel || sz != sizes[i]) {
            check(0, "fw_cfg benchmark blob present", 0);
            continue;
        }
        puts_("bench fwcfg-dma ");
        put_dec(sizes[i]);
        puts_(" ");
        c = time_fw_cfg_dma(sel, sz);
        put_dec((uint32_t)(c > 0xffffffffu ? 0xffffffffu : c));
        puts_("\nbench fwcfg-io ");
        put_dec(sizes[i]);
        puts_(" ");
        c = time_fw_cfg_io(sel, sz);
        put_dec((uint32_t)(c > 0xffffffffu ? 0xffffffffu : c));
        puts_("\n");
    }
    /*
     * Exits per request: markers on port 0x80 around exactly one request
     * of each kind, for bench/run-bench.sh to count I/O accesses between.
     */
    fill(16, 1);
    outb(0x80, 0xc0);
    coca_echo(&dev, COCA_CH_PAGE, 0, data, 16, out, sizeof(out), &sz);
    outb(0x80, 0xc1);
    coca_echo(&dev, COCA_CH_PORT, 0, data, 16, out, sizeof(out), &sz);
    outb(0x80, 0xc2);
    sel = fw_cfg_select(blobs[3], &sz);
    outb(0x80, 0xc3);
    fw_cfg_dma(sel, 16);
    outb(0x80, 0xc4);
}

/* ------------------------------------------------------------------ */

struct multiboot_info {
    uint32_t flags;
    uint32_t mem_lower, mem_upper, boot_device;
    uint32_t cmdline;
};

static int word_eq(const char *s, uint32_t n, const char *w)
{
    uint32_t i;

    for (i = 0; i < n; i++) {
        if (!w[i] || w[i] != s[i]) {
            return 0;
        }
    }
    return w[n] == 0;
}

static const struct {
    const char *name;
    void (*fn)(void);
} scenarios[] = {
    /* first: it needs a device that has not been negotiated yet */
    { "errors", scenario_errors },
    { "probe", scenario_probe },
    { "negotiate", scenario_negotiate },
    { "echo", scenario_echo },
    { "large", scenario_large },
    { "async", scenario_async },
    { "bench", scenario_bench },
    { "migrate", scenario_migrate },
};

void guest_main(uint32_t magic, const struct multiboot_info *mbi);

void guest_main(uint32_t magic, const struct multiboot_info *mbi)
{
    const char *cmd = "";
    const char *p;
    uint32_t i, n;
    int ran = 0;

    puts_("coco-attest bare-metal guest\n");
    if (magic == 0x2badb002 && (mbi->flags & 4)) {
        cmd = (const char *)(uintptr_t)mbi->cmdline;
    }
    /* the first word is the kernel path */
    for (p = cmd; *p && *p != ' '; p++) {
        ;
    }
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        for (n = 0; p[n] && p[n] != ' '; n++) {
            ;
        }
        if (!n) {
            break;
        }
        for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
            if (word_eq(p, n, scenarios[i].name) ||
                (word_eq(p, n, "all") && scenarios[i].fn != scenario_bench &&
                 scenarios[i].fn != scenario_migrate)) {
                puts_("scenario ");
                puts_(scenarios[i].name);
                puts_("\n");
                scenarios[i].fn();
                ran++;
            }
        }
        p += n;
    }
    if (!ran) {
        puts_("no scenario given (probe negotiate echo large async errors "
              "bench migrate all)\n");
        guest_exit(0);
    }
    guest_exit(failures == 0);
}
