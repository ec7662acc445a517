/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for the coco-attest device: drives it through its I/O ports and
 * guest memory exactly as a guest driver would.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/units.h"
#include "libqtest.h"
#include "libqos/fw_cfg.h"
#include "libqos/malloc-pc.h"
#include "qobject/qdict.h"
#include "qobject/qlist.h"
#include "hw/coco-attest/abi.h"

#define RAM_SIZE    (128 * MiB)
#define DELAY_MS    100

typedef struct Coca {
    QTestState *qts;
    QGuestAllocator alloc;
    uint16_t base;
    uint64_t page;
    uint32_t seq;
} Coca;

/* A request or response in host byte order. */
typedef struct Msg {
    uint16_t command;
    uint32_t flags;
    uint32_t seq;
    uint32_t status;
    uint32_t req_len;
    uint32_t resp_len;
    uint32_t reserved0;
    uint64_t buf_gpa;
    uint32_t buf_len;
    uint32_t reserved1;
    uint32_t magic;
    uint16_t version;
} Msg;

/* objects: extra arguments before -device (e.g. a coco-attest-ca) */
static Coca *coca_start_with(const char *machine, const char *objects,
                             const char *props)
{
    Coca *c = g_new0(Coca, 1);

    c->qts = qtest_initf("-M %s -m 128M -nodefaults %s "
                         "-device coco-attest,id=coca0%s",
                         machine, objects ? objects : "",
                         props ? props : "");
    c->base = COCA_DEFAULT_IOBASE;
    pc_alloc_init(&c->alloc, c->qts, ALLOC_NO_FLAGS);
    c->page = guest_alloc(&c->alloc, COCA_PAGE_SIZE);
    g_assert_cmphex(c->page & (COCA_PAGE_SIZE - 1), ==, 0);
    return c;
}

static Coca *coca_start(const char *machine, const char *props)
{
    return coca_start_with(machine, NULL, props);
}

static void coca_stop(Coca *c)
{
    alloc_destroy(&c->alloc);
    qtest_quit(c->qts);
    g_free(c);
}

static uint32_t rd(Coca *c, uint16_t reg)
{
    return qtest_inl(c->qts, c->base + reg);
}

static void wr(Coca *c, uint16_t reg, uint32_t val)
{
    qtest_outl(c->qts, c->base + reg, val);
}

/* Write a register command and return its result. */
static uint32_t cmd(Coca *c, uint32_t command)
{
    wr(c, COCA_REG_CMD, command);
    return rd(c, COCA_REG_CMD);
}

static uint32_t register_page(Coca *c, uint64_t gpa)
{
    wr(c, COCA_REG_PAGE_LO, gpa);
    wr(c, COCA_REG_PAGE_HI, gpa >> 32);
    return cmd(c, COCA_CMD_REGISTER_PAGE);
}

/* CRC32C written out from the spec, independent of QEMU's helper. */
static uint32_t crc(const void *buf, size_t len)
{
    const uint8_t *p = buf;
    uint32_t c = 0xffffffff;
    int k;

    while (len--) {
        c ^= *p++;
        for (k = 0; k < 8; k++) {
            c = (c >> 1) ^ (c & 1 ? 0x82f63b78 : 0);
        }
    }
    return c ^ 0xffffffff;
}

static Msg msg_new(Coca *c, uint16_t command, uint32_t req_len)
{
    Msg m = {
        .magic = COCA_MSG_MAGIC,
        .version = COCA_MSG_VERSION,
        .command = command,
        .seq = ++c->seq,
        .status = COCA_STATUS_NONE,
        .req_len = req_len,
    };
    return m;
}

static void msg_to_wire(const Msg *m, struct coca_hdr *h)
{
    h->magic = cpu_to_le32(m->magic);
    h->version = cpu_to_le16(m->version);
    h->command = cpu_to_le16(m->command);
    h->flags = cpu_to_le32(m->flags);
    h->seq = cpu_to_le32(m->seq);
    h->status = cpu_to_le32(m->status);
    h->req_len = cpu_to_le32(m->req_len);
    h->resp_len = cpu_to_le32(m->resp_len);
    h->reserved0 = cpu_to_le32(m->reserved0);
    h->buf_gpa = cpu_to_le64(m->buf_gpa);
    h->buf_len = cpu_to_le32(m->buf_len);
    h->reserved1 = cpu_to_le32(m->reserved1);
}

static Msg msg_from_wire(const struct coca_hdr *h)
{
    Msg m = {
        .magic = le32_to_cpu(h->magic),
        .version = le16_to_cpu(h->version),
        .command = le16_to_cpu(h->command),
        .flags = le32_to_cpu(h->flags),
        .seq = le32_to_cpu(h->seq),
        .status = le32_to_cpu(h->status),
        .req_len = le32_to_cpu(h->req_len),
        .resp_len = le32_to_cpu(h->resp_len),
        .reserved0 = le32_to_cpu(h->reserved0),
        .buf_gpa = le64_to_cpu(h->buf_gpa),
        .buf_len = le32_to_cpu(h->buf_len),
        .reserved1 = le32_to_cpu(h->reserved1),
    };
    return m;
}

static Msg page_hdr(Coca *c)
{
    struct coca_hdr h;

    qtest_memread(c->qts, c->page, &h, sizeof(h));
    return msg_from_wire(&h);
}

/*
 * Page channel: write @m and @len bytes of @payload (inline, or into
 * m->buf_gpa with COCA_FLAG_EXT_BUF), ring, and return the register
 * result.  The response header is left in *m.
 */
static uint32_t page_ring(Coca *c, Msg *m, const void *payload, size_t len)
{
    struct coca_hdr h;
    uint32_t res;

    msg_to_wire(m, &h);
    qtest_memwrite(c->qts, c->page, &h, sizeof(h));
    if (len) {
        qtest_memwrite(c->qts, (m->flags & COCA_FLAG_EXT_BUF) ? m->buf_gpa :
                       c->page + COCA_HDR_SIZE, payload, len);
    }
    res = cmd(c, COCA_CMD_RING);
    *m = page_hdr(c);
    return res;
}

/* Page channel round trip expected to be accepted by the doorbell. */
static uint32_t page_req(Coca *c, Msg *m, const void *payload, size_t len)
{
    uint32_t seq = m->seq;

    g_assert_cmpuint(page_ring(c, m, payload, len), ==, COCA_RES_OK);
    g_assert_cmpuint(m->seq, ==, seq);
    if (m->status != COCA_STATUS_PENDING) {
        g_assert_cmphex(m->flags & COCA_FLAG_RESPONSE, ==,
                        COCA_FLAG_RESPONSE);
    }
    return m->status;
}

/* Read the response payload of the page channel. */
static void page_payload(Coca *c, const Msg *m, void *buf, size_t len)
{
    g_assert_cmpuint(m->resp_len, ==, len);
    qtest_memread(c->qts, (m->flags & COCA_FLAG_EXT_BUF) ? m->buf_gpa :
                  c->page + COCA_HDR_SIZE, buf, len);
}

/* Port channel: stream @m and @payload through DATA with its CRC. */
static uint32_t port_send(Coca *c, Msg *m, const void *payload, size_t len,
                          uint32_t crc_xor)
{
    g_autofree uint8_t *buf = g_malloc0(ROUND_UP(COCA_HDR_SIZE + len, 4));
    size_t i;

    msg_to_wire(m, (struct coca_hdr *)buf);
    memcpy(buf + COCA_HDR_SIZE, payload, len);
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_BEGIN), ==, COCA_RES_OK);
    for (i = 0; i < COCA_HDR_SIZE + len; i += 4) {
        wr(c, COCA_REG_DATA, ldl_le_p(buf + i));
    }
    wr(c, COCA_REG_CRC, crc(buf, COCA_HDR_SIZE + len) ^ crc_xor);
    return cmd(c, COCA_CMD_PORT_SUBMIT);
}

/* Port channel: read a complete response, checking its CRC. */
static uint8_t *port_recv(Coca *c, Msg *m)
{
    struct coca_hdr h;
    uint8_t *payload;
    size_t i;
    uint32_t *w = (uint32_t *)&h;

    g_assert_cmphex(rd(c, COCA_REG_STATUS) &
                    (COCA_STS_BUSY | COCA_STS_DONE | COCA_STS_PORT_RESPONSE),
                    ==, COCA_STS_DONE | COCA_STS_PORT_RESPONSE);
    for (i = 0; i < COCA_HDR_SIZE / 4; i++) {
        w[i] = cpu_to_le32(rd(c, COCA_REG_DATA));
    }
    *m = msg_from_wire(&h);
    g_assert_cmphex(m->flags & COCA_FLAG_RESPONSE, ==, COCA_FLAG_RESPONSE);
    g_assert_cmpuint(m->resp_len, <=, 1 * MiB);
    payload = g_malloc0(ROUND_UP(m->resp_len, 4) + 4);
    if (m->status == COCA_STATUS_OK) {
        for (i = 0; i < m->resp_len; i += 4) {
            stl_le_p(payload + i, rd(c, COCA_REG_DATA));
        }
    }
    {
        g_autofree uint8_t *all = g_malloc(COCA_HDR_SIZE + m->resp_len);
        size_t n = COCA_HDR_SIZE;

        memcpy(all, &h, COCA_HDR_SIZE);
        if (m->status == COCA_STATUS_OK) {
            memcpy(all + COCA_HDR_SIZE, payload, m->resp_len);
            n += m->resp_len;
        }
        g_assert_cmphex(rd(c, COCA_REG_CRC), ==, crc(all, n));
    }
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    return payload;
}

static struct coca_negotiate_resp negotiate(Coca *c, uint16_t lo,
                                            uint16_t hi, uint64_t features,
                                            uint32_t expect)
{
    struct coca_negotiate_req req = {
        .proto_min = cpu_to_le16(lo),
        .proto_max = cpu_to_le16(hi),
        .features = cpu_to_le64(features),
    };
    struct coca_negotiate_resp resp = { 0 };
    Msg m = msg_new(c, COCA_OP_NEGOTIATE, sizeof(req));

    g_assert_cmpuint(page_req(c, &m, &req, sizeof(req)), ==, expect);
    if (m.resp_len) {
        page_payload(c, &m, &resp, sizeof(resp));
    }
    resp.proto = le16_to_cpu(resp.proto);
    resp.proto_min = le16_to_cpu(resp.proto_min);
    resp.proto_max = le16_to_cpu(resp.proto_max);
    resp.offered = le64_to_cpu(resp.offered);
    resp.negotiated = le64_to_cpu(resp.negotiated);
    resp.max_object = le32_to_cpu(resp.max_object);
    resp.inline_max = le32_to_cpu(resp.inline_max);
    resp.max_pending = le32_to_cpu(resp.max_pending);
    return resp;
}

/* Start a machine, register the page and negotiate everything offered. */
static Coca *coca_ready(const char *props)
{
    Coca *c = coca_start("q35", props);

    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, COCA_PROTO_MIN, COCA_PROTO_MAX, COCA_FEAT_ALL,
              COCA_STATUS_OK);
    return c;
}

static uint8_t *pattern(size_t len, uint8_t seed)
{
    uint8_t *p = g_malloc(len);
    size_t i;

    for (i = 0; i < len; i++) {
        p[i] = seed + i * 7 + (i >> 8);
    }
    return p;
}

/* Build an ECHO request payload: header word + @len pattern bytes. */
static uint8_t *echo_payload(uint32_t flags, size_t len, uint8_t seed)
{
    uint8_t *p = g_malloc0(sizeof(struct coca_echo) + len);
    g_autofree uint8_t *data = pattern(len, seed);
    struct coca_echo e = { .flags = cpu_to_le32(flags) };

    memcpy(p, &e, sizeof(e));
    memcpy(p + sizeof(e), data, len);
    return p;
}

static void check_echo(const uint8_t *resp, size_t len, uint32_t flags,
                       uint8_t seed)
{
    g_autofree uint8_t *data = pattern(len, seed);
    struct coca_echo e;

    memcpy(&e, resp, sizeof(e));
    g_assert_cmphex(le32_to_cpu(e.flags), ==, flags);
    g_assert_cmphex(le32_to_cpu(e.crc), ==, crc(data, len));
    g_assert(memcmp(resp + sizeof(e), data, len) == 0);
}

/* A small synchronous ECHO over the page channel must succeed. */
static void echo_ok(Coca *c)
{
    size_t len = 100;
    g_autofree uint8_t *req = echo_payload(0, len, c->seq);
    g_autofree uint8_t *resp = g_malloc(sizeof(struct coca_echo) + len);
    uint8_t seed = c->seq;
    Msg m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);

    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==, COCA_STATUS_OK);
    page_payload(c, &m, resp, m.req_len);
    check_echo(resp, len, 0, seed);
}

static QDict *query_one(Coca *c)
{
    QDict *rsp = qtest_qmp(c->qts, "{'execute': 'query-coco-attest'}");
    QList *list = qdict_get_qlist(rsp, "return");
    QDict *info;

    g_assert(list);
    g_assert_cmpuint(qlist_size(list), ==, 1);
    info = qobject_to(QDict, qlist_peek(list));
    qobject_ref(info);
    qobject_unref(rsp);
    return info;
}

/* Wait (bounded) until the page status leaves PENDING. */
static Msg page_wait(Coca *c)
{
    Msg m;
    int i;

    for (i = 0; i < 5000; i++) {
        m = page_hdr(c);
        if (m.status != COCA_STATUS_PENDING) {
            return m;
        }
        g_usleep(1000);
    }
    g_assert_not_reached();
}

/* ------------------------------------------------------------------ */

static void test_crc_vector(void)
{
    /* the check value of CRC-32C (Castagnoli) */
    g_assert_cmphex(crc("123456789", 9), ==, 0xe3069283);
}

/*
 * Nothing else in the machine's I/O address space may overlap the
 * device's window: the default iobase must be free on pc and q35.
 */
static void check_io_window_free(QTestState *qts, uint64_t base)
{
    g_autofree char *mtree = qtest_hmp(qts, "info mtree");
    g_auto(GStrv) lines = g_strsplit(mtree, "\n", -1);
    bool in_io = false, found = false;
    char **l;

    for (l = lines; *l; l++) {
        uint64_t lo, hi;
        char name[128];

        if (**l && !g_ascii_isspace(**l)) {
            /* a section header: "address-space: ...", "memory-region: ..." */
            in_io = g_str_has_prefix(*l, "address-space: I/O");
            continue;
        }
        if (!in_io ||
            sscanf(*l, " %" SCNx64 "-%" SCNx64 " (prio %*d, %*[^)]): %127s",
                   &lo, &hi, name) != 3) {
            continue;
        }
        if (hi < base || lo > base + COCA_IO_SIZE - 1 ||
            (lo == 0 && hi == 0xffff)) {
            continue;   /* elsewhere, or the root container */
        }
        g_test_message("I/O region at the device window: %s", *l);
        g_assert_cmpstr(name, ==, "coco-attest-io");
        found = true;
    }
    g_assert_true(found);
}

static void test_probe(const void *data)
{
    const char *machine = data;
    Coca *c = coca_start(machine, NULL);
    uint32_t sts;

    check_io_window_free(c->qts, COCA_DEFAULT_IOBASE);
    g_assert_cmphex(rd(c, COCA_REG_SIGNATURE), ==, COCA_SIGNATURE);
    g_assert_cmphex(rd(c, COCA_REG_VERSION), ==,
                    (COCA_TRANSPORT_MAJOR << 16) | COCA_TRANSPORT_MINOR);
    sts = rd(c, COCA_REG_STATUS);
    g_assert_cmphex(sts, ==, 0);
    /* register staging reads back */
    wr(c, COCA_REG_PAGE_LO, 0x12345000);
    wr(c, COCA_REG_PAGE_HI, 0x1);
    g_assert_cmphex(rd(c, COCA_REG_PAGE_LO), ==, 0x12345000);
    g_assert_cmphex(rd(c, COCA_REG_PAGE_HI), ==, 0x1);
    coca_stop(c);
}

static void test_iobase(void)
{
    QTestState *qts = qtest_init("-M pc -nodefaults "
                                 "-device coco-attest,iobase=0x5c0");

    g_assert_cmphex(qtest_inl(qts, 0x5c0), ==, COCA_SIGNATURE);
    g_assert_cmphex(qtest_inl(qts, COCA_DEFAULT_IOBASE), !=, COCA_SIGNATURE);
    qtest_quit(qts);
}

static void test_fw_cfg(void)
{
    QTestState *qts = qtest_init("-M q35 -nodefaults "
                                 "-device coco-attest,iobase=0x5e0,irq=5");
    QFWCFG *fw_cfg = pc_fw_cfg_init(qts);
    struct coca_fw_cfg info;
    size_t n;

    n = qfw_cfg_get_file(fw_cfg, COCA_FW_CFG_FILE, &info, sizeof(info));
    g_assert_cmpuint(n, ==, sizeof(info));
    g_assert_cmphex(le32_to_cpu(info.signature), ==, COCA_SIGNATURE);
    g_assert_cmphex(le16_to_cpu(info.iobase), ==, 0x5e0);
    g_assert_cmpuint(info.irq, ==, 5);
    g_assert_cmpuint(le16_to_cpu(info.transport_major), ==,
                     COCA_TRANSPORT_MAJOR);
    g_assert_cmpuint(le16_to_cpu(info.transport_minor), ==,
                     COCA_TRANSPORT_MINOR);
    pc_fw_cfg_uninit(fw_cfg);
    qtest_quit(qts);
}

static bool acpi_has(const uint8_t *tables, size_t len, const char *s)
{
    return memmem(tables, len, s, strlen(s)) != NULL;
}

/* The DSDT describes the device for OS drivers: PRP0001 + compatible. */
static void test_acpi(void)
{
    const size_t len = 64 * KiB;
    g_autofree uint8_t *tables = g_malloc0(len);
    QTestState *qts;
    QFWCFG *fw_cfg;
    size_t n;

    qts = qtest_init("-M q35 -nodefaults -device coco-attest,irq=5");
    fw_cfg = pc_fw_cfg_init(qts);
    n = qfw_cfg_get_file(fw_cfg, "etc/acpi/tables", tables, len);
    g_assert_cmpuint(n, >, 0);
    g_assert_true(acpi_has(tables, len, "PRP0001"));
    g_assert_true(acpi_has(tables, len, COCA_ACPI_COMPATIBLE));
    g_assert_true(acpi_has(tables, len, "COCA"));
    pc_fw_cfg_uninit(fw_cfg);
    qtest_quit(qts);

    /* and only with the device */
    qts = qtest_init("-M q35 -nodefaults");
    fw_cfg = pc_fw_cfg_init(qts);
    memset(tables, 0, len);
    qfw_cfg_get_file(fw_cfg, "etc/acpi/tables", tables, len);
    g_assert_false(acpi_has(tables, len, COCA_ACPI_COMPATIBLE));
    pc_fw_cfg_uninit(fw_cfg);
    qtest_quit(qts);
}

/* Properties that must make QEMU refuse to start, with a clear error. */
static void test_bad_properties(void)
{
    static const struct {
        const char *props;
        const char *error;
    } cases[] = {
        { "max-object=4096", "max-object must be a multiple" },
        { "max-object=4194304", "max-object must be a multiple" },
        { "max-object=65537", "max-object must be a multiple" },
        { "iobase=0x581", "must be 4-byte aligned" },
        { "iobase=0xfff0", "must be 4-byte aligned" },
        { "irq=2", "is not a usable ISA interrupt" },
        { "irq=16", "is not a usable ISA interrupt" },
        { "features=0x100", "features" },
    };
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    size_t i;

    g_assert(qemu);
    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *dev = g_strdup_printf("coco-attest,%s",
                                               cases[i].props);
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        const char *argv[] = {
            qemu, "-M", "q35", "-accel", "qtest", "-nodefaults",
            "-display", "none", "-S", "-device", dev, NULL
        };
        int status;

        g_assert(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL,
                              &out, &err, &status, NULL));
        /* a clean refusal, not a crash */
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        if (!strstr(err, cases[i].error)) {
            g_test_message("%s: %s", dev, err);
        }
        g_assert(strstr(err, cases[i].error));
    }
    {
        /* a second instance is refused */
        const char *argv[] = {
            qemu, "-M", "q35", "-accel", "qtest", "-nodefaults",
            "-display", "none", "-S", "-device", "coco-attest",
            "-device", "coco-attest,iobase=0x5c0", NULL
        };
        g_autofree char *out = NULL;
        g_autofree char *err = NULL;
        int status;

        g_assert(g_spawn_sync(NULL, (char **)argv, NULL, 0, NULL, NULL,
                              &out, &err, &status, NULL));
        /* a clean refusal, not a crash */
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        g_assert(strstr(err, "at most one coco-attest device"));
    }
}

/*
 * Realize refuses ports and ISA interrupts that something present
 * already uses.  QEMU started with @args on @machine must refuse to
 * start (exit status 1, not a crash, nor a QEMU left running) with
 * @error on stderr.
 */
static void assert_refused(const char *machine, const char *args,
                           const char *error)
{
    g_autofree char *cmd = g_strdup_printf(
        "timeout 20 %s -M %s -accel qtest -nodefaults -display none -S %s",
        g_getenv("QTEST_QEMU_BINARY"), machine, args);
    g_auto(GStrv) argv = NULL;
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    int status;

    g_assert_true(g_shell_parse_argv(cmd, NULL, &argv, NULL));
    g_assert_true(g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH,
                               NULL, NULL, &out, &err, &status, NULL));
    if (!strstr(err, error)) {
        g_test_message("%s: %s", cmd, err);
    }
    g_assert_true(WIFEXITED(status));
    g_assert_cmpint(WEXITSTATUS(status), ==, 1);
    g_assert_nonnull(strstr(err, error));
}

static const char *const realize_machines[] = { "pc", "q35" };

/* fw_cfg: the selector at 0x510, the DMA address at 0x514 */
static void test_overlap_fwcfg(void)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(realize_machines); i++) {
        assert_refused(realize_machines[i],
                       "-device coco-attest,iobase=0x510",
                       "ports 0x510-0x52f overlap 'fwcfg' of fw_cfg_io at "
                       "0x510-0x511; choose another iobase");
        /* the window reaching the DMA ports from below */
        assert_refused(realize_machines[i],
                       "-device coco-attest,iobase=0x4f8",
                       "ports 0x4f8-0x517 overlap 'fwcfg' of fw_cfg_io at "
                       "0x510-0x511");
    }
}

/* PCI configuration: address at 0xcf8, data at 0xcfc */
static void test_overlap_pci(void)
{
    assert_refused("pc", "-device coco-attest,iobase=0xcf8",
                   "ports 0xcf8-0xd17 overlap 'pci-conf-idx' of "
                   "i440FX-pcihost at 0xcf8-0xcfb");
    assert_refused("q35", "-device coco-attest,iobase=0xcf8",
                   "ports 0xcf8-0xd17 overlap 'pci-conf-idx' of "
                   "q35-pcihost at 0xcf8-0xcfb");
    /* a window ending in the data register */
    assert_refused("pc", "-device coco-attest,iobase=0xce0",
                   "ports 0xce0-0xcff overlap 'pci-conf-idx' of "
                   "i440FX-pcihost at 0xcf8-0xcfb");
    /* one starting in it */
    assert_refused("pc", "-device coco-attest,iobase=0xcfc",
                   "ports 0xcfc-0xd1b overlap 'pci-conf-data' of "
                   "i440FX-pcihost at 0xcfc-0xcff");
    assert_refused("q35", "-device coco-attest,iobase=0xcfc",
                   "ports 0xcfc-0xd1b overlap 'pci-conf-data' of "
                   "q35-pcihost at 0xcfc-0xcff");
    /*
     * q35's CPU hotplug block comes first, starting below the window:
     * the message gives the whole region
     */
    assert_refused("q35", "-device coco-attest,iobase=0xcf0",
                   "ports 0xcf0-0xd0f overlap 'acpi-cpu-hotplug' of "
                   "ICH9-LPC at 0xcd8-0xcf7");
}

/* COM1, from -serial and from -device isa-serial */
static void test_overlap_com1(void)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(realize_machines); i++) {
        assert_refused(realize_machines[i],
                       "-serial null -device coco-attest,iobase=0x3f8",
                       "ports 0x3f8-0x417 overlap 'serial' of isa-serial "
                       "at 0x3f8-0x3ff; choose another iobase");
        assert_refused(realize_machines[i],
                       "-device isa-serial,id=com1 "
                       "-device coco-attest,iobase=0x3f8",
                       "ports 0x3f8-0x417 overlap 'serial' of isa-serial "
                       "at 0x3f8-0x3ff");
    }
    /* the window's last ports on COM1's first (q35 has no floppy) */
    assert_refused("q35", "-serial null -device coco-attest,iobase=0x3dc",
                   "ports 0x3dc-0x3fb overlap 'serial' of isa-serial at "
                   "0x3f8-0x3ff");
}

/* COM1's interrupt line, 4 */
static void test_irq_com1(void)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(realize_machines); i++) {
        assert_refused(realize_machines[i],
                       "-serial null -device coco-attest,irq=4",
                       "irq 4 is already used by isa-serial (its irq "
                       "property); choose another irq, or 0 for none");
        assert_refused(realize_machines[i],
                       "-device isa-serial,id=com1 -device coco-attest,irq=4",
                       "irq 4 is already used by isa-serial 'com1' (its "
                       "irq property)");
    }
}

/* Lines the machines' own ISA devices use: the RTC, the i8042 */
static void test_irq_builtin(void)
{
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(realize_machines); i++) {
        assert_refused(realize_machines[i], "-device coco-attest,irq=8",
                       "irq 8 is already used by mc146818rtc (its irq "
                       "property)");
        assert_refused(realize_machines[i], "-device coco-attest,irq=1",
                       "irq 1 is already used by i8042 (its kbd-irq "
                       "property)");
        assert_refused(realize_machines[i], "-device coco-attest,irq=12",
                       "irq 12 is already used by i8042 (its mouse-irq "
                       "property)");
    }
}

/* Free ports and a free line still realize, beside COM1 */
static void test_realize_free(void)
{
    static const struct {
        const char *machine;
        const char *props;
        unsigned base;
    } cases[] = {
        { "pc", "", COCA_DEFAULT_IOBASE },
        { "q35", "", COCA_DEFAULT_IOBASE },
        /* COM2's line, without a COM2 */
        { "pc", ",irq=3", COCA_DEFAULT_IOBASE },
        { "q35", ",irq=3", COCA_DEFAULT_IOBASE },
        /* right below COM1 at 0x3f8 */
        { "q35", ",iobase=0x3d8,irq=5", 0x3d8 },
        /* right below pc's floppy controller at 0x3f0 */
        { "pc", ",iobase=0x3d0,irq=5", 0x3d0 },
    };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(cases); i++) {
        QTestState *qts = qtest_initf("-M %s -nodefaults -serial null "
                                      "-device coco-attest%s",
                                      cases[i].machine, cases[i].props);

        g_assert_cmphex(qtest_inl(qts, cases[i].base), ==, COCA_SIGNATURE);
        check_io_window_free(qts, cases[i].base);
        qtest_quit(qts);
    }
}

static void test_query_empty(void)
{
    QTestState *qts = qtest_init("-M q35 -nodefaults");
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-coco-attest'}");
    QList *list = qdict_get_qlist(rsp, "return");

    g_assert(list);
    g_assert_cmpuint(qlist_size(list), ==, 0);
    qobject_unref(rsp);
    qtest_quit(qts);
}

static void test_negotiate(void)
{
    Coca *c = coca_start("q35", NULL);
    struct coca_negotiate_resp r;
    QDict *info;
    Msg m;

    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);

    /* nothing but NEGOTIATE before NEGOTIATE */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo));
    {
        struct coca_echo e = { 0 };

        g_assert_cmpuint(page_req(c, &m, &e, sizeof(e)), ==,
                         COCA_STATUS_NOT_NEGOTIATED);
    }
    info = query_one(c);
    g_assert_false(qdict_get_bool(info, "negotiated"));
    qobject_unref(info);

    /* no common version: the host still tells its range */
    r = negotiate(c, 2, 7, COCA_FEAT_ALL, COCA_STATUS_VERSION);
    g_assert_cmpuint(r.proto, ==, 0);
    g_assert_cmpuint(r.proto_min, ==, COCA_PROTO_MIN);
    g_assert_cmpuint(r.proto_max, ==, COCA_PROTO_MAX);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_NEGOTIATED, ==, 0);

    /* malformed ranges */
    negotiate(c, 0, 1, 0, COCA_STATUS_INVALID);
    negotiate(c, 1, 0, 0, COCA_STATUS_INVALID);

    /* a guest that only knows DIAG, plus an unknown bit: intersection */
    r = negotiate(c, 1, 9, COCA_FEAT_DIAG | (1ull << 63), COCA_STATUS_OK);
    g_assert_cmpuint(r.proto, ==, 1);
    g_assert_cmphex(r.offered, ==, COCA_FEAT_EXT_BUF | COCA_FEAT_DIAG);
    g_assert_cmphex(r.negotiated, ==, COCA_FEAT_DIAG);
    g_assert_cmpuint(r.max_object, ==, COCA_MAX_OBJECT_MIN);
    g_assert_cmpuint(r.inline_max, ==, COCA_INLINE_MAX);
    g_assert_cmpuint(r.max_pending, ==, 1);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_NEGOTIATED, ==,
                    COCA_STS_NEGOTIATED);

    /* EXT_BUF was not accepted: using it is refused */
    {
        uint64_t buf = guest_alloc(&c->alloc, 2 * COCA_PAGE_SIZE);
        g_autofree uint8_t *p = echo_payload(0, 16, 1);

        m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 16);
        m.flags = COCA_FLAG_EXT_BUF;
        m.buf_gpa = buf;
        m.buf_len = 2 * COCA_PAGE_SIZE;
        g_assert_cmpuint(page_req(c, &m, p, m.req_len), ==,
                         COCA_STATUS_FEATURE);
    }

    /* everything, then query-coco-attest reports it */
    r = negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_assert_cmphex(r.negotiated, ==, COCA_FEAT_EXT_BUF | COCA_FEAT_DIAG);
    /* a failed re-negotiation reports the agreement still in force */
    r = negotiate(c, 5, 6, 0, COCA_STATUS_VERSION);
    g_assert_cmpuint(r.proto, ==, 1);
    g_assert_cmphex(r.negotiated, ==, COCA_FEAT_EXT_BUF | COCA_FEAT_DIAG);
    echo_ok(c);
    info = query_one(c);
    g_assert_cmpstr(qdict_get_str(info, "id"), ==, "coca0");
    g_assert_cmpint(qdict_get_int(info, "iobase"), ==, COCA_DEFAULT_IOBASE);
    g_assert_true(qdict_get_bool(info, "negotiated"));
    g_assert_cmpint(qdict_get_int(info, "version"), ==, 1);
    g_assert_cmpint(qdict_get_int(info, "negotiated-features"), ==,
                    COCA_FEAT_EXT_BUF | COCA_FEAT_DIAG);
    g_assert_cmpstr(qdict_get_str(info, "channel"), ==, "page");
    g_assert_false(qdict_get_bool(info, "pending"));
    g_assert_cmpint(qdict_get_int(info, "requests"), ==, 9);
    g_assert_cmpint(qdict_get_int(info, "errors"), ==, 6);
    qobject_unref(info);
    coca_stop(c);
}

/* Management pins the offer: the guest cannot get more. */
static void test_pinned_features(void)
{
    Coca *c = coca_start("q35", ",features=0x4,irq=5");
    struct coca_negotiate_resp r;
    Msg m;

    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    r = negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_assert_cmphex(r.offered, ==, COCA_FEAT_DIAG);
    g_assert_cmphex(r.negotiated, ==, COCA_FEAT_DIAG);
    /* IRQ was pinned off although an IRQ line is configured */
    g_assert_cmpuint(cmd(c, COCA_CMD_IRQ_ENABLE), ==, COCA_RES_NO_IRQ);
    echo_ok(c);

    m = msg_new(c, COCA_OP_ECHO, 0);
    m.flags = COCA_FLAG_EXT_BUF;
    m.buf_gpa = guest_alloc(&c->alloc, COCA_PAGE_SIZE);
    m.buf_len = COCA_PAGE_SIZE;
    g_assert_cmpuint(page_req(c, &m, NULL, 0), ==, COCA_STATUS_FEATURE);

    /* a guest that accepts nothing loses ECHO */
    r = negotiate(c, 1, 1, 0, COCA_STATUS_OK);
    g_assert_cmphex(r.negotiated, ==, 0);
    {
        struct coca_echo e = { 0 };

        m = msg_new(c, COCA_OP_ECHO, sizeof(e));
        g_assert_cmpuint(page_req(c, &m, &e, sizeof(e)), ==,
                         COCA_STATUS_FEATURE);
    }
    coca_stop(c);
}

static void test_page_echo(void)
{
    Coca *c = coca_ready(NULL);
    size_t len = COCA_INLINE_MAX - sizeof(struct coca_echo);
    g_autofree uint8_t *req = echo_payload(0, len, 3);
    g_autofree uint8_t *resp = g_malloc(COCA_INLINE_MAX);
    Msg m = msg_new(c, COCA_OP_ECHO, COCA_INLINE_MAX);

    /* the largest inline request: one doorbell, synchronous */
    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==, COCA_STATUS_OK);
    g_assert_cmphex(m.magic, ==, COCA_MSG_MAGIC);
    g_assert_cmpuint(m.command, ==, COCA_OP_ECHO);
    page_payload(c, &m, resp, COCA_INLINE_MAX);
    check_echo(resp, len, 0, 3);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & (COCA_STS_BUSY | COCA_STS_DONE),
                    ==, COCA_STS_DONE);
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_DONE, ==, 0);

    /* NO_CRC: same data back, the CRC left at 0 */
    {
        g_autofree uint8_t *r2 = echo_payload(COCA_ECHO_NO_CRC, 32, 4);
        uint8_t back[40];
        struct coca_echo e;

        m = msg_new(c, COCA_OP_ECHO, sizeof(back));
        g_assert_cmpuint(page_req(c, &m, r2, sizeof(back)), ==,
                         COCA_STATUS_OK);
        page_payload(c, &m, back, sizeof(back));
        memcpy(&e, back, sizeof(e));
        g_assert_cmphex(le32_to_cpu(e.flags), ==, COCA_ECHO_NO_CRC);
        g_assert_cmphex(le32_to_cpu(e.crc), ==, 0);
        g_assert(memcmp(back + 8, r2 + 8, 32) == 0);
    }
    echo_ok(c);
    coca_stop(c);
}

static void test_port_echo(void)
{
    Coca *c = coca_start("q35", NULL);
    struct coca_negotiate_req nreq = {
        .proto_min = cpu_to_le16(1),
        .proto_max = cpu_to_le16(1),
        .features = cpu_to_le64(COCA_FEAT_ALL),
    };
    struct coca_negotiate_resp nresp;
    size_t len = 333;           /* not a multiple of 4 */
    g_autofree uint8_t *req = echo_payload(0, len, 9);
    g_autofree uint8_t *resp = NULL;
    g_autofree uint8_t *nr = NULL;
    QDict *info;
    Msg m;

    /* no page at all: negotiation and ECHO over the ports only */
    m = msg_new(c, COCA_OP_NEGOTIATE, sizeof(nreq));
    g_assert_cmpuint(port_send(c, &m, &nreq, sizeof(nreq), 0), ==,
                     COCA_RES_OK);
    nr = port_recv(c, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    g_assert_cmpuint(m.resp_len, ==, sizeof(nresp));
    memcpy(&nresp, nr, sizeof(nresp));
    g_assert_cmpuint(le16_to_cpu(nresp.proto), ==, 1);

    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    g_assert_cmpuint(port_send(c, &m, req, m.req_len, 0), ==, COCA_RES_OK);
    resp = port_recv(c, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    g_assert_cmpuint(m.seq, ==, c->seq);
    g_assert_cmpuint(m.resp_len, ==, sizeof(struct coca_echo) + len);
    check_echo(resp, len, 0, 9);

    info = query_one(c);
    g_assert_cmpstr(qdict_get_str(info, "channel"), ==, "port");
    qobject_unref(info);
    coca_stop(c);
}

/* 64 KiB both ways, over a multi-page buffer and over the port channel. */
static void test_large_object(void)
{
    Coca *c = coca_ready(NULL);
    uint32_t total = COCA_MAX_OBJECT_MIN;
    size_t len = total - sizeof(struct coca_echo);
    uint64_t buf = guest_alloc(&c->alloc, total);
    g_autofree uint8_t *req = echo_payload(0, len, 5);
    g_autofree uint8_t *resp = g_malloc(total);
    g_autofree uint8_t *presp = NULL;
    Msg m = msg_new(c, COCA_OP_ECHO, total);

    m.flags = COCA_FLAG_EXT_BUF;
    m.buf_gpa = buf;
    m.buf_len = total;
    g_assert_cmpuint(page_req(c, &m, req, total), ==, COCA_STATUS_OK);
    g_assert_cmphex(m.buf_gpa, ==, buf);
    page_payload(c, &m, resp, total);
    check_echo(resp, len, 0, 5);

    m = msg_new(c, COCA_OP_ECHO, total);
    g_assert_cmpuint(port_send(c, &m, req, total, 0), ==, COCA_RES_OK);
    presp = port_recv(c, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    check_echo(presp, len, 0, 5);
    coca_stop(c);
}

static void test_async_poll(void)
{
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    size_t len = 64;
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, len, 11);
    g_autofree uint8_t *resp = g_malloc(sizeof(struct coca_echo) + len);
    Msg m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    QDict *info;

    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & (COCA_STS_BUSY | COCA_STS_DONE),
                    ==, COCA_STS_BUSY);
    info = query_one(c);
    g_assert_true(qdict_get_bool(info, "pending"));
    qobject_unref(info);

    /* virtual time stands still under qtest: nothing happens */
    g_usleep(20000);
    g_assert_cmpuint(page_hdr(c).status, ==, COCA_STATUS_PENDING);

    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    m = page_wait(c);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    page_payload(c, &m, resp, m.resp_len);
    check_echo(resp, len, COCA_ECHO_ASYNC, 11);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & (COCA_STS_BUSY | COCA_STS_DONE),
                    ==, COCA_STS_DONE);

    /* asynchronous without a delay: straight through the thread pool */
    coca_stop(c);
    c = coca_ready(NULL);
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    page_req(c, &m, req, m.req_len);
    m = page_wait(c);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    page_payload(c, &m, resp, m.resp_len);
    check_echo(resp, len, COCA_ECHO_ASYNC, 11);
    coca_stop(c);
}

/* Wait (bounded) for the completion interrupt. */
static void wait_irq(Coca *c, int irq)
{
    int i;

    for (i = 0; i < 5000 && !qtest_get_irq(c->qts, irq); i++) {
        g_usleep(1000);
        rd(c, COCA_REG_SIGNATURE);      /* let the main loop run */
    }
    g_assert_true(qtest_get_irq(c->qts, irq));
}

static void test_async_irq(void)
{
    Coca *c = coca_start("pc", ",irq=5,x-echo-delay-ms=100");
    size_t len = 32;
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, len, 13);
    g_autofree uint8_t *resp = NULL;
    struct coca_negotiate_resp r;
    Msg m;

    qtest_irq_intercept_in(c->qts, "ioapic");
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    r = negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    /* everything but IDENTITY and KBS, which need backends */
    g_assert_cmphex(r.negotiated, ==,
                    COCA_FEAT_ALL & ~(COCA_FEAT_IDENTITY | COCA_FEAT_KBS));
    g_assert_cmpuint(cmd(c, COCA_CMD_IRQ_ENABLE), ==, COCA_RES_OK);
    /* the NEGOTIATE completion is still DONE: acknowledge it */
    g_assert_true(qtest_get_irq(c->qts, 5));
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    g_assert_false(qtest_get_irq(c->qts, 5));

    /* page channel */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    g_assert_false(qtest_get_irq(c->qts, 5));
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    wait_irq(c, 5);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_IRQ, ==, COCA_STS_IRQ);
    g_assert_cmpuint(page_hdr(c).status, ==, COCA_STATUS_OK);
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    g_assert_false(qtest_get_irq(c->qts, 5));

    /* port channel */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    g_assert_cmpuint(port_send(c, &m, req, m.req_len, 0), ==, COCA_RES_OK);
    g_assert_false(qtest_get_irq(c->qts, 5));
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    wait_irq(c, 5);
    resp = port_recv(c, &m);         /* acknowledges */
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    check_echo(resp, len, COCA_ECHO_ASYNC, 13);
    g_assert_false(qtest_get_irq(c->qts, 5));

    /* disabled: completion without an interrupt */
    g_assert_cmpuint(cmd(c, COCA_CMD_IRQ_DISABLE), ==, COCA_RES_OK);
    echo_ok(c);
    g_assert_false(qtest_get_irq(c->qts, 5));
    coca_stop(c);

    /* no IRQ configured: enabling it is refused, polling still works */
    c = coca_ready(NULL);
    g_assert_cmpuint(cmd(c, COCA_CMD_IRQ_ENABLE), ==, COCA_RES_NO_IRQ);
    coca_stop(c);
}

/* A doorbell while a request is in flight changes nothing. */
static void test_busy(void)
{
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    size_t len = 48;
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, len, 17);
    g_autofree uint8_t *resp = g_malloc(sizeof(struct coca_echo) + len);
    uint8_t before[COCA_PAGE_SIZE], after[COCA_PAGE_SIZE];
    Msg m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);

    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    qtest_memread(c->qts, c->page, before, sizeof(before));
    g_assert_cmpuint(cmd(c, COCA_CMD_RING), ==, COCA_RES_BUSY);
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_BEGIN), ==, COCA_RES_BUSY);
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_SUBMIT), ==, COCA_RES_BUSY);
    g_assert_cmpuint(cmd(c, COCA_CMD_REGISTER_PAGE), ==, COCA_RES_BUSY);
    g_assert_cmpuint(cmd(c, COCA_CMD_UNREGISTER), ==, COCA_RES_BUSY);
    wr(c, COCA_REG_DATA, 0x1234);
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_BUSY);
    qtest_memread(c->qts, c->page, after, sizeof(after));
    g_assert(memcmp(before, after, sizeof(before)) == 0);

    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    m = page_wait(c);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    page_payload(c, &m, resp, m.resp_len);
    check_echo(resp, len, COCA_ECHO_ASYNC, 17);
    echo_ok(c);
    coca_stop(c);
}

/* Reset with a request pending: nothing is written to the old page. */
static void test_reset_pending(void)
{
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    size_t len = 40;
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, len, 19);
    uint8_t before[COCA_PAGE_SIZE], after[COCA_PAGE_SIZE];
    Msg m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    QDict *info;
    int i;

    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(c->qts, "RESET");
    g_assert_cmphex(rd(c, COCA_REG_STATUS), ==, 0);

    /* the "next boot" owns the page now */
    memset(before, 0x5a, sizeof(before));
    qtest_memwrite(c->qts, c->page, before, sizeof(before));
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    for (i = 0; i < 5000; i++) {
        info = query_one(c);
        if (qdict_get_int(info, "dropped") == 1) {
            break;
        }
        qobject_unref(info);
        info = NULL;
        g_usleep(1000);
    }
    g_assert(info);
    g_assert_false(qdict_get_bool(info, "pending"));
    g_assert_false(qdict_get_bool(info, "negotiated"));
    qobject_unref(info);
    qtest_memread(c->qts, c->page, after, sizeof(after));
    g_assert(memcmp(before, after, sizeof(before)) == 0);
    g_assert_cmphex(rd(c, COCA_REG_STATUS), ==, 0);

    /* and the device works normally after the reset */
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    echo_ok(c);
    coca_stop(c);
}

/* Guest protocol errors reach management as events, at most one a second */
static void test_guest_error_event(void)
{
    Coca *c = coca_ready(NULL);
    QDict *ev, *data;
    Msg m;

    m = msg_new(c, COCA_OP_ECHO, 0);
    m.magic ^= 1;
    g_assert_cmpuint(page_req(c, &m, NULL, 0), ==, COCA_STATUS_BAD_HEADER);
    ev = qtest_qmp_eventwait_ref(c->qts, "COCO_ATTEST_GUEST_ERROR");
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "status"), ==, "BAD_HEADER");
    g_assert_cmpint(qdict_get_int(data, "command"), ==, COCA_OP_ECHO);
    g_assert_cmpstr(qdict_get_str(data, "qom-path"), ==,
                    "/machine/peripheral/coca0");
    qobject_unref(ev);

    /* a second one within the second is held back... */
    m = msg_new(c, 0x7777, 0);
    g_assert_cmpuint(page_req(c, &m, NULL, 0), ==, COCA_STATUS_UNSUPPORTED);
    qobject_unref(query_one(c));
    g_assert_null(qtest_qmp_event_ref(c->qts, "COCO_ATTEST_GUEST_ERROR"));
    /* ...and delivered when it is over (qtest: virtual time) */
    qtest_clock_step(c->qts, 1000 * 1000 * 1000);
    ev = qtest_qmp_eventwait_ref(c->qts, "COCO_ATTEST_GUEST_ERROR");
    data = qdict_get_qdict(ev, "data");
    g_assert_cmpstr(qdict_get_str(data, "status"), ==, "UNSUPPORTED");
    g_assert_cmpint(qdict_get_int(data, "command"), ==, 0x7777);
    qobject_unref(ev);
    /* a successful request emits nothing */
    echo_ok(c);
    qobject_unref(query_one(c));
    g_assert_null(qtest_qmp_event_ref(c->qts, "COCO_ATTEST_GUEST_ERROR"));
    coca_stop(c);
}

/* ------------------------------------------------------------------ */
/* Bad input: each is refused with its documented result, then a valid */
/* request still succeeds.                                              */
/* ------------------------------------------------------------------ */

static void test_bad_page(void)
{
    Coca *c = coca_ready(NULL);
    static const uint64_t bad[] = {
        0x1000 + 0x800,                 /* unaligned */
        RAM_SIZE,                       /* just beyond RAM */
        0x100000000ull,                 /* far beyond RAM */
        0xfffffffffffff000ull,          /* end of the address space */
        0xfed00000,                     /* HPET MMIO */
        0xfee00000,                     /* local APIC MMIO */
        0xfffff000,                     /* BIOS ROM */
    };
    size_t i;

    for (i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_test_message("page 0x%" PRIx64, bad[i]);
        g_assert_cmpuint(register_page(c, bad[i]), ==, COCA_RES_BAD_PAGE);
        /* the page registered before stays registered and usable */
        g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_PAGE_VALID, ==,
                        COCA_STS_PAGE_VALID);
        echo_ok(c);
        /* so does a page that was never valid leave none */
        g_assert_cmpuint(cmd(c, COCA_CMD_UNREGISTER), ==, COCA_RES_OK);
        g_assert_cmpuint(register_page(c, bad[i]), ==, COCA_RES_BAD_PAGE);
        g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_PAGE_VALID, ==, 0);
        g_assert_cmpuint(cmd(c, COCA_CMD_RING), ==, COCA_RES_BAD_PAGE);
        g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
        echo_ok(c);
    }

    /* ringing with no page at all */
    g_assert_cmpuint(cmd(c, COCA_CMD_UNREGISTER), ==, COCA_RES_OK);
    g_assert_cmpuint(cmd(c, COCA_CMD_RING), ==, COCA_RES_BAD_PAGE);
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);

    /* unknown register command */
    g_assert_cmpuint(cmd(c, 0x99), ==, COCA_RES_BAD_CMD);
    echo_ok(c);
    coca_stop(c);
}

typedef struct BadHdr {
    const char *name;
    void (*mangle)(Coca *c, Msg *m);
    uint32_t status;
} BadHdr;

static void bad_magic(Coca *c, Msg *m)
{
    m->magic = 0x41434f44;
}

static void bad_version(Coca *c, Msg *m)
{
    m->version = 2;
}

static void bad_command(Coca *c, Msg *m)
{
    m->command = 0x7777;
}

static void bad_flags(Coca *c, Msg *m)
{
    m->flags = 1u << 5;
}

static void bad_response_flag(Coca *c, Msg *m)
{
    m->flags = COCA_FLAG_RESPONSE;
}

static void bad_reserved0(Coca *c, Msg *m)
{
    m->reserved0 = 1;
}

static void bad_reserved1(Coca *c, Msg *m)
{
    m->reserved1 = 0x80000000;
}

static void bad_buf_without_flag(Coca *c, Msg *m)
{
    m->buf_len = COCA_PAGE_SIZE;
}

static void bad_inline_len(Coca *c, Msg *m)
{
    m->req_len = COCA_INLINE_MAX + 1;
}

static void bad_inline_huge(Coca *c, Msg *m)
{
    m->req_len = 0xffffffff;
}

static void ext_buf(Coca *c, Msg *m, uint64_t gpa, uint32_t len)
{
    m->flags = COCA_FLAG_EXT_BUF;
    m->buf_gpa = gpa;
    m->buf_len = len;
}

static void bad_buf_unaligned(Coca *c, Msg *m)
{
    ext_buf(c, m, c->page + COCA_PAGE_SIZE + 0x10, COCA_PAGE_SIZE);
}

static void bad_buf_zero(Coca *c, Msg *m)
{
    ext_buf(c, m, c->page + COCA_PAGE_SIZE, 0);
}

static void bad_buf_over_limit(Coca *c, Msg *m)
{
    ext_buf(c, m, c->page + COCA_PAGE_SIZE,
            COCA_MAX_OBJECT_MIN + COCA_PAGE_SIZE);
}

static void bad_req_over_buf(Coca *c, Msg *m)
{
    ext_buf(c, m, c->page + COCA_PAGE_SIZE, COCA_PAGE_SIZE);
    m->req_len = COCA_PAGE_SIZE + 4;
}

static void bad_buf_wraps(Coca *c, Msg *m)
{
    ext_buf(c, m, 0xfffffffffffff000ull, 2 * COCA_PAGE_SIZE);
}

static void bad_buf_beyond_ram(Coca *c, Msg *m)
{
    ext_buf(c, m, 0x100000000ull, COCA_PAGE_SIZE);
}

static void bad_buf_crosses_ram_end(Coca *c, Msg *m)
{
    ext_buf(c, m, RAM_SIZE - COCA_PAGE_SIZE, 2 * COCA_PAGE_SIZE);
}

static void bad_buf_mmio(Coca *c, Msg *m)
{
    ext_buf(c, m, 0xfee00000, COCA_PAGE_SIZE);
}

static void bad_buf_rom(Coca *c, Msg *m)
{
    ext_buf(c, m, 0xffff0000, 2 * COCA_PAGE_SIZE);
}

static void bad_buf_overlaps_page(Coca *c, Msg *m)
{
    ext_buf(c, m, c->page, 2 * COCA_PAGE_SIZE);
}

static const BadHdr bad_hdrs[] = {
    { "magic", bad_magic, COCA_STATUS_BAD_HEADER },
    { "version", bad_version, COCA_STATUS_BAD_HEADER },
    { "command", bad_command, COCA_STATUS_UNSUPPORTED },
    { "flags", bad_flags, COCA_STATUS_BAD_HEADER },
    { "response-flag", bad_response_flag, COCA_STATUS_BAD_HEADER },
    { "reserved0", bad_reserved0, COCA_STATUS_BAD_HEADER },
    { "reserved1", bad_reserved1, COCA_STATUS_BAD_HEADER },
    { "buf-without-flag", bad_buf_without_flag, COCA_STATUS_BAD_HEADER },
    { "inline-len", bad_inline_len, COCA_STATUS_TOO_LARGE },
    { "inline-huge", bad_inline_huge, COCA_STATUS_TOO_LARGE },
    { "buf-unaligned", bad_buf_unaligned, COCA_STATUS_BAD_BUFFER },
    { "buf-zero", bad_buf_zero, COCA_STATUS_BAD_BUFFER },
    { "buf-over-limit", bad_buf_over_limit, COCA_STATUS_TOO_LARGE },
    { "req-over-buf", bad_req_over_buf, COCA_STATUS_TOO_LARGE },
    { "buf-wraps", bad_buf_wraps, COCA_STATUS_BAD_BUFFER },
    { "buf-beyond-ram", bad_buf_beyond_ram, COCA_STATUS_BAD_BUFFER },
    { "buf-crosses-ram-end", bad_buf_crosses_ram_end,
      COCA_STATUS_BAD_BUFFER },
    { "buf-mmio", bad_buf_mmio, COCA_STATUS_BAD_BUFFER },
    { "buf-rom", bad_buf_rom, COCA_STATUS_BAD_BUFFER },
    { "buf-overlaps-page", bad_buf_overlaps_page, COCA_STATUS_BAD_BUFFER },
};

static void test_bad_header(void)
{
    Coca *c = coca_ready(NULL);
    uint8_t page_before[COCA_INLINE_MAX], page_after[COCA_INLINE_MAX];
    size_t i;

    memset(page_before, 0xa5, sizeof(page_before));
    for (i = 0; i < G_N_ELEMENTS(bad_hdrs); i++) {
        Msg m = msg_new(c, COCA_OP_ECHO, 16);
        uint32_t seq = m.seq;

        g_test_message("bad header: %s", bad_hdrs[i].name);
        qtest_memwrite(c->qts, c->page + COCA_HDR_SIZE, page_before,
                       sizeof(page_before));
        bad_hdrs[i].mangle(c, &m);
        g_assert_cmpuint(page_ring(c, &m, NULL, 0), ==, COCA_RES_OK);
        g_assert_cmpuint(m.status, ==, bad_hdrs[i].status);
        g_assert_cmpuint(m.seq, ==, seq);
        g_assert_cmpuint(m.resp_len, ==, 0);
        g_assert_cmphex(m.flags & COCA_FLAG_RESPONSE, ==, COCA_FLAG_RESPONSE);
        /* nothing but the header was written */
        qtest_memread(c->qts, c->page + COCA_HDR_SIZE, page_after,
                      sizeof(page_after));
        g_assert(memcmp(page_before, page_after, sizeof(page_after)) == 0);
        echo_ok(c);
    }
    coca_stop(c);
}

/* A buffer that stops being RAM is caught (max-object enforced, too). */
static void test_bad_payload(void)
{
    Coca *c = coca_ready(NULL);
    struct coca_echo e = { .flags = cpu_to_le32(1u << 7) };
    struct coca_negotiate_req n = {
        .proto_min = cpu_to_le16(1),
        .proto_max = cpu_to_le16(1),
        .reserved = cpu_to_le32(1),
    };
    Msg m;

    /* ECHO with reserved flag bits, a non-zero CRC, a short payload */
    m = msg_new(c, COCA_OP_ECHO, sizeof(e));
    g_assert_cmpuint(page_req(c, &m, &e, sizeof(e)), ==,
                     COCA_STATUS_INVALID);
    echo_ok(c);
    e.flags = 0;
    e.crc = cpu_to_le32(1);
    m = msg_new(c, COCA_OP_ECHO, sizeof(e));
    g_assert_cmpuint(page_req(c, &m, &e, sizeof(e)), ==,
                     COCA_STATUS_INVALID);
    echo_ok(c);
    m = msg_new(c, COCA_OP_ECHO, 4);
    g_assert_cmpuint(page_req(c, &m, &e, 4), ==, COCA_STATUS_INVALID);
    echo_ok(c);

    /* NEGOTIATE with reserved bits or too short */
    m = msg_new(c, COCA_OP_NEGOTIATE, sizeof(n));
    g_assert_cmpuint(page_req(c, &m, &n, sizeof(n)), ==,
                     COCA_STATUS_INVALID);
    m = msg_new(c, COCA_OP_NEGOTIATE, 8);
    g_assert_cmpuint(page_req(c, &m, &n, 8), ==, COCA_STATUS_INVALID);
    /* a failed NEGOTIATE leaves the previous agreement in force */
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_NEGOTIATED, ==,
                    COCA_STS_NEGOTIATED);
    echo_ok(c);
    coca_stop(c);
}

static void test_bad_port(void)
{
    Coca *c = coca_ready(",max-object=65536");
    g_autofree uint8_t *p = echo_payload(0, 20, 23);
    g_autofree uint8_t *resp = NULL;
    Msg m;
    int i;

    /* CRC mismatch: refused, nothing executed, the old DONE is gone */
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_DONE, ==,
                    COCA_STS_DONE);
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 20);
    g_assert_cmpuint(port_send(c, &m, p, m.req_len, 1), ==, COCA_RES_CRC);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) &
                    (COCA_STS_DONE | COCA_STS_PORT_RESPONSE), ==, 0);
    g_assert_cmpuint(rd(c, COCA_REG_DATA), ==, 0);
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_NOT_READY);
    echo_ok(c);

    /* submit without begin */
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_SUBMIT), ==, COCA_RES_STREAM);
    /* data without begin */
    wr(c, COCA_REG_DATA, 1);
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_STREAM);
    /* short stream */
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_BEGIN), ==, COCA_RES_OK);
    wr(c, COCA_REG_DATA, COCA_MSG_MAGIC);
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_SUBMIT), ==, COCA_RES_STREAM);
    /* req_len claims more than was streamed */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 20);
    m.req_len = 4000;
    g_assert_cmpuint(port_send(c, &m, p, 28, 0), ==, COCA_RES_STREAM);
    /* req_len claims less than was streamed */
    m = msg_new(c, COCA_OP_ECHO, 4);
    g_assert_cmpuint(port_send(c, &m, p, 28, 0), ==, COCA_RES_STREAM);
    /* overrun: more words than header + max-object */
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_BEGIN), ==, COCA_RES_OK);
    for (i = 0; i < (COCA_HDR_SIZE + 65536) / 4; i++) {
        wr(c, COCA_REG_DATA, 0);
    }
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_OK);
    wr(c, COCA_REG_DATA, 0);
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_STREAM);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_PORT_ACTIVE, ==, 0);
    g_assert_cmpuint(cmd(c, COCA_CMD_PORT_SUBMIT), ==, COCA_RES_STREAM);

    /* EXT_BUF is a page channel feature */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 20);
    m.flags = COCA_FLAG_EXT_BUF;
    m.buf_gpa = c->page + COCA_PAGE_SIZE;
    m.buf_len = COCA_PAGE_SIZE;
    g_assert_cmpuint(port_send(c, &m, p, m.req_len, 0), ==, COCA_RES_OK);
    resp = port_recv(c, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_BAD_HEADER);
    g_free(resp);

    /* a bad header over the port channel gets a response too */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 20);
    m.magic = 0;
    g_assert_cmpuint(port_send(c, &m, p, m.req_len, 0), ==, COCA_RES_OK);
    resp = port_recv(c, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_BAD_HEADER);
    g_free(resp);

    /* reading past the end of a response */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 20);
    g_assert_cmpuint(port_send(c, &m, p, m.req_len, 0), ==, COCA_RES_OK);
    for (i = 0; i < (COCA_HDR_SIZE + 28) / 4; i++) {
        rd(c, COCA_REG_DATA);
    }
    g_assert_cmpuint(rd(c, COCA_REG_DATA), ==, 0);
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_STREAM);
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);

    /* and the port channel still works */
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 20);
    g_assert_cmpuint(port_send(c, &m, p, m.req_len, 0), ==, COCA_RES_OK);
    resp = port_recv(c, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    check_echo(resp, 20, 0, 23);
    echo_ok(c);
    coca_stop(c);
}

/* Accesses other than 32 bits wide are ignored. */
static void test_access_size(void)
{
    Coca *c = coca_ready(NULL);

    qtest_outb(c->qts, c->base + COCA_REG_CMD, COCA_CMD_UNREGISTER);
    qtest_outw(c->qts, c->base + COCA_REG_CMD, COCA_CMD_UNREGISTER);
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_PAGE_VALID, ==,
                    COCA_STS_PAGE_VALID);
    /* writes to read-only registers are ignored */
    wr(c, COCA_REG_SIGNATURE, 0);
    wr(c, COCA_REG_STATUS, 0xffffffff);
    g_assert_cmphex(rd(c, COCA_REG_SIGNATURE), ==, COCA_SIGNATURE);
    echo_ok(c);
    coca_stop(c);
}


/* ------------------------------------------------------------------ */
/* Identity: -object coco-attest-ca with an instance directory that    */
/* coco-attest-provision wrote; the test suite passes it in            */
/* $COCA_CA_DIR (the tests skip without it).                           */
/* ------------------------------------------------------------------ */

#ifdef CONFIG_GNUTLS
#include <gnutls/gnutls.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

static const char *ca_dir(void)
{
    const char *dir = g_getenv("COCA_CA_DIR");

    if (!dir) {
        g_test_skip("COCA_CA_DIR (a provisioned instance directory) unset");
    }
    return dir;
}

/* A machine with the CA backend, page registered, all negotiated. */
static Coca *ca_ready(const char *dir, const char *ca_props)
{
    g_autofree char *obj = g_strdup_printf(
        "-object coco-attest-ca,id=ca0,dir=%s%s", dir,
        ca_props ? ca_props : "");
    Coca *c = coca_start_with("q35", obj, ",ca=ca0");
    struct coca_negotiate_resp r;

    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    r = negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_assert_cmphex(r.negotiated & COCA_FEAT_IDENTITY, ==,
                    COCA_FEAT_IDENTITY);
    return c;
}

/* One request over the page channel, waiting for asynchronous ones. */
static uint32_t ca_call(Coca *c, uint16_t op, const void *req, size_t len,
                        uint8_t **resp, uint32_t *resp_len)
{
    Msg m = msg_new(c, op, len);
    uint64_t buf = 0;

    if (len > COCA_INLINE_MAX) {
        buf = guest_alloc(&c->alloc, COCA_MAX_OBJECT_MIN);
        m.flags = COCA_FLAG_EXT_BUF;
        m.buf_gpa = buf;
        m.buf_len = COCA_MAX_OBJECT_MIN;
    }
    g_assert_cmpuint(page_ring(c, &m, req, len), ==, COCA_RES_OK);
    if (m.status == COCA_STATUS_PENDING) {
        m = page_wait(c);
    }
    *resp_len = m.resp_len;
    *resp = g_malloc0(m.resp_len + 1);
    if (m.status == COCA_STATUS_OK && m.resp_len) {
        page_payload(c, &m, *resp, m.resp_len);
    }
    if (buf) {
        guest_free(&c->alloc, buf);
    }
    return m.status;
}

/* Split a certificate list, checking every length against the total. */
static GPtrArray *cert_list(const uint8_t *p, uint32_t len)
{
    GPtrArray *certs = g_ptr_array_new_with_free_func(
        (GDestroyNotify)g_bytes_unref);
    uint32_t count, off = sizeof(struct coca_cert_list), i, n;

    g_assert_cmpuint(len, >=, off);
    count = ldl_le_p(p);
    g_assert_cmpuint(ldl_le_p(p + 4), ==, 0);
    g_assert_cmpuint(count, >=, 1);
    g_assert_cmpuint(count, <=, COCA_CERT_LIST_MAX);
    for (i = 0; i < count; i++) {
        g_assert_cmpuint(off + 4, <=, len);
        n = ldl_le_p(p + off);
        off += 4;
        g_assert_cmpuint(n, <=, len - off);
        g_ptr_array_add(certs, g_bytes_new(p + off, n));
        off += n;
    }
    g_assert_cmpuint(off, ==, len);
    return certs;
}

static void write_pem(const char *path, GBytes *der)
{
    gnutls_datum_t d = {
        .data = (unsigned char *)g_bytes_get_data(der, NULL),
        .size = g_bytes_get_size(der),
    };
    gnutls_datum_t pem;

    g_assert_cmpint(gnutls_pem_base64_encode2("CERTIFICATE", &d, &pem), ==,
                    0);
    g_assert_true(g_file_set_contents(path, (char *)pem.data, pem.size,
                                      NULL));
    gnutls_free(pem.data);
}

/* Verify a certificate list with openssl and certtool. */
static void verify_chain(const char *dir, GPtrArray *certs)
{
    g_autofree char *tmp = g_dir_make_tmp("coca-XXXXXX", NULL);
    g_autofree char *leaf = g_build_filename(tmp, "leaf.pem", NULL);
    g_autofree char *mid = g_build_filename(tmp, "issuer.pem", NULL);
    g_autofree char *both = g_build_filename(tmp, "chain.pem", NULL);
    g_autofree char *root = g_build_filename(dir, "root.crt", NULL);
    g_autofree char *a = NULL, *b = NULL, *out = NULL, *err = NULL;
    g_autofree char *cmd1 = NULL, *cmd2 = NULL;
    int status;

    g_assert_cmpuint(certs->len, ==, 3);
    write_pem(leaf, g_ptr_array_index(certs, 0));
    write_pem(mid, g_ptr_array_index(certs, 1));
    g_assert_true(g_file_get_contents(leaf, &a, NULL, NULL));
    g_assert_true(g_file_get_contents(mid, &b, NULL, NULL));
    g_autofree char *ab = g_strconcat(a, b, NULL);
    g_assert_true(g_file_set_contents(both, ab, -1, NULL));

    cmd1 = g_strdup_printf("openssl verify -CAfile %s -untrusted %s %s",
                           root, mid, leaf);
    g_assert_true(g_spawn_command_line_sync(cmd1, &out, &err, &status,
                                            NULL));
    if (!g_spawn_check_exit_status(status, NULL)) {
        g_test_message("%s: %s%s", cmd1, out, err);
    }
    g_assert_true(g_spawn_check_exit_status(status, NULL));
    g_free(out);
    g_free(err);
    cmd2 = g_strdup_printf("certtool --verify --load-ca-certificate %s "
                           "--infile %s", root, both);
    g_assert_true(g_spawn_command_line_sync(cmd2, &out, &err, &status,
                                            NULL));
    g_assert_true(g_spawn_check_exit_status(status, NULL));
    g_assert_nonnull(strstr(out, "Chain verification output: Verified"));
    unlink(leaf);
    unlink(mid);
    unlink(both);
    rmdir(tmp);
}

static gnutls_x509_privkey_t new_key(gnutls_pk_algorithm_t algo,
                                     unsigned int bits)
{
    gnutls_x509_privkey_t key;

    g_assert_cmpint(gnutls_x509_privkey_init(&key), ==, 0);
    g_assert_cmpint(gnutls_x509_privkey_generate(key, algo, bits, 0), ==, 0);
    return key;
}

/* Parse a DER certificate the device returned */
static gnutls_x509_crt_t crt_of(GBytes *der)
{
    gnutls_x509_crt_t crt;
    gnutls_datum_t d = {
        .data = (unsigned char *)g_bytes_get_data(der, NULL),
        .size = g_bytes_get_size(der),
    };

    g_assert_cmpint(gnutls_x509_crt_init(&crt), ==, 0);
    g_assert_cmpint(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER), ==,
                    0);
    return crt;
}

/* The certificate certifies exactly this key */
static void assert_cert_for_key(gnutls_x509_crt_t crt,
                                gnutls_x509_privkey_t key)
{
    unsigned char id1[64], id2[64];
    size_t l1 = sizeof(id1), l2 = sizeof(id2);

    g_assert_cmpint(gnutls_x509_crt_get_key_id(crt, 0, id1, &l1), ==, 0);
    g_assert_cmpint(gnutls_x509_privkey_get_key_id(key, 0, id2, &l2), ==, 0);
    g_assert_cmpmem(id1, l1, id2, l2);
}

/* A CSR asking for everything a guest must not get. */
static GBytes *greedy_csr(gnutls_x509_privkey_t key)
{
    gnutls_x509_crq_t crq;
    gnutls_datum_t der;
    GBytes *out;

    g_assert_cmpint(gnutls_x509_crq_init(&crq), ==, 0);
    g_assert_cmpint(gnutls_x509_crq_set_dn(crq, "CN=other-instance,"
                                           "O=other-project", NULL), ==, 0);
    g_assert_cmpint(gnutls_x509_crq_set_key(crq, key), ==, 0);
    g_assert_cmpint(gnutls_x509_crq_set_basic_constraints(crq, 1, -1), ==,
                    0);
    g_assert_cmpint(gnutls_x509_crq_set_subject_alt_name(
                        crq, GNUTLS_SAN_DNSNAME, "evil.example", 12,
                        GNUTLS_FSAN_SET), ==, 0);
    g_assert_cmpint(gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0),
                    ==, 0);
    g_assert_cmpint(gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der),
                    ==, 0);
    out = g_bytes_new(der.data, der.size);
    gnutls_free(der.data);
    gnutls_x509_crq_deinit(crq);
    return out;
}

/* A request of two 32-bit words and data, answered by a certificate list */
static uint32_t cert_req(Coca *c, uint16_t op, uint32_t a, uint32_t b,
                         GBytes *data, GPtrArray **certs)
{
    size_t n = g_bytes_get_size(data);
    g_autofree uint8_t *req = g_malloc0(8 + n);
    g_autofree uint8_t *resp = NULL;
    uint32_t len, st;

    stl_le_p(req, a);
    stl_le_p(req + 4, b);
    memcpy(req + 8, g_bytes_get_data(data, NULL), n);
    st = ca_call(c, op, req, 8 + n, &resp, &len);
    if (st == COCA_STATUS_OK && certs) {
        *certs = cert_list(resp, len);
    }
    return st;
}

static uint32_t certify_ak(Coca *c, GBytes *csr, GPtrArray **certs)
{
    return cert_req(c, COCA_OP_CERTIFY_AK, COCA_AK_FORMAT_CSR, 0, csr, certs);
}

static void test_ca_identity(void)
{
    const char *dir = ca_dir();
    g_autofree char *conf = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree uint8_t *resp = NULL, *n1 = NULL, *n2 = NULL;
    uint32_t len, off, l1, l2;
    int seen = 0;
    Coca *c;

    if (!dir) {
        return;
    }
    conf = g_build_filename(dir, "identity.conf", NULL);
    g_assert_true(g_key_file_load_from_file(kf, conf, 0, NULL));
    c = ca_ready(dir, NULL);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_IDENTITY, NULL, 0, &resp, &len),
                     ==, COCA_STATUS_OK);
    for (off = 0; off + 4 <= len; ) {
        uint16_t tag = lduw_le_p(resp + off), l = lduw_le_p(resp + off + 2);
        g_autofree char *val = NULL, *want = NULL;
        static const char *const keys[] = {
            [COCA_ID_PROJECT_ID] = "project-id",
            [COCA_ID_ZONE] = "zone",
            [COCA_ID_INSTANCE_NAME] = "instance-name",
            [COCA_ID_INSTANCE_ID] = "instance-id",
        };

        off += 4;
        g_assert_cmpuint(l, <=, len - off);
        if (tag == COCA_ID_PROJECT_NUMBER) {
            g_assert_cmpuint(l, ==, 8);
            want = g_key_file_get_string(kf, "identity", "project-number",
                                         NULL);
            g_assert_cmpuint(ldq_le_p(resp + off), ==,
                             g_ascii_strtoull(want, NULL, 10));
        } else if (tag == COCA_ID_OID) {
            val = g_strndup((char *)resp + off, l);
            want = g_key_file_get_string(kf, "profile", "oid", NULL);
            g_assert_cmpstr(val, ==, want);
        } else {
            g_assert_cmpuint(tag, <, G_N_ELEMENTS(keys));
            g_assert_nonnull(keys[tag]);
            val = g_strndup((char *)resp + off, l);
            want = g_key_file_get_string(kf, "identity", keys[tag], NULL);
            g_assert_cmpstr(val, ==, want);
        }
        seen |= 1 << tag;
        off += l;
    }
    g_assert_cmpuint(off, ==, len);
    g_assert_cmphex(seen, ==, 0x7e);

    /* nonces: fresh every time */
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_NONCE, NULL, 0, &n1, &l1), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_NONCE, NULL, 0, &n2, &l2), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(l1, ==, COCA_NONCE_SIZE);
    g_assert_cmpuint(l2, ==, COCA_NONCE_SIZE);
    g_assert(memcmp(n1, n2, COCA_NONCE_SIZE) != 0);
    coca_stop(c);
}

static void test_ca_certify_ak(void)
{
    const char *dir = ca_dir();
    gnutls_x509_privkey_t key;
    gnutls_x509_crt_t crt;
    g_autoptr(GBytes) csr = NULL;
    g_autoptr(GPtrArray) certs = NULL;
    gnutls_datum_t d, issuer_ext, ak_ext;
    unsigned int critical, ca_flag, ku;
    char dn[512], san[256];
    size_t dn_len = sizeof(dn), san_len = sizeof(san);
    g_autofree char *oid = NULL, *conf = NULL, *issuer_pem = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    gnutls_x509_crt_t issuer;
    int pathlen;
    Coca *c;

    if (!dir) {
        return;
    }
    conf = g_build_filename(dir, "identity.conf", NULL);
    g_assert_true(g_key_file_load_from_file(kf, conf, 0, NULL));
    oid = g_key_file_get_string(kf, "profile", "oid", NULL);
    c = ca_ready(dir, NULL);

    key = new_key(GNUTLS_PK_ECDSA,
                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    csr = greedy_csr(key);
    g_assert_cmpuint(certify_ak(c, csr, &certs), ==, COCA_STATUS_OK);
    verify_chain(dir, certs);
    {
        QDict *ev = qtest_qmp_eventwait_ref(c->qts,
                                            "COCO_ATTEST_CERT_ISSUED");

        g_assert_cmpstr(qdict_get_str(qdict_get_qdict(ev, "data"), "kind"),
                        ==, "ak");
        qobject_unref(ev);
    }

    crt = crt_of(g_ptr_array_index(certs, 0));
    /* the certificate is for the CSR's key... */
    assert_cert_for_key(crt, key);
    /* ...but nothing else the CSR asked for */
    g_assert_cmpint(gnutls_x509_crt_get_basic_constraints(crt, &critical,
                                                          &ca_flag,
                                                          &pathlen), ==, 0);
    g_assert_cmpint(gnutls_x509_crt_get_dn(crt, dn, &dn_len), ==, 0);
    g_assert_null(strstr(dn, "other"));
    g_assert_nonnull(strstr(dn, g_key_file_get_string(kf, "identity",
                                                      "instance-name",
                                                      NULL)));
    g_assert_cmpint(gnutls_x509_crt_get_subject_alt_name(crt, 0, san,
                                                         &san_len, NULL),
                    ==, GNUTLS_SAN_URI);
    g_assert_true(g_str_has_prefix(san, "spiffe://"));
    san_len = sizeof(san);
    g_assert_cmpint(gnutls_x509_crt_get_subject_alt_name(crt, 1, san,
                                                         &san_len, NULL),
                    ==, GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE);
    g_assert_cmpint(gnutls_x509_crt_get_key_usage(crt, &ku, &critical), >=,
                    0);
    g_assert_cmphex(ku, ==, GNUTLS_KEY_DIGITAL_SIGNATURE);
    /* the identity extension is exactly the instance's */
    g_assert_cmpint(gnutls_x509_crt_get_extension_by_oid2(crt, oid, 0,
                                                          &ak_ext,
                                                          &critical), ==, 0);
    g_assert_cmpuint(critical, ==, 0);
    issuer_pem = g_build_filename(dir, "issuer.crt", NULL);
    {
        g_autofree char *pem = NULL;
        gsize plen;

        g_assert_true(g_file_get_contents(issuer_pem, &pem, &plen, NULL));
        d.data = (unsigned char *)pem;
        d.size = plen;
        g_assert_cmpint(gnutls_x509_crt_init(&issuer), ==, 0);
        g_assert_cmpint(gnutls_x509_crt_import(issuer, &d,
                                               GNUTLS_X509_FMT_PEM), ==, 0);
    }
    g_assert_cmpint(gnutls_x509_crt_get_extension_by_oid2(issuer, oid, 0,
                                                          &issuer_ext,
                                                          &critical), ==, 0);
    g_assert_cmpmem(ak_ext.data, ak_ext.size, issuer_ext.data,
                    issuer_ext.size);
    gnutls_free(ak_ext.data);
    gnutls_free(issuer_ext.data);
    gnutls_x509_crt_deinit(issuer);
    gnutls_x509_crt_deinit(crt);

    /* RSA-2048 works too */
    gnutls_x509_privkey_deinit(key);
    key = new_key(GNUTLS_PK_RSA, 2048);
    g_bytes_unref(csr);
    csr = greedy_csr(key);
    g_ptr_array_unref(certs);
    certs = NULL;
    g_assert_cmpuint(certify_ak(c, csr, &certs), ==, COCA_STATUS_OK);
    verify_chain(dir, certs);
    gnutls_x509_privkey_deinit(key);
    coca_stop(c);
}

static void test_ca_bad_csr(void)
{
    const char *dir = ca_dir();
    gnutls_x509_privkey_t key;
    g_autoptr(GBytes) csr = NULL;
    g_autofree uint8_t *bad = NULL, *resp = NULL;
    g_autoptr(GPtrArray) certs = NULL;
    uint8_t small[12] = { 0 };
    uint32_t len;
    size_t n;
    Coca *c;

    if (!dir) {
        return;
    }
    c = ca_ready(dir, ",burst=100");
    key = new_key(GNUTLS_PK_ECDSA,
                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    csr = greedy_csr(key);
    n = g_bytes_get_size(csr);

    /* a broken signature: no proof of possession */
    bad = g_memdup2(g_bytes_get_data(csr, NULL), n);
    bad[n - 3] ^= 0x55;
    {
        g_autoptr(GBytes) b = g_bytes_new(bad, n);

        g_assert_cmpuint(certify_ak(c, b, NULL), ==,
                         COCA_STATUS_BAD_SIGNATURE);
    }
    echo_ok(c);
    /* truncated DER */
    {
        g_autoptr(GBytes) b = g_bytes_new(bad, n / 2);

        g_assert_cmpuint(certify_ak(c, b, NULL), ==, COCA_STATUS_INVALID);
    }
    /* garbage, and a CSR-sized blob over the backend's limit */
    {
        g_autofree uint8_t *junk = g_malloc0(20000);
        g_autoptr(GBytes) b = g_bytes_new(junk, 20000);

        g_assert_cmpuint(certify_ak(c, b, NULL), ==, COCA_STATUS_INVALID);
    }
    /* an unknown format, reserved bits, a short payload */
    stl_le_p(small, 9);
    g_assert_cmpuint(ca_call(c, COCA_OP_CERTIFY_AK, small, sizeof(small),
                             &resp, &len), ==, COCA_STATUS_INVALID);
    g_free(resp);
    stl_le_p(small, COCA_AK_FORMAT_CSR);
    stl_le_p(small + 4, 1);
    g_assert_cmpuint(ca_call(c, COCA_OP_CERTIFY_AK, small, sizeof(small),
                             &resp, &len), ==, COCA_STATUS_INVALID);
    g_free(resp);
    g_assert_cmpuint(ca_call(c, COCA_OP_CERTIFY_AK, small, 8, &resp, &len),
                     ==, COCA_STATUS_INVALID);
    g_free(resp);
    resp = NULL;
    /* a key too weak to certify */
    gnutls_x509_privkey_deinit(key);
    key = new_key(GNUTLS_PK_RSA, 1024);
    {
        g_autoptr(GBytes) b = greedy_csr(key);

        g_assert_cmpuint(certify_ak(c, b, NULL), ==,
                         COCA_STATUS_UNSUPPORTED_KEY);
    }
    /* and a good CSR still works */
    g_assert_cmpuint(certify_ak(c, csr, &certs), ==, COCA_STATUS_OK);
    gnutls_x509_privkey_deinit(key);
    coca_stop(c);
}

static void test_ca_rate_limit(void)
{
    const char *dir = ca_dir();
    gnutls_x509_privkey_t key;
    g_autoptr(GBytes) csr = NULL;
    Coca *c;

    if (!dir) {
        return;
    }
    c = ca_ready(dir, ",rate=1,burst=2");
    key = new_key(GNUTLS_PK_ECDSA,
                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    csr = greedy_csr(key);
    g_assert_cmpuint(certify_ak(c, csr, NULL), ==, COCA_STATUS_OK);
    g_assert_cmpuint(certify_ak(c, csr, NULL), ==, COCA_STATUS_OK);
    g_assert_cmpuint(certify_ak(c, csr, NULL), ==, COCA_STATUS_RATE_LIMITED);
    /* the refusal is cheap and the device keeps serving */
    echo_ok(c);
    gnutls_x509_privkey_deinit(key);
    coca_stop(c);
}

static void test_ca_ek_cert(void)
{
    const char *dir = ca_dir();
    struct coca_ek_cert_req r = { 0 };
    g_autofree uint8_t *resp = NULL;
    g_autoptr(GPtrArray) certs = NULL;
    g_autofree char *ek = NULL, *ek_der = NULL;
    gsize ek_len;
    uint32_t len;
    Coca *c;

    if (!dir) {
        return;
    }
    ek = g_build_filename(dir, "ek", "ek-01c0000a.crt", NULL);
    c = ca_ready(dir, NULL);
    r.nv_index = cpu_to_le32(COCA_NV_EK_ECC_P256);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_EK_CERT, &r, sizeof(r), &resp,
                             &len), ==, COCA_STATUS_OK);
    certs = cert_list(resp, len);
    g_assert_true(g_file_get_contents(ek, &ek_der, &ek_len, NULL));
    g_assert_cmpmem(g_bytes_get_data(g_ptr_array_index(certs, 0), NULL),
                    g_bytes_get_size(g_ptr_array_index(certs, 0)),
                    ek_der, ek_len);
    verify_chain(dir, certs);
    g_free(resp);

    r.nv_index = cpu_to_le32(COCA_NV_EK_ECC_P384);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_EK_CERT, &r, sizeof(r), &resp,
                             &len), ==, COCA_STATUS_NOT_PROVISIONED);
    g_free(resp);
    r.nv_index = cpu_to_le32(0x01c00099);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_EK_CERT, &r, sizeof(r), &resp,
                             &len), ==, COCA_STATUS_INVALID);
    g_free(resp);
    r.nv_index = cpu_to_le32(COCA_NV_EK_ECC_P256);
    r.reserved = 1;
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_EK_CERT, &r, sizeof(r), &resp,
                             &len), ==, COCA_STATUS_INVALID);
    g_free(resp);
    resp = NULL;
    echo_ok(c);
    coca_stop(c);
}


/* A private copy of the instance directory (EK state gets written). */
static char *ca_dir_copy(const char *dir, bool rekey)
{
    g_autofree char *tmp = g_dir_make_tmp("coca-ek-XXXXXX", NULL);
    char *d = g_build_filename(tmp, "instance", NULL);
    g_autofree char *cp = g_strdup_printf("cp -a %s %s", dir, d);
    g_autofree char *conf = g_build_filename(d, "identity.conf", NULL);
    g_autofree char *text = NULL;

    g_assert_true(g_spawn_command_line_sync(cp, NULL, NULL, NULL, NULL));
    if (rekey) {
        g_assert_true(g_file_get_contents(conf, &text, NULL, NULL));
        g_autofree char *t2 = g_strjoinv("rekey=true",
                                         g_strsplit(text, "rekey=false", 2));
        g_assert_true(g_file_set_contents(conf, t2, -1, NULL));
    }
    return d;
}

static void rm_dir_copy(char *d)
{
    g_autofree char *parent = g_path_get_dirname(d);
    g_autofree char *rm = g_strdup_printf("rm -rf %s", parent);

    g_assert_true(g_spawn_command_line_sync(rm, NULL, NULL, NULL, NULL));
    g_free(d);
}

static GBytes *spki_of(gnutls_x509_privkey_t key)
{
    gnutls_pubkey_t pub;
    gnutls_datum_t der;
    GBytes *b;

    g_assert_cmpint(gnutls_pubkey_init(&pub), ==, 0);
    {
        gnutls_privkey_t pk;

        g_assert_cmpint(gnutls_privkey_init(&pk), ==, 0);
        g_assert_cmpint(gnutls_privkey_import_x509(pk, key, 0), ==, 0);
        g_assert_cmpint(gnutls_pubkey_import_privkey(pub, pk, 0, 0), ==, 0);
        gnutls_privkey_deinit(pk);
    }
    g_assert_cmpint(gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der), ==,
                    0);
    b = g_bytes_new(der.data, der.size);
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pub);
    return b;
}

/* A TPMT_PUBLIC for an RSA-2048 key, as a vTPM would marshal it. */
static GBytes *tpmt_rsa(gnutls_x509_privkey_t key)
{
    gnutls_datum_t m, e;
    GByteArray *t = g_byte_array_new();
    uint8_t w[4];
    size_t off = 0;

    g_assert_cmpint(gnutls_x509_privkey_export_rsa_raw(key, &m, &e, NULL,
                                                       NULL, NULL, NULL),
                    ==, 0);
    /* skip the sign byte GnuTLS may add */
    while (off < m.size && m.data[off] == 0) {
        off++;
    }
#define PUT16(v) do { stw_be_p(w, v); g_byte_array_append(t, w, 2); } while (0)
#define PUT32(v) do { stl_be_p(w, v); g_byte_array_append(t, w, 4); } while (0)
    PUT16(0x0001);              /* TPM_ALG_RSA */
    PUT16(0x000b);              /* nameAlg SHA-256 */
    PUT32(0x000300b2);          /* objectAttributes (EK template) */
    PUT16(0);                   /* authPolicy: empty */
    PUT16(0x0006);              /* symmetric: AES */
    PUT16(128);
    PUT16(0x0043);              /* CFB */
    PUT16(0x0010);              /* scheme: NULL */
    PUT16(2048);
    PUT32(0);                   /* default exponent */
    PUT16(m.size - off);
    g_byte_array_append(t, m.data + off, m.size - off);
#undef PUT16
#undef PUT32
    gnutls_free(m.data);
    gnutls_free(e.data);
    return g_byte_array_free_to_bytes(t);
}

static uint32_t certify_ek(Coca *c, uint32_t nv, uint32_t format,
                           GBytes *key, GPtrArray **certs)
{
    return cert_req(c, COCA_OP_CERTIFY_EK, nv, format, key, certs);
}

/* The TCG EK profile of an issued EK certificate */
static void check_ek_profile(GBytes *der, unsigned int key_usage)
{
    gnutls_x509_crt_t crt = crt_of(der);
    char buf[256];
    size_t len = sizeof(buf);
    unsigned int critical, ku, ca_flag;
    int pathlen;

    g_assert_cmpint(gnutls_x509_crt_get_dn(crt, buf, &len), <, 0);
    len = sizeof(buf);
    g_assert_cmpint(gnutls_x509_crt_get_subject_alt_name(crt, 0, buf, &len,
                                                         NULL),
                    ==, GNUTLS_SAN_DN);
    g_assert_nonnull(strstr(buf, "2.23.133.2.1="));
    len = sizeof(buf);
    g_assert_cmpint(gnutls_x509_crt_get_extension_by_oid(crt, "2.5.29.17", 0,
                                                         buf, &len,
                                                         &critical), ==, 0);
    g_assert_cmpuint(critical, ==, 1);
    len = sizeof(buf);
    g_assert_cmpint(gnutls_x509_crt_get_key_purpose_oid(crt, 0, buf, &len,
                                                        NULL), ==, 0);
    g_assert_cmpstr(buf, ==, "2.23.133.8.1");
    g_assert_cmpint(gnutls_x509_crt_get_key_usage(crt, &ku, &critical), >=,
                    0);
    g_assert_cmphex(ku, ==, key_usage);
    g_assert_cmpint(gnutls_x509_crt_get_basic_constraints(crt, &critical,
                                                          &ca_flag,
                                                          &pathlen), ==, 0);
    g_assert_cmpint(gnutls_x509_crt_get_expiration_time(crt), ==,
                    GNUTLS_X509_NO_WELL_DEFINED_EXPIRATION);
    len = sizeof(buf);
    g_assert_cmpint(gnutls_x509_crt_get_extension_by_oid(crt, "2.5.29.9", 0,
                                                         buf, &len, NULL),
                    ==, 0);
    gnutls_x509_crt_deinit(crt);
}

static void test_ca_certify_ek(void)
{
    const char *dir = ca_dir();
    char *d;
    gnutls_x509_privkey_t k1, k2, rsa;
    g_autoptr(GBytes) s1 = NULL, s2 = NULL, t = NULL;
    g_autoptr(GPtrArray) c1 = NULL, c2 = NULL, c3 = NULL, c4 = NULL;
    struct coca_ek_cert_req r = { 0 };
    g_autofree uint8_t *resp = NULL;
    uint32_t len;
    Coca *c;

    if (!dir) {
        return;
    }
    d = ca_dir_copy(dir, false);
    k1 = new_key(GNUTLS_PK_ECDSA,
                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1));
    k2 = new_key(GNUTLS_PK_ECDSA,
                 GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1));
    rsa = new_key(GNUTLS_PK_RSA, 2048);
    s1 = spki_of(k1);
    s2 = spki_of(k2);
    t = tpmt_rsa(rsa);

    /* first boot: issued, per the TCG profile, chained to the host CA */
    c = ca_ready(d, NULL);
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s1, &c1), ==, COCA_STATUS_OK);
    verify_chain(d, c1);
    check_ek_profile(g_ptr_array_index(c1, 0), GNUTLS_KEY_KEY_AGREEMENT);
    /* the same EK again: the same certificate */
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s1, &c2), ==, COCA_STATUS_OK);
    g_assert_true(g_bytes_equal(g_ptr_array_index(c1, 0),
                                g_ptr_array_index(c2, 0)));
    /* another EK: refused by the default policy */
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s2, NULL), ==, COCA_STATUS_EK_MISMATCH);
    /* a TPM-native RSA EK */
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_RSA2048,
                                COCA_KEY_FORMAT_TPMT_PUBLIC, t, &c3), ==,
                     COCA_STATUS_OK);
    verify_chain(d, c3);
    check_ek_profile(g_ptr_array_index(c3, 0), GNUTLS_KEY_KEY_ENCIPHERMENT);
    coca_stop(c);

    /* next boot: persisted, fetched without certifying again */
    c = ca_ready(d, NULL);
    r.nv_index = cpu_to_le32(COCA_NV_EK_ECC_P384);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_EK_CERT, &r, sizeof(r), &resp,
                             &len), ==, COCA_STATUS_OK);
    c4 = cert_list(resp, len);
    g_assert_true(g_bytes_equal(g_ptr_array_index(c1, 0),
                                g_ptr_array_index(c4, 0)));
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s2, NULL), ==, COCA_STATUS_EK_MISMATCH);
    coca_stop(c);
    rm_dir_copy(d);

    /* a policy that allows re-keying */
    d = ca_dir_copy(dir, true);
    c = ca_ready(d, NULL);
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s1, NULL), ==, COCA_STATUS_OK);
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s2, NULL), ==, COCA_STATUS_OK);
    coca_stop(c);
    rm_dir_copy(d);
    gnutls_x509_privkey_deinit(k1);
    gnutls_x509_privkey_deinit(k2);
    gnutls_x509_privkey_deinit(rsa);
}

static void test_ca_bad_ek(void)
{
    const char *dir = ca_dir();
    gnutls_x509_privkey_t p256, rsa;
    g_autoptr(GBytes) s = NULL, t = NULL;
    g_autofree uint8_t *junk = NULL;
    char *d;
    Coca *c;
    size_t n;

    if (!dir) {
        return;
    }
    d = ca_dir_copy(dir, false);
    p256 = new_key(GNUTLS_PK_ECDSA,
                   GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    rsa = new_key(GNUTLS_PK_RSA, 2048);
    s = spki_of(p256);
    t = tpmt_rsa(rsa);
    n = g_bytes_get_size(t);
    c = ca_ready(d, ",burst=100");

    /* a key that does not fit the NV index */
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, COCA_KEY_FORMAT_SPKI,
                                s, NULL), ==, COCA_STATUS_UNSUPPORTED_KEY);
    /* unknown NV index or format */
    g_assert_cmpuint(certify_ek(c, 0x01c00099, COCA_KEY_FORMAT_SPKI, s,
                                NULL), ==, COCA_STATUS_INVALID);
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384, 7, s, NULL), ==,
                     COCA_STATUS_INVALID);
    /* not a key */
    junk = g_malloc0(n + 1);
    {
        g_autoptr(GBytes) j = g_bytes_new(junk, 64);

        g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P384,
                                    COCA_KEY_FORMAT_SPKI, j, NULL), ==,
                         COCA_STATUS_INVALID);
        g_assert_cmpuint(certify_ek(c, COCA_NV_EK_RSA2048,
                                    COCA_KEY_FORMAT_TPMT_PUBLIC, j, NULL), ==,
                         COCA_STATUS_INVALID);
    }
    /* a truncated TPMT_PUBLIC, and one with bytes after it */
    memcpy(junk, g_bytes_get_data(t, NULL), n);
    {
        g_autoptr(GBytes) trunc = g_bytes_new(junk, n - 1);
        g_autoptr(GBytes) extra = g_bytes_new(junk, n + 1);
        g_autoptr(GBytes) lying = NULL;

        g_assert_cmpuint(certify_ek(c, COCA_NV_EK_RSA2048,
                                    COCA_KEY_FORMAT_TPMT_PUBLIC, trunc,
                                    NULL), ==, COCA_STATUS_INVALID);
        g_assert_cmpuint(certify_ek(c, COCA_NV_EK_RSA2048,
                                    COCA_KEY_FORMAT_TPMT_PUBLIC, extra,
                                    NULL), ==, COCA_STATUS_INVALID);
        /* a modulus size field larger than the buffer */
        stw_be_p(junk + n - 256 - 2, 0xffff);
        lying = g_bytes_new(junk, n);
        g_assert_cmpuint(certify_ek(c, COCA_NV_EK_RSA2048,
                                    COCA_KEY_FORMAT_TPMT_PUBLIC, lying,
                                    NULL), ==, COCA_STATUS_INVALID);
    }
    echo_ok(c);
    coca_stop(c);
    rm_dir_copy(d);
    gnutls_x509_privkey_deinit(p256);
    gnutls_x509_privkey_deinit(rsa);
}


/* TPM-native AK proof: TPMT_PUBLIC (ECC P-256) + TPMT_SIGNATURE(nonce) */
static GBytes *tpm_ak_proof(gnutls_x509_privkey_t key, const uint8_t *nonce,
                            uint16_t hash_alg)
{
    GByteArray *t = g_byte_array_new();
    gnutls_privkey_t pk;
    gnutls_datum_t x, y, k, sig, r, sv;
    gnutls_datum_t data = { .data = (unsigned char *)nonce,
                            .size = COCA_NONCE_SIZE };
    gnutls_ecc_curve_t curve;
    uint8_t w[4];

    g_assert_cmpint(gnutls_x509_privkey_export_ecc_raw(key, &curve, &x, &y,
                                                       &k), ==, 0);
#define PUT16(v) do { stw_be_p(w, v); g_byte_array_append(t, w, 2); } while (0)
#define PUT32(v) do { stl_be_p(w, v); g_byte_array_append(t, w, 4); } while (0)
/* a P-256 value as a TPM marshals it: exactly 32 bytes, big-endian */
#define PUT2B(d) do { uint8_t v_[32] = { 0 }; size_t o_ = 0;                \
        while (o_ + 32 < (d).size && (d).data[o_] == 0) {                   \
            o_++;                                                           \
        }                                                                   \
        g_assert_cmpuint((d).size - o_, <=, 32);                            \
        memcpy(v_ + 32 - ((d).size - o_), (d).data + o_, (d).size - o_);   \
        PUT16(32);                                                          \
        g_byte_array_append(t, v_, 32); } while (0)
    PUT16(0x0023);              /* TPM_ALG_ECC */
    PUT16(0x000b);              /* nameAlg SHA-256 */
    PUT32(0x00050072);          /* restricted signing key attributes */
    PUT16(0);                   /* authPolicy */
    PUT16(0x0010);              /* symmetric: NULL */
    PUT16(0x0018);              /* scheme: ECDSA */
    PUT16(0x000b);              /*   with SHA-256 */
    PUT16(0x0003);              /* NIST P-256 */
    PUT16(0x0010);              /* kdf: NULL */
    PUT2B(x);
    PUT2B(y);
    /* TPM2_Sign of SHA-256(nonce) */
    g_assert_cmpint(gnutls_privkey_init(&pk), ==, 0);
    g_assert_cmpint(gnutls_privkey_import_x509(pk, key, 0), ==, 0);
    g_assert_cmpint(gnutls_privkey_sign_data(pk, GNUTLS_DIG_SHA256, 0, &data,
                                             &sig), ==, 0);
    g_assert_cmpint(gnutls_decode_rs_value(&sig, &r, &sv), ==, 0);
    PUT16(0x0018);              /* TPM_ALG_ECDSA */
    PUT16(hash_alg);
    PUT2B(r);
    PUT2B(sv);
#undef PUT2B
#undef PUT16
#undef PUT32
    gnutls_free(x.data);
    gnutls_free(y.data);
    gnutls_free(k.data);
    gnutls_free(sig.data);
    gnutls_free(r.data);
    gnutls_free(sv.data);
    gnutls_privkey_deinit(pk);
    return g_byte_array_free_to_bytes(t);
}

static uint32_t certify_tpm_ak(Coca *c, GBytes *proof, GPtrArray **certs)
{
    return cert_req(c, COCA_OP_CERTIFY_AK, COCA_AK_FORMAT_TPM, 0, proof,
                    certs);
}

static uint8_t *get_nonce(Coca *c)
{
    uint8_t *n = NULL;
    uint32_t len;

    g_assert_cmpuint(ca_call(c, COCA_OP_GET_NONCE, NULL, 0, &n, &len), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(len, ==, COCA_NONCE_SIZE);
    return n;
}

static void test_ca_tpm_ak(void)
{
    const char *dir = ca_dir();
    gnutls_x509_privkey_t key;
    g_autoptr(GPtrArray) certs = NULL;
    g_autofree uint8_t *n1 = NULL, *n2 = NULL, *n3 = NULL;
    g_autoptr(GBytes) p1 = NULL, p2 = NULL;
    gnutls_x509_crt_t crt;
    Coca *c;

    if (!dir) {
        return;
    }
    key = new_key(GNUTLS_PK_ECDSA,
                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    c = ca_ready(dir, ",burst=100");

    /* no nonce yet */
    n1 = g_malloc0(COCA_NONCE_SIZE);
    p1 = tpm_ak_proof(key, n1, 0x000b);
    g_assert_cmpuint(certify_tpm_ak(c, p1, NULL), ==, COCA_STATUS_NONCE);

    /* a signature over the current nonce: certified */
    g_free(n1);
    n1 = get_nonce(c);
    g_bytes_unref(p1);
    p1 = tpm_ak_proof(key, n1, 0x000b);
    g_assert_cmpuint(certify_tpm_ak(c, p1, &certs), ==, COCA_STATUS_OK);
    verify_chain(dir, certs);
    crt = crt_of(g_ptr_array_index(certs, 0));
    assert_cert_for_key(crt, key);
    gnutls_x509_crt_deinit(crt);

    /* replay: the nonce was used up */
    g_assert_cmpuint(certify_tpm_ak(c, p1, NULL), ==, COCA_STATUS_NONCE);
    /* the key in the proof is not the key that signed it */
    {
        gnutls_x509_privkey_t other = new_key(
            GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
        g_autofree uint8_t *n4 = get_nonce(c);
        g_autoptr(GBytes) mine = tpm_ak_proof(key, n4, 0x000b);
        g_autoptr(GBytes) theirs = tpm_ak_proof(other, n4, 0x000b);
        /* TPMT_PUBLIC of a P-256 key: 20 bytes + two 34-byte TPM2Bs */
        const size_t pub_len = 20 + 2 * 34;
        GByteArray *mix = g_byte_array_new();
        g_autoptr(GBytes) spliced = NULL;

        g_byte_array_append(mix, g_bytes_get_data(mine, NULL), pub_len);
        g_byte_array_append(mix, (const uint8_t *)g_bytes_get_data(theirs,
                                                                   NULL) +
                            pub_len, g_bytes_get_size(theirs) - pub_len);
        spliced = g_byte_array_free_to_bytes(mix);
        g_assert_cmpuint(certify_tpm_ak(c, spliced, NULL), ==,
                         COCA_STATUS_BAD_SIGNATURE);
        gnutls_x509_privkey_deinit(other);
    }
    /* a fresh nonce, but the proof is over the old one */
    n2 = get_nonce(c);
    g_assert_cmpuint(certify_tpm_ak(c, p1, NULL), ==,
                     COCA_STATUS_BAD_SIGNATURE);
    /* SHA-1 instead of SHA-256, truncated, trailing bytes */
    n3 = get_nonce(c);
    p2 = tpm_ak_proof(key, n3, 0x0004);
    g_assert_cmpuint(certify_tpm_ak(c, p2, NULL), ==, COCA_STATUS_INVALID);
    g_bytes_unref(p2);
    g_free(n3);
    n3 = get_nonce(c);
    p2 = tpm_ak_proof(key, n3, 0x000b);
    {
        g_autoptr(GBytes) trunc = g_bytes_new_from_bytes(
            p2, 0, g_bytes_get_size(p2) - 1);

        g_assert_cmpuint(certify_tpm_ak(c, trunc, NULL), ==,
                         COCA_STATUS_INVALID);
    }
    g_free(n3);
    n3 = get_nonce(c);
    g_bytes_unref(p2);
    p2 = tpm_ak_proof(key, n3, 0x000b);
    {
        g_autofree uint8_t *more = g_malloc0(g_bytes_get_size(p2) + 1);
        g_autoptr(GBytes) b = NULL;

        memcpy(more, g_bytes_get_data(p2, NULL), g_bytes_get_size(p2));
        b = g_bytes_new(more, g_bytes_get_size(p2) + 1);
        g_assert_cmpuint(certify_tpm_ak(c, b, NULL), ==,
                         COCA_STATUS_INVALID);
    }

    /* a reset forgets the nonce */
    g_free(n3);
    n3 = get_nonce(c);
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(c->qts, "RESET");
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_bytes_unref(p2);
    p2 = tpm_ak_proof(key, n3, 0x000b);
    g_assert_cmpuint(certify_tpm_ak(c, p2, NULL), ==, COCA_STATUS_NONCE);
    echo_ok(c);
    gnutls_x509_privkey_deinit(key);
    coca_stop(c);
}

/* The GCE instance-info extension reaches issued certificates. */
static void test_ca_gce(void)
{
    const char *dir = g_getenv("COCA_CA_GCE_DIR");
    gnutls_x509_privkey_t key;
    g_autoptr(GBytes) csr = NULL, spki = NULL;
    g_autoptr(GPtrArray) certs = NULL, ek = NULL;
    g_autofree char *issuer_path = NULL, *pem = NULL;
    gnutls_x509_crt_t issuer;
    gnutls_datum_t d, want;
    unsigned int critical;
    gsize plen;
    char *copy;
    Coca *c;
    int i;

    if (!dir) {
        g_test_skip("COCA_CA_GCE_DIR (a --gce instance directory) unset");
        return;
    }
    issuer_path = g_build_filename(dir, "issuer.crt", NULL);
    g_assert_true(g_file_get_contents(issuer_path, &pem, &plen, NULL));
    d = (gnutls_datum_t) { .data = (unsigned char *)pem, .size = plen };
    g_assert_cmpint(gnutls_x509_crt_init(&issuer), ==, 0);
    g_assert_cmpint(gnutls_x509_crt_import(issuer, &d, GNUTLS_X509_FMT_PEM),
                    ==, 0);
    g_assert_cmpint(gnutls_x509_crt_get_extension_by_oid2(
                        issuer, "1.3.6.1.4.1.11129.2.1.21", 0, &want,
                        &critical), ==, 0);

    copy = ca_dir_copy(dir, false);
    c = ca_ready(copy, NULL);
    key = new_key(GNUTLS_PK_ECDSA,
                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    csr = greedy_csr(key);
    spki = spki_of(key);
    g_assert_cmpuint(certify_ak(c, csr, &certs), ==, COCA_STATUS_OK);
    g_assert_cmpuint(certify_ek(c, COCA_NV_EK_ECC_P256, COCA_KEY_FORMAT_SPKI,
                                spki, &ek), ==, COCA_STATUS_OK);
    for (i = 0; i < 2; i++) {
        gnutls_x509_crt_t crt = crt_of(g_ptr_array_index(i ? ek : certs, 0));
        gnutls_datum_t got;

        g_assert_cmpint(gnutls_x509_crt_get_extension_by_oid2(
                            crt, "1.3.6.1.4.1.11129.2.1.21", 0, &got,
                            &critical), ==, 0);
        g_assert_cmpuint(critical, ==, 0);
        g_assert_cmpmem(got.data, got.size, want.data, want.size);
        gnutls_free(got.data);
        gnutls_x509_crt_deinit(crt);
    }
    gnutls_free(want.data);
    gnutls_x509_crt_deinit(issuer);
    gnutls_x509_privkey_deinit(key);
    coca_stop(c);
    rm_dir_copy(copy);
}

/* Without IDENTITY negotiated, or without a backend, no identity. */
static void test_ca_feature(void)
{
    const char *dir = ca_dir();
    g_autofree uint8_t *resp = NULL;
    struct coca_negotiate_resp r;
    uint32_t len;
    Coca *c;

    if (!dir) {
        return;
    }
    c = ca_ready(dir, NULL);
    r = negotiate(c, 1, 1, COCA_FEAT_DIAG, COCA_STATUS_OK);
    g_assert_cmphex(r.offered & COCA_FEAT_IDENTITY, ==, COCA_FEAT_IDENTITY);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_IDENTITY, NULL, 0, &resp, &len),
                     ==, COCA_STATUS_FEATURE);
    coca_stop(c);
    g_free(resp);
    resp = NULL;

    c = coca_ready(NULL);
    g_assert_cmpuint(ca_call(c, COCA_OP_GET_NONCE, NULL, 0, &resp, &len),
                     ==, COCA_STATUS_FEATURE);
    coca_stop(c);
}

/* Broken instance material stops QEMU at start-up, with the reason. */
static void test_ca_startup_errors(void)
{
    const char *dir = ca_dir();
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    g_autofree char *tmp = NULL, *cmd = NULL;
    int i;

    if (!dir) {
        return;
    }
    tmp = g_dir_make_tmp("coca-ca-XXXXXX", NULL);
    for (i = 0; i < 4; i++) {
        static const char *const what[] = {
            "no-such-dir", "bad-key", "no-identity", "chain",
        };
        static const char *const expect[] = {
            "No such file", "does not match", "identity.conf",
            "does not start with",
        };
        g_autofree char *d = g_build_filename(tmp, what[i], NULL);
        g_autofree char *out = NULL, *err = NULL, *run = NULL;
        int status;

        if (i > 0) {
            g_autofree char *cp = g_strdup_printf("cp -a %s %s", dir, d);

            g_assert_true(g_spawn_command_line_sync(cp, NULL, NULL, &status,
                                                    NULL));
        }
        if (i == 1) {
            g_autofree char *gen = g_strdup_printf(
                "certtool --generate-privkey --ecc --outfile %s/issuer.key",
                d);

            g_autofree char *o = NULL, *e = NULL;

            g_assert_true(g_spawn_command_line_sync(gen, &o, &e, &status,
                                                    NULL));
        } else if (i == 2) {
            g_autofree char *f = g_build_filename(d, "identity.conf", NULL);

            unlink(f);
        } else if (i == 3) {
            g_autofree char *f = g_build_filename(d, "chain.pem", NULL);
            g_autofree char *r = g_build_filename(d, "root.crt", NULL);
            g_autofree char *root = NULL;

            g_assert_true(g_file_get_contents(r, &root, NULL, NULL));
            g_autofree char *twice = g_strconcat(root, root, NULL);
            g_assert_true(g_file_set_contents(f, twice, -1, NULL));
        }
        run = g_strdup_printf("timeout 20 %s -M q35 -accel qtest -nodefaults "
                              "-display none -S "
                              "-object coco-attest-ca,id=ca0,dir=%s "
                              "-device coco-attest,ca=ca0", qemu, d);
        g_assert_true(g_spawn_command_line_sync(run, &out, &err, &status,
                                                NULL));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        if (!strstr(err, expect[i])) {
            g_test_message("%s: %s", what[i], err);
        }
        g_assert_nonnull(strstr(err, expect[i]));
    }
    cmd = g_strdup_printf("rm -rf %s", tmp);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));

    /* identity material that has expired (provisioned in the past) */
    if (g_getenv("COCA_CA_EXPIRED_DIR")) {
        g_autofree char *out = NULL, *err = NULL, *run = NULL;
        int status;

        run = g_strdup_printf("timeout 20 %s -M q35 -accel qtest -nodefaults "
                              "-display none -S "
                              "-object coco-attest-ca,id=ca0,dir=%s "
                              "-device coco-attest,ca=ca0", qemu,
                              g_getenv("COCA_CA_EXPIRED_DIR"));
        g_assert_true(g_spawn_command_line_sync(run, &out, &err, &status,
                                                NULL));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        g_assert_nonnull(strstr(err, "has expired: re-provision"));
    }
}

/* ------------------------------------------------------------------ */
/* Instance directories bound to their VM, a missing one explained,    */
/* and renewal while the VM runs (under libfaketime)                   */
/* ------------------------------------------------------------------ */

/* Start QEMU with @args and the CA at @dir; its exit status, stderr */
static int ca_try_start(const char *args, const char *dir, char **err)
{
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    g_autofree char *run = g_strdup_printf(
        "timeout 20 %s -M q35 -accel qtest -nodefaults -display none -S %s "
        "-object coco-attest-ca,id=ca0,dir=%s -device coco-attest,ca=ca0 "
        "-qmp stdio", qemu, args, dir);
    g_autofree char *out = NULL;
    g_autofree char *cmdline = g_strdup_printf(
        "sh -c 'echo \"{\\\"execute\\\": \\\"qmp_capabilities\\\"}"
        "{\\\"execute\\\": \\\"quit\\\"}\" | %s'", run);
    int status;

    g_assert_true(g_spawn_command_line_sync(cmdline, &out, err, &status,
                                            NULL));
    g_assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A copy of $COCA_CA_DIR in a new temporary directory */
static char *ca_copy(const char *dir, const char *tmp, const char *name)
{
    char *d = g_build_filename(tmp, name, NULL);
    g_autofree char *cp = g_strdup_printf("cp -a %s %s", dir, d);
    int status;

    g_assert_true(g_spawn_command_line_sync(cp, NULL, NULL, &status, NULL));
    g_assert_true(g_spawn_check_exit_status(status, NULL));
    return d;
}

static void ca_rm_rf(const char *path)
{
    g_autofree char *rm = g_strdup_printf("rm -rf %s", path);

    g_assert_true(g_spawn_command_line_sync(rm, NULL, NULL, NULL, NULL));
}

/* Set (or with @value NULL, remove) a key of identity.conf */
static void ca_set_conf(const char *dir, const char *group, const char *key,
                        const char *value)
{
    g_autofree char *path = g_build_filename(dir, "identity.conf", NULL);
    g_autoptr(GKeyFile) kf = g_key_file_new();

    g_assert_true(g_key_file_load_from_file(kf, path, G_KEY_FILE_KEEP_COMMENTS,
                                            NULL));
    if (value) {
        g_key_file_set_string(kf, group, key, value);
    } else {
        g_key_file_remove_key(kf, group, key, NULL);
    }
    g_assert_true(g_key_file_save_to_file(kf, path, NULL));
}

/*
 * A missing instance directory, or one without identity.conf, keeps the
 * system's reason and says what creates it; other errors do not.
 */
static void test_ca_missing_dir(void)
{
    const char *dir = ca_dir();
    g_autofree char *tmp = NULL, *none = NULL, *noid = NULL;
    g_autofree char *badchain = NULL;
    static const char *const hint[] = {
        "No such file or directory",
        "/etc/libvirt/hooks/qemu.d/",
        "SIGHUP",
        "<coca:instance>",
        "coco-attest-provision provision --instance-dir ",
    };
    size_t i;

    if (!dir) {
        return;
    }
    tmp = g_dir_make_tmp("coca-ca-XXXXXX", NULL);
    none = g_build_filename(tmp, "never-provisioned", NULL);
    noid = ca_copy(dir, tmp, "no-identity");
    badchain = ca_copy(dir, tmp, "bad-chain");
    {
        g_autofree char *f = g_build_filename(noid, "identity.conf", NULL);

        unlink(f);
    }
    {
        g_autofree char *f = g_build_filename(badchain, "chain.pem", NULL);

        g_assert_true(g_file_set_contents(f, "", 0, NULL));
    }
    for (i = 0; i < 2; i++) {
        const char *d = i ? noid : none;
        g_autofree char *err = NULL;
        g_autofree char *where = g_strdup_printf("%s/identity.conf: ", d);
        g_autofree char *run = g_strdup_printf("--instance-dir %s ...", d);
        size_t j;

        g_assert_cmpint(ca_try_start("", d, &err), ==, 1);
        if (!strstr(err, where)) {
            g_test_message("%s", err);
        }
        g_assert_nonnull(strstr(err, where));
        for (j = 0; j < G_N_ELEMENTS(hint); j++) {
            g_assert_nonnull(strstr(err, hint[j]));
        }
        g_assert_nonnull(strstr(err, run));
    }
    {
        g_autofree char *err = NULL;

        g_assert_cmpint(ca_try_start("", badchain, &err), ==, 1);
        g_assert_nonnull(strstr(err, "chain.pem"));
        g_assert_null(strstr(err, "coco-attest-provision provision"));
    }
    ca_rm_rf(tmp);
}

/*
 * The directory names the VM it was provisioned for (vm-uuid, or else an
 * instance-id that is a UUID): another -uuid is refused, naming both.
 */
static void test_ca_uuid(void)
{
    const char *dir = ca_dir();
    const char *gce = g_getenv("COCA_CA_GCE_DIR");
    const char *other = "0b9c7e36-1f0e-4c55-a1c3-5e1d2f6a7b80";
    g_autofree char *tmp = NULL, *bound = NULL, *id = NULL;
    g_autofree char *theirs = NULL, *ours = NULL;
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *conf = NULL;

    if (!dir) {
        return;
    }
    conf = g_build_filename(dir, "identity.conf", NULL);
    g_assert_true(g_key_file_load_from_file(kf, conf, 0, NULL));
    id = g_key_file_get_string(kf, "identity", "instance-id", NULL);
    g_assert_cmpuint(strlen(id), ==, 36);
    tmp = g_dir_make_tmp("coca-ca-XXXXXX", NULL);
    bound = ca_copy(dir, tmp, "bound");
    ca_set_conf(bound, "identity", "vm-uuid", other);
    theirs = g_strdup_printf("-uuid %s", other);
    ours = g_strdup_printf("-uuid %s", id);

    {
        /* the instance-id binds when there is no vm-uuid */
        g_autofree char *err = NULL;
        g_autofree char *want = g_strdup_printf(
            "coco-attest-ca: %s was provisioned for the VM with UUID %s, but "
            "this machine's -uuid is %s: a copied <qemu:commandline>? Each "
            "domain needs its own instance directory", dir, id, other);

        g_assert_cmpint(ca_try_start(theirs, dir, &err), ==, 1);
        if (!strstr(err, want)) {
            g_test_message("%s", err);
        }
        g_assert_nonnull(strstr(err, want));
    }
    {
        g_autofree char *err = NULL;
        g_autofree char *id_up = g_ascii_strup(id, -1);
        g_autofree char *upper = g_strdup_printf("-uuid %s", id_up);

        /* the same UUID, in either case, and no -uuid at all: accepted */
        g_assert_cmpint(ca_try_start(ours, dir, &err), ==, 0);
        g_free(err);
        g_assert_cmpint(ca_try_start(upper, dir, &err), ==, 0);
        g_free(err);
        g_assert_cmpint(ca_try_start("", dir, &err), ==, 0);
    }
    {
        /* vm-uuid wins over the instance-id */
        g_autofree char *err = NULL;
        g_autofree char *want = g_strdup_printf(
            "was provisioned for the VM with UUID %s, but this machine's "
            "-uuid is %s", other, id);

        g_assert_cmpint(ca_try_start(theirs, bound, &err), ==, 0);
        g_free(err);
        g_assert_cmpint(ca_try_start(ours, bound, &err), ==, 1);
        g_assert_nonnull(strstr(err, want));
        g_free(err);
        g_assert_cmpint(ca_try_start("", bound, &err), ==, 0);
        g_free(err);
        ca_set_conf(bound, "identity", "vm-uuid", "not-a-uuid");
        g_assert_cmpint(ca_try_start("", bound, &err), ==, 1);
        g_assert_nonnull(strstr(err, "malformed claims"));
    }
    if (gce) {
        /* a numeric instance-id binds nothing */
        g_autofree char *err = NULL;

        g_assert_cmpint(ca_try_start(theirs, gce, &err), ==, 0);
    }
    ca_rm_rf(tmp);
}

/* libfaketime's preload library, or NULL */
static const char *ca_libfaketime(void)
{
    static const char *const paths[] = {
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib64/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
        "/usr/local/lib/faketime/libfaketime.so.1",
    };
    const char *env = g_getenv("COCA_LIBFAKETIME");
    size_t i;

    if (env) {
        return env;
    }
    for (i = 0; i < G_N_ELEMENTS(paths); i++) {
        if (g_file_test(paths[i], G_FILE_TEST_EXISTS)) {
            return paths[i];
        }
    }
    return NULL;
}

/* Run a command line under the fake time of @faked; it must succeed */
static void ca_run_faked(const char *faked, const char *fmt, ...)
    G_GNUC_PRINTF(2, 3);

static void ca_run_faked(const char *faked, const char *fmt, ...)
{
    g_autofree char *args = NULL, *run = NULL, *out = NULL, *err = NULL;
    va_list ap;
    int status;

    va_start(ap, fmt);
    args = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    run = g_strdup_printf("%s %s", faked, args);
    g_assert_true(g_spawn_command_line_sync(run, &out, &err, &status,
                                            NULL));
    if (!g_spawn_check_exit_status(status, NULL)) {
        g_test_message("%s: %s%s", run, out, err);
    }
    g_assert_true(g_spawn_check_exit_status(status, NULL));
}

/* The issuing certificate of a certificate list, and its expiry */
static time_t ca_issuer_expiry(GPtrArray *certs, GBytes **issuer)
{
    gnutls_x509_crt_t crt = crt_of(g_ptr_array_index(certs, 1));
    time_t t = gnutls_x509_crt_get_expiration_time(crt);

    gnutls_x509_crt_deinit(crt);
    if (issuer) {
        *issuer = g_bytes_ref(g_ptr_array_index(certs, 1));
    }
    return t;
}

/* The DER of a PEM file's first certificate */
static GBytes *ca_pem_file(const char *path)
{
    g_autofree char *pem = NULL;
    gnutls_datum_t d, der;
    gnutls_x509_crt_t crt;
    gsize len;
    GBytes *out;

    g_assert_true(g_file_get_contents(path, &pem, &len, NULL));
    d = (gnutls_datum_t) { .data = (unsigned char *)pem, .size = len };
    g_assert_cmpint(gnutls_x509_crt_init(&crt), ==, 0);
    g_assert_cmpint(gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_PEM), ==,
                    0);
    g_assert_cmpint(gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der),
                    ==, 0);
    out = g_bytes_new(der.data, der.size);
    gnutls_free(der.data);
    gnutls_x509_crt_deinit(crt);
    return out;
}

static int64_t ca_query_not_after(Coca *c)
{
    QDict *info = query_one(c);
    int64_t t = qdict_get_int(info, "ca-not-after");

    qobject_unref(info);
    return t;
}

static uint32_t ca_certify_new(Coca *c, GPtrArray **certs)
{
    gnutls_x509_privkey_t key = new_key(
        GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    g_autoptr(GBytes) csr = greedy_csr(key);
    uint32_t st = certify_ak(c, csr, certs);

    gnutls_x509_privkey_deinit(key);
    return st;
}

static unsigned int ca_count(const char *path, const char *text)
{
    g_autofree char *all = NULL;
    unsigned int n = 0;
    const char *p;

    g_assert_true(g_file_get_contents(path, &all, NULL, NULL));
    for (p = all; (p = strstr(p, text)); p++) {
        n++;
    }
    return n;
}

/*
 * A VM that outlives its issuing certificate: QEMU and the host tools run
 * under libfaketime with one clock (a file with the offset), monotonic
 * time left real so that QEMU's timers work.  Certification works, then
 * the clock jumps past the certificate's 24 hours: EXPIRED.  "renew" at
 * that time: the same QEMU certifies again, with the new certificate.
 * Re-provisioning the directory for other claims under the running VM
 * is refused: the backend keeps what it has, and says so once.
 */
static void test_ca_renew(void)
{
    const char *lib = ca_libfaketime();
    const char *prov = g_getenv("COCA_PROVISION");
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    g_autofree char *tmp = NULL, *clock = NULL, *faked = NULL;
    g_autofree char *inst = NULL, *cadir = NULL, *log = NULL;
    g_autofree char *fake_qemu = NULL, *args = NULL, *crt_path = NULL;
    g_autoptr(GPtrArray) certs = NULL;
    g_autoptr(GBytes) old_issuer = NULL, new_issuer = NULL, disk = NULL;
    const char *claims = "--project-id demo-project --project-number 1 "
                         "--zone europe-west4-a --instance-id 42";
    time_t t0, t1, t2;
    Coca *c;

    if (!prov) {
        g_test_skip("COCA_PROVISION (coco-attest-provision) unset");
        return;
    }
    if (!lib) {
        g_test_skip("libfaketime is not installed");
        return;
    }
    if (g_getenv("ASAN_OPTIONS")) {
        g_test_skip("libfaketime cannot be preloaded into a sanitizer build");
        return;
    }
    tmp = g_dir_make_tmp("coca-renew-XXXXXX", NULL);
    clock = g_build_filename(tmp, "faketime", NULL);
    inst = g_build_filename(tmp, "instance", NULL);
    cadir = g_build_filename(tmp, "ca", NULL);
    log = g_build_filename(tmp, "qemu.log", NULL);
    crt_path = g_build_filename(inst, "issuer.crt", NULL);
    g_assert_true(g_file_set_contents(clock, "+0\n", -1, NULL));
    faked = g_strdup_printf("env LD_PRELOAD=%s FAKETIME_TIMESTAMP_FILE=%s "
                            "FAKETIME_NO_CACHE=1 "
                            "FAKETIME_DONT_FAKE_MONOTONIC=1", lib, clock);
    ca_run_faked(faked, "%s init-ca --ca-dir %s", prov, cadir);
    ca_run_faked(faked, "%s provision --ca-dir %s --instance-dir %s %s "
                 "--instance-name vm1 --validity-hours 24", prov, cadir, inst,
                 claims);

    fake_qemu = g_strdup_printf("%s %s", faked, qemu);
    g_setenv("COCA_FAKETIME_QEMU", fake_qemu, true);
    args = g_strdup_printf("-M q35 -m 128M -nodefaults "
                           "-object coco-attest-ca,id=ca0,dir=%s "
                           "-device coco-attest,id=coca0,ca=ca0 2>%s",
                           inst, log);
    c = g_new0(Coca, 1);
    c->qts = qtest_init_with_env("COCA_FAKETIME_QEMU", args, true);
    g_unsetenv("COCA_FAKETIME_QEMU");
    c->base = COCA_DEFAULT_IOBASE;
    pc_alloc_init(&c->alloc, c->qts, ALLOC_NO_FLAGS);
    c->page = guest_alloc(&c->alloc, COCA_PAGE_SIZE);
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);

    /* day 1: certification works */
    g_assert_cmpuint(ca_certify_new(c, &certs), ==, COCA_STATUS_OK);
    t0 = ca_issuer_expiry(certs, &old_issuer);
    g_assert_cmpint(ca_query_not_after(c), ==, t0);
    g_clear_pointer(&certs, g_ptr_array_unref);

    /* a day and an hour later: the issuing certificate has expired */
    g_assert_true(g_file_set_contents(clock, "+25h\n", -1, NULL));
    g_assert_cmpuint(ca_certify_new(c, NULL), ==, COCA_STATUS_EXPIRED);

    /* the operator renews the running VM's directory */
    ca_run_faked(faked, "%s renew --instance-dir %s --ca-dir %s", prov, inst,
                 cadir);
    g_assert_cmpuint(ca_certify_new(c, &certs), ==, COCA_STATUS_OK);
    t1 = ca_issuer_expiry(certs, &new_issuer);
    disk = ca_pem_file(crt_path);
    g_assert_true(g_bytes_equal(new_issuer, disk));
    g_assert_false(g_bytes_equal(new_issuer, old_issuer));
    g_assert_cmpint(t1, >=, t0 + 25 * 3600 - 600);
    g_assert_cmpint(ca_query_not_after(c), ==, t1);
    g_clear_pointer(&certs, g_ptr_array_unref);

    /* the directory re-provisioned for another identity: refused */
    ca_run_faked(faked, "%s provision --ca-dir %s --instance-dir %s %s "
                 "--instance-name vm-other", prov, cadir, inst, claims);
    g_assert_cmpuint(ca_certify_new(c, &certs), ==, COCA_STATUS_OK);
    g_clear_pointer(&old_issuer, g_bytes_unref);
    ca_issuer_expiry(certs, &old_issuer);
    g_assert_true(g_bytes_equal(old_issuer, new_issuer));
    {
        gnutls_x509_crt_t leaf = crt_of(g_ptr_array_index(certs, 0));
        char dn[512];
        size_t dn_len = sizeof(dn);

        g_assert_cmpint(gnutls_x509_crt_get_dn(leaf, dn, &dn_len), ==, 0);
        g_assert_nonnull(strstr(dn, "CN=vm1"));
        gnutls_x509_crt_deinit(leaf);
    }
    g_clear_pointer(&certs, g_ptr_array_unref);
    g_assert_cmpuint(ca_certify_new(c, NULL), ==, COCA_STATUS_OK);
    g_assert_cmpint(ca_query_not_after(c), ==, t1);

    /* a renewal of the original claims is taken again */
    ca_run_faked(faked, "%s provision --ca-dir %s --instance-dir %s %s "
                 "--instance-name vm1 --validity-hours 48", prov, cadir, inst,
                 claims);
    g_assert_cmpuint(ca_certify_new(c, &certs), ==, COCA_STATUS_OK);
    t2 = ca_issuer_expiry(certs, NULL);
    g_assert_cmpint(t2, >, t1);
    coca_stop(c);

    g_assert_cmpuint(ca_count(log, "instance-name 'vm1' became 'vm-other', "
                              "but a running VM keeps the identity it "
                              "started with; keeping the loaded issuing "
                              "certificate"), ==, 1);
    if (g_test_verbose()) {
        g_autofree char *all = NULL;

        g_assert_true(g_file_get_contents(log, &all, NULL, NULL));
        g_test_message("QEMU's log: %s", all);
    }
    ca_rm_rf(tmp);
}
#endif /* CONFIG_GNUTLS */

#ifdef CONFIG_CURL
/* ------------------------------------------------------------------ */
/* KBS forwarding, against the test KBS (tests/kbs/kbs-server.py) that  */
/* the kbs suite starts: $COCA_KBS_URL, $COCA_KBS_CONTROL (its fault    */
/* injection file), $COCA_KBS_TLS_URL with $COCA_KBS_TLS_DIR (a         */
/* tls-creds-x509 directory for it) and $COCA_KBS_BAD_TLS_DIR (another  */
/* CA).                                                                 */
/* ------------------------------------------------------------------ */

#define KBS_AUTH_BODY \
    "{\"version\":\"0.4.0\",\"tee\":\"sample\",\"extra-params\":\"\"}"
/* the P-256 base point: a valid key for a KBS that checks the curve */
#define KBS_ATTEST_BODY \
    "{\"runtime-data\":{\"nonce\":\"bm90LXRoZS1ub25jZQ==\"," \
    "\"tee-pubkey\":{\"alg\":\"ECDH-ES+A256KW\",\"crv\":\"P-256\"," \
    "\"kty\":\"EC\",\"x\":\"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY\"," \
    "\"y\":\"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU\"}}," \
    "\"tee-evidence\":{\"primary_evidence\":{\"svn\":\"1\"," \
    "\"report_data\":\"\"},\"additional_evidence\":\"\"}}"
#define KBS_JSON    "application/json"

typedef struct KbsReply {
    uint32_t status;            /* COCA_STATUS_* */
    uint16_t http;
    char *ctype;
    char *body;                 /* NUL-terminated copy */
    uint32_t body_len;
} KbsReply;

static void kbs_reply_clear(KbsReply *r)
{
    g_free(r->ctype);
    g_free(r->body);
    memset(r, 0, sizeof(*r));
}

static const char *kbs_env(const char *name)
{
    const char *v = g_getenv(name);

    if (!v) {
        g_test_skip("the test KBS is not running (see the kbs suite)");
    }
    return v;
}

/* Write the test KBS's fault injection file (NULL: no faults). */
static void kbs_faults(const char *json)
{
    const char *path = g_getenv("COCA_KBS_CONTROL");
    g_autofree char *tmp = g_strdup_printf("%s.tmp", path);

    g_assert(path);
    g_assert(g_file_set_contents(tmp, json ? json : "{}", -1, NULL));
    g_assert_cmpint(rename(tmp, path), ==, 0);
}

/*
 * The test KBS listens on loopback, over plain HTTP too; the tests make
 * many requests quickly, so the rate limit is out of their way unless a
 * test sets it.
 */
#define KBS_OBJ "-object coco-attest-kbs,id=kbs0,allow-http=on," \
                "rate=100000,burst=100000,url="

/* A machine with a coco-attest-kbs for @url (plus @props), negotiated. */
static Coca *kbs_ready(const char *url, const char *props,
                       const char *extra_objects)
{
    g_autofree char *obj = g_strdup_printf(
        "%s " KBS_OBJ "%s%s",
        extra_objects ? extra_objects : "", url, props ? props : "");
    Coca *c = coca_start_with("q35", obj, ",kbs=kbs0");
    struct coca_negotiate_resp r;

    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    r = negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_assert_cmphex(r.negotiated & COCA_FEAT_KBS, ==, COCA_FEAT_KBS);
    return c;
}

/* One request with a 64 KiB external buffer; waits (bounded) if pending */
static uint32_t kbs_call(Coca *c, uint16_t op, const void *req, size_t len,
                         uint8_t **resp, uint32_t *resp_len)
{
    Msg m = msg_new(c, op, len);
    uint64_t buf = guest_alloc(&c->alloc, COCA_MAX_OBJECT_MIN);
    int i;

    m.flags = COCA_FLAG_EXT_BUF;
    m.buf_gpa = buf;
    m.buf_len = COCA_MAX_OBJECT_MIN;
    g_assert_cmpuint(page_ring(c, &m, req, len), ==, COCA_RES_OK);
    for (i = 0; m.status == COCA_STATUS_PENDING && i < 20000; i++) {
        g_usleep(1000);
        m = page_hdr(c);
    }
    g_assert_cmpuint(m.status, !=, COCA_STATUS_PENDING);
    *resp_len = m.resp_len;
    *resp = g_malloc0(m.resp_len + 1);
    if (m.status == COCA_STATUS_OK && m.resp_len) {
        page_payload(c, &m, *resp, m.resp_len);
    }
    guest_free(&c->alloc, buf);
    return m.status;
}

static uint32_t kbs_open(Coca *c, uint32_t expect)
{
    g_autofree uint8_t *resp = NULL;
    struct coca_kbs_session s;
    uint32_t len;

    g_assert_cmpuint(kbs_call(c, COCA_OP_KBS_OPEN, NULL, 0, &resp, &len),
                     ==, expect);
    if (expect != COCA_STATUS_OK) {
        return 0;
    }
    g_assert_cmpuint(len, ==, sizeof(s));
    memcpy(&s, resp, sizeof(s));
    g_assert_cmpuint(s.reserved, ==, 0);
    g_assert_cmpuint(le32_to_cpu(s.session), !=, 0);
    return le32_to_cpu(s.session);
}

static uint32_t kbs_close(Coca *c, uint32_t session)
{
    struct coca_kbs_session s = { .session = cpu_to_le32(session) };
    g_autofree uint8_t *resp = NULL;
    uint32_t len;

    return kbs_call(c, COCA_OP_KBS_CLOSE, &s, sizeof(s), &resp, &len);
}

/* KBS_FORWARD with explicit header fields, for the malformed cases */
static uint32_t kbs_forward_raw(Coca *c, const struct coca_kbs_forward_req *h,
                                const void *tail, size_t tail_len,
                                KbsReply *out)
{
    g_autofree uint8_t *req = g_malloc(sizeof(*h) + tail_len);
    g_autofree uint8_t *resp = NULL;
    struct coca_kbs_forward_resp rh;
    uint32_t len;

    memcpy(req, h, sizeof(*h));
    memcpy(req + sizeof(*h), tail, tail_len);
    memset(out, 0, sizeof(*out));
    out->status = kbs_call(c, COCA_OP_KBS_FORWARD, req,
                           sizeof(*h) + tail_len, &resp, &len);
    if (out->status != COCA_STATUS_OK) {
        g_assert_cmpuint(len, ==, 0);
        return out->status;
    }
    g_assert_cmpuint(len, >=, sizeof(rh));
    memcpy(&rh, resp, sizeof(rh));
    out->http = le16_to_cpu(rh.http_status);
    out->body_len = le32_to_cpu(rh.body_len);
    g_assert_cmpuint(le16_to_cpu(rh.ctype_len), <=, COCA_KBS_CTYPE_MAX);
    g_assert_cmpuint(sizeof(rh) + le16_to_cpu(rh.ctype_len) + out->body_len,
                     ==, len);
    out->ctype = g_strndup((char *)resp + sizeof(rh),
                           le16_to_cpu(rh.ctype_len));
    out->body = g_strndup((char *)resp + sizeof(rh) +
                          le16_to_cpu(rh.ctype_len), out->body_len);
    return out->status;
}

static uint32_t kbs_forward(Coca *c, uint32_t session, uint16_t method,
                            const char *path, const char *ctype,
                            const char *body, KbsReply *out)
{
    size_t pl = strlen(path), cl = ctype ? strlen(ctype) : 0;
    size_t bl = body ? strlen(body) : 0;
    struct coca_kbs_forward_req h = {
        .session = cpu_to_le32(session),
        .method = cpu_to_le16(method),
        .path_len = cpu_to_le16(pl),
        .ctype_len = cpu_to_le16(cl),
        .body_len = cpu_to_le32(bl),
    };
    g_autofree char *tail = g_strconcat(path, ctype ? ctype : "",
                                        body ? body : "", NULL);

    return kbs_forward_raw(c, &h, tail, pl + cl + bl, out);
}

/* POST /kbs/v0/auth answered 200 with a challenge */
static void kbs_auth_ok(Coca *c, uint32_t session)
{
    KbsReply r;

    g_assert_cmpuint(kbs_forward(c, session, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(r.http, ==, 200);
    g_assert_cmpstr(r.ctype, ==, KBS_JSON);
    g_assert(strstr(r.body, "\"nonce\""));
    kbs_reply_clear(&r);
}

/* Start POST /kbs/v0/auth on the page channel; the KBS must be slow */
static void kbs_auth_pending(Coca *c, uint32_t session)
{
    g_autofree char *tail = g_strconcat("/kbs/v0/auth", KBS_JSON,
                                        KBS_AUTH_BODY, NULL);
    struct coca_kbs_forward_req h = {
        .session = cpu_to_le32(session),
        .method = cpu_to_le16(COCA_KBS_POST),
        .path_len = cpu_to_le16(12),
        .ctype_len = cpu_to_le16(strlen(KBS_JSON)),
        .body_len = cpu_to_le32(strlen(KBS_AUTH_BODY)),
    };
    Msg m = msg_new(c, COCA_OP_KBS_FORWARD, sizeof(h) + strlen(tail));
    g_autofree uint8_t *req = g_malloc(m.req_len);

    memcpy(req, &h, sizeof(h));
    memcpy(req + sizeof(h), tail, strlen(tail));
    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
}

static void test_kbs_config(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree uint8_t *resp = NULL;
    struct coca_kbs_config cfg;
    struct coca_negotiate_resp r;
    uint32_t len;
    Coca *c;

    if (!url) {
        return;
    }
    /* without a backend the feature is not offered */
    c = coca_ready(NULL);
    r = negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_assert_cmphex(r.offered & COCA_FEAT_KBS, ==, 0);
    g_assert_cmpuint(kbs_call(c, COCA_OP_KBS_CONFIG, NULL, 0, &resp, &len),
                     ==, COCA_STATUS_FEATURE);
    g_clear_pointer(&resp, g_free);
    coca_stop(c);

    c = kbs_ready(url, ",max-sessions=3,session-timeout=60,timeout=4000,"
                  "max-response=4096", NULL);
    g_assert_cmpuint(kbs_call(c, COCA_OP_KBS_CONFIG, NULL, 0, &resp, &len),
                     ==, COCA_STATUS_OK);
    g_assert_cmpuint(len, ==, sizeof(cfg));
    memcpy(&cfg, resp, sizeof(cfg));
    g_assert_cmpstr(cfg.protocol, ==, "0.4.0");
    g_assert_cmpstr(cfg.url, ==, url);
    g_assert_cmpuint(le32_to_cpu(cfg.max_sessions), ==, 3);
    g_assert_cmpuint(le32_to_cpu(cfg.session_timeout), ==, 60);
    g_assert_cmpuint(le32_to_cpu(cfg.timeout_ms), ==, 4000);
    g_assert_cmpuint(le32_to_cpu(cfg.max_response), ==, 4096);
    g_assert_cmpuint(le32_to_cpu(cfg.max_body), ==,
                     COCA_MAX_OBJECT_MIN - sizeof(struct coca_kbs_forward_req)
                     - COCA_KBS_PATH_MAX - COCA_KBS_CTYPE_MAX);
    g_assert_cmpuint(cfg.reserved, ==, 0);
    coca_stop(c);
}

static void test_kbs_sessions(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree uint8_t *resp = NULL;
    uint32_t a, b, c2, len;
    uint8_t short_req[4] = { 0 };
    KbsReply r;
    Coca *c;

    if (!url) {
        return;
    }
    c = kbs_ready(url, ",max-sessions=2", NULL);
    a = kbs_open(c, COCA_STATUS_OK);
    b = kbs_open(c, COCA_STATUS_OK);
    g_assert_cmpuint(a, !=, b);
    /* too many sessions */
    kbs_open(c, COCA_STATUS_BUSY);
    g_assert_cmpuint(kbs_close(c, a), ==, COCA_STATUS_OK);
    c2 = kbs_open(c, COCA_STATUS_OK);
    g_assert_cmpuint(c2, !=, a);
    g_assert_cmpuint(c2, !=, b);
    /* closed, unknown and malformed */
    g_assert_cmpuint(kbs_close(c, a), ==, COCA_STATUS_NO_SESSION);
    g_assert_cmpuint(kbs_close(c, 0), ==, COCA_STATUS_NO_SESSION);
    g_assert_cmpuint(kbs_call(c, COCA_OP_KBS_CLOSE, short_req,
                              sizeof(short_req), &resp, &len), ==,
                     COCA_STATUS_INVALID);
    g_assert_cmpuint(kbs_forward(c, a, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_NO_SESSION);
    kbs_auth_ok(c, b);
    kbs_auth_ok(c, c2);

    /* a reset closes them all */
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(c->qts, "RESET");
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    g_assert_cmpuint(kbs_forward(c, b, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_NO_SESSION);
    kbs_open(c, COCA_STATUS_OK);
    kbs_open(c, COCA_STATUS_OK);
    coca_stop(c);
}

/* Each session has its own cookie jar, which carries kbs-session-id. */
static void test_kbs_cookies(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    uint32_t a, b;
    KbsReply r;
    Coca *c;

    if (!url) {
        return;
    }
    kbs_faults(NULL);
    c = kbs_ready(url, NULL, NULL);
    a = kbs_open(c, COCA_STATUS_OK);
    b = kbs_open(c, COCA_STATUS_OK);
    kbs_auth_ok(c, a);
    /* a's cookie: the KBS knows the session and checks the nonce */
    g_assert_cmpuint(kbs_forward(c, a, COCA_KBS_POST, "/kbs/v0/attest",
                                 KBS_JSON, KBS_ATTEST_BODY, &r), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(r.http, ==, 401);
    g_assert(strstr(r.body, "nonce mismatch"));
    kbs_reply_clear(&r);
    /* b never authenticated: no cookie */
    g_assert_cmpuint(kbs_forward(c, b, COCA_KBS_POST, "/kbs/v0/attest",
                                 KBS_JSON, KBS_ATTEST_BODY, &r), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(r.http, ==, 401);
    g_assert(strstr(r.body, "session cookie"));
    kbs_reply_clear(&r);
    /* the answers are forwarded as they are, whatever their status */
    g_assert_cmpuint(kbs_forward(c, a, COCA_KBS_GET,
                                 "/kbs/v0/resource/none/such/thing", NULL,
                                 NULL, &r), ==, COCA_STATUS_OK);
    g_assert_cmpuint(r.http, ==, 401);
    g_assert(strstr(r.body, "https://github.com/confidential-containers/"
                    "kbs/errors/"));
    kbs_reply_clear(&r);
    coca_stop(c);
}

/* Requests outside the API or malformed: refused before any I/O */
static void test_kbs_bad_request(void)
{
    static const struct {
        uint16_t method;
        const char *path;
    } denied[] = {
        { COCA_KBS_GET, "/kbs/v0/auth" },
        { COCA_KBS_POST, "/kbs/v0/auths" },
        { COCA_KBS_POST, "/kbs/v0/auth?x=1" },
        { COCA_KBS_POST, "/kbs/v0/attest/" },
        { COCA_KBS_POST, "/kbs/v0/attestation-policy" },
        { COCA_KBS_POST, "/kbs/v0/resource-policy" },
        { COCA_KBS_POST, "/kbs/v0/resource/a/b/c" },
        { COCA_KBS_GET, "/kbs/v0/resource/a/b" },
        { COCA_KBS_GET, "/kbs/v0/resource/a/b/c/d" },
        { COCA_KBS_GET, "/kbs/v0/resource/a/../c" },
        { COCA_KBS_GET, "/kbs/v0/resource/a/./c" },
        { COCA_KBS_GET, "/kbs/v0/resource/a//c" },
        { COCA_KBS_GET, "/kbs/v0/resource/a/b/c%2f" },
        { COCA_KBS_GET, "/kbs/v0/resource/a/b/c?x" },
        { COCA_KBS_GET, "/kbs/v0/../../etc/passwd" },
        { COCA_KBS_GET, "/admin" },
        { COCA_KBS_GET, "http://evil.example/kbs/v0/auth" },
        { 3, "/kbs/v0/auth" },
        { 0, "/kbs/v0/auth" },
    };
    const char *url = kbs_env("COCA_KBS_URL");
    struct coca_kbs_forward_req h;
    g_autofree char *big = NULL;
    uint32_t s, max_body;
    KbsReply r;
    size_t i;
    Coca *c;

    if (!url) {
        return;
    }
    c = kbs_ready(url, NULL, NULL);
    s = kbs_open(c, COCA_STATUS_OK);
    for (i = 0; i < ARRAY_SIZE(denied); i++) {
        bool post = denied[i].method == COCA_KBS_POST;

        g_test_message("%u %s", denied[i].method, denied[i].path);
        g_assert_cmpuint(kbs_forward(c, s, denied[i].method, denied[i].path,
                                     post ? KBS_JSON : NULL,
                                     post ? "{}" : NULL, &r), ==,
                         COCA_STATUS_KBS_PATH);
    }
    /* a GET carries nothing, a POST a printable content type */
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_GET,
                                 "/kbs/v0/resource/a/b/c", KBS_JSON, NULL,
                                 &r), ==, COCA_STATUS_INVALID);
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth", NULL,
                                 KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_INVALID);
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth",
                                 "application/json\r\nX-Evil: 1",
                                 KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_INVALID);
    /* lengths that do not add up, reserved bits, empty or long path */
    h = (struct coca_kbs_forward_req) {
        .session = cpu_to_le32(s),
        .method = cpu_to_le16(COCA_KBS_POST),
        .path_len = cpu_to_le16(12),
        .ctype_len = cpu_to_le16(strlen(KBS_JSON)),
        .body_len = cpu_to_le32(2),
    };
    g_assert_cmpuint(kbs_forward_raw(c, &h, "/kbs/v0/auth" KBS_JSON "{}x",
                                     12 + strlen(KBS_JSON) + 3, &r), ==,
                     COCA_STATUS_INVALID);
    g_assert_cmpuint(kbs_forward_raw(c, &h, "/kbs/v0/auth" KBS_JSON "{",
                                     12 + strlen(KBS_JSON) + 1, &r), ==,
                     COCA_STATUS_INVALID);
    h.body_len = cpu_to_le32(UINT32_MAX);
    g_assert_cmpuint(kbs_forward_raw(c, &h, "/kbs/v0/auth" KBS_JSON "{}",
                                     12 + strlen(KBS_JSON) + 2, &r), ==,
                     COCA_STATUS_INVALID);
    h.body_len = cpu_to_le32(2);
    h.reserved = cpu_to_le16(1);
    g_assert_cmpuint(kbs_forward_raw(c, &h, "/kbs/v0/auth" KBS_JSON "{}",
                                     12 + strlen(KBS_JSON) + 2, &r), ==,
                     COCA_STATUS_INVALID);
    h.reserved = 0;
    h.path_len = 0;
    h.body_len = cpu_to_le32(12 + 2);
    g_assert_cmpuint(kbs_forward_raw(c, &h, "/kbs/v0/auth" KBS_JSON "{}",
                                     12 + strlen(KBS_JSON) + 2, &r), ==,
                     COCA_STATUS_INVALID);
    g_assert_cmpuint(kbs_call(c, COCA_OP_KBS_FORWARD, &h, 8,
                              (uint8_t **)&r.body, &r.body_len), ==,
                     COCA_STATUS_INVALID);
    g_free(r.body);
    /* a body over the limit */
    max_body = COCA_MAX_OBJECT_MIN - sizeof(h) - COCA_KBS_PATH_MAX -
               COCA_KBS_CTYPE_MAX;
    big = g_strnfill(max_body + 1, 'x');
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, big, &r), ==,
                     COCA_STATUS_TOO_LARGE);
    /* none of it reached the KBS or hurt the session */
    kbs_auth_ok(c, s);
    coca_stop(c);
}

/* Every way a KBS can fail: a status, the VM runs on, the next works. */
static void test_kbs_faults(void)
{
    static const struct {
        const char *faults;
        uint32_t status;
        uint16_t http;
    } cases[] = {
        { "{\"delay\": 3}", COCA_STATUS_KBS_TIMEOUT },
        { "{\"status\": 503}", COCA_STATUS_OK, 503 },
        { "{\"status\": 500}", COCA_STATUS_OK, 500 },
        { "{\"garbage\": true}", COCA_STATUS_OK, 200 },
        { "{\"oversize\": 100000}", COCA_STATUS_KBS_TOO_LARGE },
        { "{\"drop\": true}", COCA_STATUS_KBS_UNREACHABLE },
    };
    const char *url = kbs_env("COCA_KBS_URL");
    int64_t t0, elapsed;
    uint32_t s;
    KbsReply r;
    QDict *info;
    size_t i;
    Coca *c;

    if (!url) {
        return;
    }
    c = kbs_ready(url, ",timeout=1500", NULL);
    s = kbs_open(c, COCA_STATUS_OK);
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_test_message("faults %s", cases[i].faults);
        kbs_faults(cases[i].faults);
        t0 = g_get_monotonic_time();
        g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth",
                                     KBS_JSON, KBS_AUTH_BODY, &r), ==,
                         cases[i].status);
        elapsed = g_get_monotonic_time() - t0;
        if (cases[i].status == COCA_STATUS_OK) {
            g_assert_cmpuint(r.http, ==, cases[i].http);
        }
        if (i == 0) {
            /* management hears of it (later ones: rate-limited) */
            QDict *ev = qtest_qmp_eventwait_ref(c->qts,
                                                "COCO_ATTEST_KBS_ERROR");
            QDict *data = qdict_get_qdict(ev, "data");

            g_assert_cmpstr(qdict_get_str(data, "status"), ==, "KBS_TIMEOUT");
            g_assert_cmpstr(qdict_get_str(data, "path"), ==, "/kbs/v0/auth");
            g_assert_cmpstr(qdict_get_str(data, "id"), ==, "coca0");
            qobject_unref(ev);
        }
        if (cases[i].status == COCA_STATUS_KBS_TIMEOUT) {
            /* given up after the timeout, not after the KBS's 3 s */
            g_assert_cmpint(elapsed, >=, 1400 * 1000);
            g_assert_cmpint(elapsed, <, 2900 * 1000);
        }
        kbs_reply_clear(&r);
        kbs_faults(NULL);
        kbs_auth_ok(c, s);
    }
    /* the guest-visible errors are counted */
    info = query_one(c);
    g_assert_cmpint(qdict_get_int(info, "kbs-errors"), ==, 3);
    qobject_unref(info);
    coca_stop(c);

    /* nobody listening */
    c = kbs_ready("http://127.0.0.1:1", NULL, NULL);
    s = kbs_open(c, COCA_STATUS_OK);
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_KBS_UNREACHABLE);
    coca_stop(c);
}

/* A machine whose KBS is @url, verified with the tls-creds-x509 in @dir */
static Coca *kbs_ready_tls(const char *url, const char *dir)
{
    g_autofree char *creds = g_strdup_printf(
        "-object tls-creds-x509,id=tls0,dir=%s,endpoint=client", dir);

    return kbs_ready(url, ",tls-creds=tls0", creds);
}

static void test_kbs_tls(void)
{
    const char *url = kbs_env("COCA_KBS_TLS_URL");
    const char *good = g_getenv("COCA_KBS_TLS_DIR");
    const char *bad = g_getenv("COCA_KBS_BAD_TLS_DIR");
    const char *mtls = g_getenv("COCA_KBS_MTLS_URL");
    const char *client = g_getenv("COCA_KBS_CLIENT_TLS_DIR");
    uint32_t s, status;
    KbsReply r;
    Coca *c;

    if (!url) {
        return;
    }
    g_assert(good && bad && mtls && client);
    kbs_faults(NULL);
    c = kbs_ready_tls(url, good);
    kbs_auth_ok(c, kbs_open(c, COCA_STATUS_OK));
    coca_stop(c);

    /* a KBS whose certificate does not chain to the configured CA */
    c = kbs_ready_tls(url, bad);
    s = kbs_open(c, COCA_STATUS_OK);
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_KBS_TLS);
    coca_stop(c);

    /* a KBS that requires a client certificate: with and without one */
    c = kbs_ready_tls(mtls, client);
    kbs_auth_ok(c, kbs_open(c, COCA_STATUS_OK));
    coca_stop(c);
    c = kbs_ready_tls(mtls, good);
    s = kbs_open(c, COCA_STATUS_OK);
    status = kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth", KBS_JSON,
                         KBS_AUTH_BODY, &r);
    /* refused in the handshake, or as the connection right after it */
    g_assert_true(status == COCA_STATUS_KBS_TLS ||
                  status == COCA_STATUS_KBS_UNREACHABLE);
    kbs_reply_clear(&r);
    coca_stop(c);
}

static void test_kbs_expiry(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    uint32_t a, b;
    KbsReply r;
    Coca *c;

    if (!url) {
        return;
    }
    kbs_faults(NULL);
    c = kbs_ready(url, ",session-timeout=1,max-sessions=1", NULL);
    a = kbs_open(c, COCA_STATUS_OK);
    kbs_auth_ok(c, a);
    g_usleep(1300 * 1000);
    /* idle too long: gone, and its slot is free again */
    g_assert_cmpuint(kbs_forward(c, a, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_NO_SESSION);
    b = kbs_open(c, COCA_STATUS_OK);
    kbs_auth_ok(c, b);
    coca_stop(c);
}

/*
 * A pending exchange holds neither a vCPU nor the BQL: the monitor
 * answers at once while the KBS takes 2 s; a reset drops the late answer
 * without touching guest memory.
 */
static void test_kbs_pending(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    uint8_t before[COCA_PAGE_SIZE], after[COCA_PAGE_SIZE];
    int64_t t0, worst = 0;
    QDict *info = NULL;
    uint32_t s;
    Coca *c;
    int i;

    if (!url) {
        return;
    }
    c = kbs_ready(url, NULL, NULL);
    s = kbs_open(c, COCA_STATUS_OK);
    kbs_faults("{\"delay\": 2}");
    kbs_auth_pending(c, s);
    for (i = 0; i < 10; i++) {
        t0 = g_get_monotonic_time();
        info = query_one(c);
        worst = MAX(worst, g_get_monotonic_time() - t0);
        g_assert_true(qdict_get_bool(info, "pending"));
        qobject_unref(info);
        g_usleep(50 * 1000);
    }
    g_test_message("monitor round trip while pending: %" PRId64 " us",
                   worst);
    g_assert_cmpint(worst, <, 500 * 1000);
    g_assert_cmpuint(page_hdr(c).status, ==, COCA_STATUS_PENDING);

    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(c->qts, "RESET");
    memset(before, 0x5a, sizeof(before));
    qtest_memwrite(c->qts, c->page, before, sizeof(before));
    for (i = 0; i < 5000; i++) {
        info = query_one(c);
        if (qdict_get_int(info, "dropped") == 1) {
            break;
        }
        qobject_unref(info);
        info = NULL;
        g_usleep(1000);
    }
    g_assert(info);
    qobject_unref(info);
    qtest_memread(c->qts, c->page, after, sizeof(after));
    g_assert(memcmp(before, after, sizeof(before)) == 0);

    kbs_faults(NULL);
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    s = kbs_open(c, COCA_STATUS_OK);
    kbs_auth_ok(c, s);
    coca_stop(c);
}

static void test_kbs_startup_errors(void)
{
    static const struct {
        const char *args;
        const char *error;
    } cases[] = {
        { "-object coco-attest-kbs,id=k", "Parameter 'url' is missing" },
        { "-object coco-attest-kbs,id=k,url=ftp://h", "only http and https" },
        { "-object coco-attest-kbs,id=k,url=http://u:p@h",
          "no credentials, query or fragment" },
        { "-object 'coco-attest-kbs,id=k,url=not a url'",
          "url 'not a url'" },
        { "-object coco-attest-kbs,id=k,url=https://h,max-sessions=65",
          "max-sessions must be 1 to 64" },
        { "-object coco-attest-kbs,id=k,url=https://h/"
          "0123456789012345678901234567890123456789012345678901234567890123"
          "0123456789012345678901234567890123456789012345678901234567890123"
          "0123456789012345678901234567890123456789012345678901234567890123"
          "0123456789012345678901234567890123456789012345678901234567890123",
          "url longer than 255 bytes" },
        { "-object coco-attest-kbs,id=k,url=https://h,timeout=0",
          "must not be zero" },
        /* plain HTTP only when asked for, proxies only when configured */
        { "-object coco-attest-kbs,id=k,url=http://h",
          "url 'http://h' is plain HTTP" },
        { "-object coco-attest-kbs,id=k,url=http://h,allow-http=off",
          "set allow-http=on to accept this" },
        { "-object coco-attest-kbs,id=k,url=https://h,proxy=ftp://p",
          "proxy 'ftp://p' is not an http, https or socks5h URL" },
        { "-object coco-attest-kbs,id=k,url=https://h,rate=0",
          "rate and burst must be positive" },
        { "-object coco-attest-kbs,id=k,url=https://h,burst=0",
          "rate and burst must be positive" },
        { "-object coco-attest-kbs,id=k,url=https://h,tls-creds=none",
          "no TLS credentials with id 'none'" },
        { "-object authz-simple,id=a,identity=x "
          "-object coco-attest-kbs,id=k,url=https://h,tls-creds=a",
          "'a' is not a tls-creds-x509 object" },
    };
    const char *qemu = g_getenv("QTEST_QEMU_BINARY");
    size_t i;

    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autofree char *out = NULL, *err = NULL, *run = NULL;
        int status;

        run = g_strdup_printf("timeout 20 %s -M q35 -accel qtest -nodefaults "
                              "-display none -S %s -device coco-attest,kbs=k",
                              qemu, cases[i].args);
        g_assert_true(g_spawn_command_line_sync(run, &out, &err, &status,
                                                NULL));
        g_assert_true(WIFEXITED(status));
        g_assert_cmpint(WEXITSTATUS(status), ==, 1);
        if (!strstr(err, cases[i].error)) {
            g_test_message("%s: %s", cases[i].args, err);
        }
        g_assert_nonnull(strstr(err, cases[i].error));
    }
}
#endif /* CONFIG_CURL */

/* ------------------------------------------------------------------ */
/* Migration: negotiated state, KBS sessions and pending requests move  */
/* to a destination QEMU; what it cannot honour is refused.             */
/* ------------------------------------------------------------------ */

/*
 * A destination waiting for an incoming migration (-incoming defer), its
 * stderr in @log: libqtest runs QEMU through /bin/sh.
 */
static Coca *coca_incoming(const char *objects, const char *props,
                           const char *log)
{
    Coca *c = g_new0(Coca, 1);

    c->qts = qtest_initf("-M q35 -m 128M -nodefaults %s "
                         "-device coco-attest,id=coca0%s -incoming defer "
                         "2>%s", objects ? objects : "",
                         props ? props : "", log);
    c->base = COCA_DEFAULT_IOBASE;
    pc_alloc_init(&c->alloc, c->qts, ALLOC_NO_FLAGS);
    /* the same first allocation as the source: its request page */
    c->page = guest_alloc(&c->alloc, COCA_PAGE_SIZE);
    return c;
}

static char *mig_status(QTestState *qts, char **error)
{
    QDict *rsp = qtest_qmp(qts, "{'execute': 'query-migrate'}");
    QDict *ret = qdict_get_qdict(rsp, "return");
    char *status = g_strdup(qdict_get_try_str(ret, "status"));

    if (error) {
        *error = g_strdup(qdict_get_try_str(ret, "error-desc"));
    }
    qobject_unref(rsp);
    return status;
}

/* Wait (bounded) until @qts's migration is completed or failed. */
static char *mig_wait(QTestState *qts, char **error)
{
    char *status = NULL;
    int i;

    for (i = 0; i < 3000; i++) {
        g_free(status);
        status = mig_status(qts, NULL);
        if (status && (!strcmp(status, "completed") ||
                       !strcmp(status, "failed"))) {
            break;
        }
        g_usleep(10 * 1000);
    }
    g_free(status);
    return mig_status(qts, error);
}

static void mig_wait_running(QTestState *qts)
{
    int i;

    for (i = 0; i < 1000; i++) {
        QDict *rsp = qtest_qmp(qts, "{'execute': 'query-status'}");
        bool running = qdict_get_bool(qdict_get_qdict(rsp, "return"),
                                      "running");

        qobject_unref(rsp);
        if (running) {
            return;
        }
        g_usleep(10 * 1000);
    }
    g_assert_not_reached();
}

/*
 * Migrate @src to @dst over a UNIX socket; true when the destination
 * loaded the state and runs.
 */
static bool coca_migrate(Coca *src, Coca *dst)
{
    g_autofree char *uri = g_strdup_printf("unix:%s/coca-mig-%d.sock",
                                           g_get_tmp_dir(), getpid());
    g_autofree char *s = NULL, *d = NULL;

    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    qtest_qmp_assert_success(src->qts, "{'execute': 'migrate', "
                             "'arguments': {'uri': %s}}", uri);
    s = mig_wait(src->qts, NULL);
    d = mig_wait(dst->qts, NULL);
    g_test_message("migration: source %s, destination %s", s, d);
    if (strcmp(d, "completed")) {
        return false;
    }
    qtest_qmp_eventwait(dst->qts, "RESUME");
    return true;
}

static char *log_path(const char *name)
{
    return g_strdup_printf("%s/coca-mig-%d-%s.log", g_get_tmp_dir(),
                           getpid(), name);
}

static bool log_has(const char *path, const char *text)
{
    g_autofree char *all = NULL;

    g_assert_true(g_file_get_contents(path, &all, NULL, NULL));
    if (!strstr(all, text)) {
        g_test_message("%s: %s", path, all);
        return false;
    }
    return true;
}

/* An idle device: the guest goes on without registering or negotiating */
static void test_migration_idle(void)
{
    g_autofree char *log = log_path("idle");
    Coca *src = coca_ready(",irq=5");
    struct coca_negotiate_resp r = negotiate(src, 1, 1, COCA_FEAT_ALL,
                                             COCA_STATUS_OK);
    Coca *dst = coca_incoming(NULL, ",irq=5", log);
    QDict *info;

    g_assert_cmpuint(cmd(src, COCA_CMD_IRQ_ENABLE), ==, COCA_RES_OK);
    echo_ok(src);
    g_assert_true(coca_migrate(src, dst));
    info = query_one(dst);
    g_assert_true(qdict_get_bool(info, "negotiated"));
    g_assert_cmpint(qdict_get_int(info, "negotiated-features"), ==,
                    r.negotiated);
    g_assert_cmpint(qdict_get_int(info, "requests"), ==, 3);
    g_assert_cmpstr(qdict_get_str(info, "channel"), ==, "page");
    qobject_unref(info);
    g_assert_cmphex(rd(dst, COCA_REG_STATUS) &
                    (COCA_STS_PAGE_VALID | COCA_STS_NEGOTIATED |
                     COCA_STS_IRQ_ENABLED),
                    ==, COCA_STS_PAGE_VALID | COCA_STS_NEGOTIATED |
                    COCA_STS_IRQ_ENABLED);
    /* the same page, no NEGOTIATE: both channels work */
    dst->seq = src->seq;
    echo_ok(dst);
    {
        g_autofree uint8_t *req = echo_payload(0, 100, 3);
        g_autofree uint8_t *resp = NULL;
        Msg m = msg_new(dst, COCA_OP_ECHO, sizeof(struct coca_echo) + 100);

        g_assert_cmpuint(port_send(dst, &m, req, m.req_len, 0), ==,
                         COCA_RES_OK);
        resp = port_recv(dst, &m);
        g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
        g_assert_cmpuint(m.resp_len, ==, sizeof(struct coca_echo) + 100);
        check_echo(resp, 100, 0, 3);
    }
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

/* A port channel request half streamed when the VM migrates */
static void test_migration_port_stream(void)
{
    g_autofree char *log = log_path("port");
    g_autofree uint8_t *req = echo_payload(0, 200, 9);
    g_autofree uint8_t *buf = NULL, *resp = NULL;
    Coca *src = coca_ready(NULL);
    Coca *dst = coca_incoming(NULL, NULL, log);
    Msg m = msg_new(src, COCA_OP_ECHO, sizeof(struct coca_echo) + 200);
    size_t len = COCA_HDR_SIZE + m.req_len, i;

    buf = g_malloc0(ROUND_UP(len, 4));
    msg_to_wire(&m, (struct coca_hdr *)buf);
    memcpy(buf + COCA_HDR_SIZE, req, m.req_len);
    g_assert_cmpuint(cmd(src, COCA_CMD_PORT_BEGIN), ==, COCA_RES_OK);
    for (i = 0; i < len / 2; i += 4) {
        wr(src, COCA_REG_DATA, ldl_le_p(buf + i));
    }
    g_assert_true(coca_migrate(src, dst));
    for (; i < len; i += 4) {
        wr(dst, COCA_REG_DATA, ldl_le_p(buf + i));
    }
    wr(dst, COCA_REG_CRC, crc(buf, len));
    g_assert_cmpuint(cmd(dst, COCA_CMD_PORT_SUBMIT), ==, COCA_RES_OK);
    resp = port_recv(dst, &m);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    g_assert_cmpuint(m.resp_len, ==, sizeof(struct coca_echo) + 200);
    check_echo(resp, 200, 0, 9);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

/*
 * A request pending at migration: not drained on the source, answered
 * RETRY on the destination, and the source never writes its page.
 */
static void test_migration_pending(void)
{
    g_autofree char *log = log_path("pending");
    size_t len = 40;
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, len, 21);
    uint8_t before[COCA_HDR_SIZE], after[COCA_HDR_SIZE];
    Coca *src = coca_ready(",x-echo-delay-ms=100");
    Coca *dst = coca_incoming(NULL, ",x-echo-delay-ms=100", log);
    Msg m = msg_new(src, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    QDict *info;

    g_assert_cmpuint(page_req(src, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    g_assert_true(coca_migrate(src, dst));
    m = page_wait(dst);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_RETRY);
    g_assert_cmpuint(m.resp_len, ==, 0);
    g_assert_cmphex(rd(dst, COCA_REG_STATUS) & COCA_STS_DONE, ==,
                    COCA_STS_DONE);
    g_assert_cmpuint(cmd(dst, COCA_CMD_ACK), ==, COCA_RES_OK);
    /* the guest resubmits and gets its answer */
    dst->seq = src->seq;
    m = msg_new(dst, COCA_OP_ECHO, sizeof(struct coca_echo) + len);
    g_assert_cmpuint(page_req(dst, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    qtest_clock_step(dst->qts, 100 * 1000 * 1000);
    m = page_wait(dst);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);

    /* the source's late completion stays parked: its RAM is not touched */
    qtest_memread(src->qts, src->page, before, sizeof(before));
    qtest_clock_step(src->qts, 100 * 1000 * 1000);
    g_usleep(200 * 1000);
    qtest_memread(src->qts, src->page, after, sizeof(after));
    g_assert(memcmp(before, after, sizeof(before)) == 0);
    g_assert_cmpuint(ldl_le_p(after + 16), ==, COCA_STATUS_PENDING);
    info = query_one(src);
    g_assert_true(qdict_get_bool(info, "pending"));
    qobject_unref(info);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

/* A destination that offers less than the guest negotiated refuses it */
static void test_migration_fewer_features(void)
{
    g_autofree char *log = log_path("features");
    Coca *src = coca_ready(NULL);
    Coca *dst = coca_incoming(NULL, ",features=0x3", log);
    g_autofree char *status = NULL, *error = NULL;

    g_assert_false(coca_migrate(src, dst));
    status = mig_status(dst->qts, &error);
    g_assert_cmpstr(status, ==, "failed");
    g_assert_true(log_has(log, "the guest negotiated feature(s) DIAG "
                          "(0x4) that this device does not offer"));
    /*
     * The source sent everything ("completed"); management sees the
     * destination fail and resumes the source, whose guest carries on.
     */
    qtest_qmp_assert_success(src->qts, "{'execute': 'cont'}");
    mig_wait_running(src->qts);
    echo_ok(src);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

/* Save @c to a file and return the stream */
static GByteArray *mig_to_file(Coca *c, const char *path)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *status = NULL;
    gchar *data;
    gsize len;

    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate', "
                             "'arguments': {'uri': %s}}", uri);
    status = mig_wait(c->qts, NULL);
    g_assert_cmpstr(status, ==, "completed");
    g_assert_true(g_file_get_contents(path, &data, &len, NULL));
    return g_byte_array_new_take((guint8 *)data, len);
}

/* Where the coco-attest fields start in a stream */
static size_t coca_section(GByteArray *st)
{
    static const char id[] = "\x0b" "coco-attest";
    size_t i, n = strlen(id);

    for (i = 0; i + n + 8 <= st->len; i++) {
        if (!memcmp(st->data + i, id, n)) {
            /* then instance id and version, both 32-bit */
            return i + n + 8;
        }
    }
    g_assert_not_reached();
}

/* Bytes to overwrite in a stream, and the error its load must report */
typedef struct Corruption {
    size_t off;                 /* from the first coco-attest field */
    uint8_t bytes[4];
    size_t len;
    const char *error;
} Corruption;

/*
 * Load @st with each corruption applied into a fresh destination: each
 * load fails, cleanly, with its message, and the destination lives on.
 */
static void load_corrupted(GByteArray *st, const char *path,
                           const Corruption *cases, size_t n)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    size_t base = coca_section(st), i;

    for (i = 0; i < n; i++) {
        g_autofree char *log = log_path("corrupt");
        g_autofree char *status = NULL;
        g_autoptr(GByteArray) bad = g_byte_array_new();
        Coca *dst;

        g_byte_array_append(bad, st->data, st->len);
        memcpy(bad->data + base + cases[i].off, cases[i].bytes,
               cases[i].len);
        g_assert_true(g_file_set_contents(path, (char *)bad->data, bad->len,
                                          NULL));
        dst = coca_incoming(NULL, NULL, log);
        qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming', "
                                 "'arguments': {'uri': %s, "
                                 "'exit-on-error': false}}", uri);
        status = mig_wait(dst->qts, NULL);
        g_test_message("corruption %zu: %s", i, status);
        g_assert_cmpstr(status, ==, "failed");
        g_assert_true(log_has(log, cases[i].error));
        /* the destination is still alive and answers */
        g_free(mig_status(dst->qts, NULL));
        coca_stop(dst);
        unlink(log);
    }
}

/* A stream with corrupted coco-attest fields fails to load, cleanly */
static void test_migration_corrupt(void)
{
    static const Corruption cases[] = {
        /* proto = 0x6300 */
        { 1, { 0x63, 0x00 }, 2, "protocol version 25344" },
        /* negotiated_features with bit 40 set */
        { 3 + 2, { 0x01 }, 1, "feature(s) unknown" },
        /* port_len = 0x7ffffff0 */
        { 79, { 0x7f, 0xff, 0xff, 0xf0 }, 4, "port stream of 2147483632" },
        /* mig_inflight = 9 */
        { 34, { 9 }, 1, "out of range" },
        /* the registered page moved off a page boundary */
        { 19 + 4, { 0x00, 0x00, 0x08, 0x00 }, 4, "is not a page address" },
    };
    g_autofree char *path = g_strdup_printf("%s/coca-mig-%d.bin",
                                            g_get_tmp_dir(), getpid());
    Coca *src = coca_ready(NULL);
    GByteArray *st;

    echo_ok(src);
    st = mig_to_file(src, path);
    coca_stop(src);
    load_corrupted(st, path, cases, ARRAY_SIZE(cases));
    g_byte_array_unref(st);
    unlink(path);
}

/* q35's PAM register for 0xc0000-0xc3fff: RAM, or the option ROM */
static void q35_pam_c0000(Coca *c, bool ram)
{
    qtest_outl(c->qts, 0xcf8, 0x80000000 | 0x90);
    qtest_outb(c->qts, 0xcfc + 1, ram ? 0x33 : 0x00);
}

/*
 * A guest that remaps its registered page away from RAM (the chipset's
 * PAM, here) can still be migrated: the destination loads the state
 * whatever the order of the chipset's and the device's sections, and
 * the page is checked when it is used, as on the source.
 */
static void test_migration_page_remapped(void)
{
    g_autofree char *log = log_path("pam");
    Coca *src = coca_ready(NULL);
    Coca *dst;

    q35_pam_c0000(src, true);
    src->page = 0xc0000;
    g_assert_cmpuint(register_page(src, src->page), ==, COCA_RES_OK);
    echo_ok(src);
    q35_pam_c0000(src, false);          /* now the option ROM */
    g_assert_cmpuint(cmd(src, COCA_CMD_RING), ==, COCA_RES_BAD_PAGE);
    dst = coca_incoming(NULL, NULL, log);
    g_assert_true(coca_migrate(src, dst));
    dst->page = src->page;
    dst->seq = src->seq;
    g_assert_cmphex(rd(dst, COCA_REG_STATUS) & COCA_STS_PAGE_VALID, ==,
                    COCA_STS_PAGE_VALID);
    g_assert_cmpuint(cmd(dst, COCA_CMD_RING), ==, COCA_RES_BAD_PAGE);
    /* mapped back: the registration still holds */
    q35_pam_c0000(dst, true);
    echo_ok(dst);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

#ifdef CONFIG_CURL
/* An open KBS session moves with its cookies */
static void test_migration_kbs_session(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree char *log = log_path("kbs");
    g_autofree char *obj = NULL;
    Coca *src, *dst;
    uint32_t s;
    KbsReply r;
    QDict *info;

    if (!url) {
        return;
    }
    kbs_faults(NULL);
    obj = g_strdup_printf(KBS_OBJ "%s", url);
    src = kbs_ready(url, NULL, NULL);
    s = kbs_open(src, COCA_STATUS_OK);
    kbs_open(src, COCA_STATUS_OK);
    kbs_auth_ok(src, s);
    dst = coca_incoming(obj, ",kbs=kbs0", log);
    g_assert_true(coca_migrate(src, dst));
    info = query_one(dst);
    g_assert_cmpint(qdict_get_int(info, "kbs-sessions"), ==, 2);
    g_assert_cmpint(qdict_get_int(info, "kbs-requests"), ==, 1);
    qobject_unref(info);
    /* the KBS still knows the session: the cookie came along */
    dst->seq = src->seq;
    g_assert_cmpuint(kbs_forward(dst, s, COCA_KBS_POST, "/kbs/v0/attest",
                                 KBS_JSON, KBS_ATTEST_BODY, &r), ==,
                     COCA_STATUS_OK);
    g_assert_cmpuint(r.http, ==, 401);
    g_assert_nonnull(strstr(r.body, "nonce mismatch"));
    kbs_reply_clear(&r);
    coca_stop(src);
    coca_stop(dst);

    /* a destination without a KBS backend cannot take the guest */
    dst = coca_incoming(NULL, NULL, log);
    src = kbs_ready(url, NULL, NULL);
    g_assert_false(coca_migrate(src, dst));
    g_assert_true(log_has(log, "feature(s) KBS (0x10) that this device "
                          "does not offer"));
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

/* A KBS exchange pending at migration: RETRY, then it succeeds */
static void test_migration_kbs_pending(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree char *log = log_path("kbs-pending");
    g_autofree char *obj = NULL;
    Coca *src, *dst;
    uint32_t s;
    Msg m;

    if (!url) {
        return;
    }
    obj = g_strdup_printf(KBS_OBJ "%s", url);
    src = kbs_ready(url, NULL, NULL);
    dst = coca_incoming(obj, ",kbs=kbs0", log);
    s = kbs_open(src, COCA_STATUS_OK);
    kbs_faults("{\"delay\": 2}");
    kbs_auth_pending(src, s);
    g_assert_true(coca_migrate(src, dst));
    kbs_faults(NULL);
    m = page_wait(dst);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_RETRY);
    g_assert_cmpuint(cmd(dst, COCA_CMD_ACK), ==, COCA_RES_OK);
    dst->seq = src->seq;
    kbs_auth_ok(dst, s);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}
#endif /* CONFIG_CURL */

/* ------------------------------------------------------------------ */
/* Migration matrix: every device state, both channels, odd and even   */
/* lengths, with and without an external buffer and a KBS session;     */
/* each stream goes source -> destination -> second destination.       */
/* ------------------------------------------------------------------ */

typedef enum MigState {
    MIG_ACKED,          /* the response was read and acknowledged */
    MIG_UNREAD,         /* the response is ready, not read */
    MIG_HALF_READ,      /* port: the response header was read */
    MIG_PENDING,        /* the request is in flight */
    MIG_HALF_WRITTEN,   /* port: half the request was streamed */
} MigState;

static const char *const mig_state_names[] = {
    "acked", "unread", "half-read", "pending", "half-written",
};

typedef struct MigCase {
    bool port;
    MigState state;
    size_t len;                 /* ECHO data bytes */
    bool ext_buf;
    bool kbs;
} MigCase;

/* Load the stream in @path into a new QEMU, which then runs. */
static Coca *mig_from_file(const char *objects, const char *props,
                           const char *path, const char *log)
{
    g_autofree char *uri = g_strdup_printf("file:%s", path);
    g_autofree char *status = NULL, *error = NULL;
    Coca *c = coca_incoming(objects, props, log);

    qtest_qmp_assert_success(c->qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    status = mig_wait(c->qts, &error);
    if (strcmp(status, "completed")) {
        g_autofree char *all = NULL;

        g_file_get_contents(log, &all, NULL, NULL);
        g_test_message("load failed: %s; %s", error, all);
    }
    g_assert_cmpstr(status, ==, "completed");
    mig_wait_running(c->qts);
    return c;
}

/* Save @c to @path and load it into a new QEMU; @c is stopped then. */
static Coca *mig_hop(Coca *c, const char *objects, const char *props,
                     const char *path, const char *log)
{
    Coca *next;

    g_byte_array_unref(mig_to_file(c, path));
    next = mig_from_file(objects, props, path, log);
    next->seq = c->seq;
    return next;
}

static void port_write_words(Coca *c, const uint8_t *buf, size_t from,
                             size_t to)
{
    size_t i;

    for (i = from; i < to; i += 4) {
        wr(c, COCA_REG_DATA, ldl_le_p(buf + i));
    }
}

static void port_read_words(Coca *c, uint8_t *buf, size_t from, size_t to)
{
    size_t i;

    for (i = from; i < to; i += 4) {
        stl_le_p(buf + i, rd(c, COCA_REG_DATA));
        g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_OK);
    }
}

/* The rest of a port response whose first @have bytes are in @buf */
static void port_finish_read(Coca *c, uint8_t *buf, size_t have,
                             Msg *m)
{
    size_t total;

    if (have < COCA_HDR_SIZE) {
        port_read_words(c, buf, have, COCA_HDR_SIZE);
        have = COCA_HDR_SIZE;
    }
    *m = msg_from_wire((struct coca_hdr *)buf);
    g_assert_cmphex(m->flags & COCA_FLAG_RESPONSE, ==, COCA_FLAG_RESPONSE);
    total = COCA_HDR_SIZE +
            (m->status == COCA_STATUS_OK ? m->resp_len : 0);
    g_assert_cmpuint(total, <=, COCA_HDR_SIZE + COCA_MAX_OBJECT_MIN);
    port_read_words(c, buf, have, ROUND_UP(total, 4));
    /* nothing past the padded end */
    rd(c, COCA_REG_DATA);
    g_assert_cmpuint(rd(c, COCA_REG_CMD), ==, COCA_RES_STREAM);
    g_assert_cmphex(rd(c, COCA_REG_CRC), ==, crc(buf, total));
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
}

static void mig_matrix_case(const MigCase *mc)
{
    g_autofree char *log = log_path("matrix");
    g_autofree char *path = g_strdup_printf("%s/coca-matrix-%d.bin",
                                            g_get_tmp_dir(), getpid());
    const char *url = mc->kbs ? g_getenv("COCA_KBS_URL") : NULL;
    g_autofree char *obj = url ? g_strdup_printf(KBS_OBJ "%s", url) : NULL;
    const char *props = url ? ",kbs=kbs0,x-echo-delay-ms=100"
                            : ",x-echo-delay-ms=100";
    uint32_t flags = mc->state == MIG_PENDING ? COCA_ECHO_ASYNC : 0;
    g_autofree uint8_t *req = echo_payload(flags, mc->len, mc->len);
    size_t req_len = sizeof(struct coca_echo) + mc->len;
    size_t wire = ROUND_UP(COCA_HDR_SIZE + req_len, 4);
    g_autofree uint8_t *stream = g_malloc0(wire);
    g_autofree uint8_t *resp = g_malloc0(COCA_HDR_SIZE +
                                         COCA_MAX_OBJECT_MIN + 4);
    uint32_t session = 0;
    Coca *src, *mid, *dst;
    Msg m;

    src = coca_start_with("q35", obj, props);
    g_assert_cmpuint(register_page(src, src->page), ==, COCA_RES_OK);
    negotiate(src, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    if (url) {
        session = kbs_open(src, COCA_STATUS_OK);
    }

    m = msg_new(src, COCA_OP_ECHO, req_len);
    if (mc->port) {
        msg_to_wire(&m, (struct coca_hdr *)stream);
        memcpy(stream + COCA_HDR_SIZE, req, req_len);
        g_assert_cmpuint(cmd(src, COCA_CMD_PORT_BEGIN), ==, COCA_RES_OK);
        if (mc->state == MIG_HALF_WRITTEN) {
            port_write_words(src, stream, 0, ROUND_UP(wire / 2, 4));
        } else {
            port_write_words(src, stream, 0, wire);
            wr(src, COCA_REG_CRC, crc(stream, COCA_HDR_SIZE + req_len));
            g_assert_cmpuint(cmd(src, COCA_CMD_PORT_SUBMIT), ==,
                             COCA_RES_OK);
        }
        if (mc->state == MIG_ACKED) {
            g_free(port_recv(src, &m));
            g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
        } else if (mc->state == MIG_HALF_READ) {
            port_read_words(src, resp, 0, COCA_HDR_SIZE);
        }
    } else {
        if (mc->ext_buf) {
            m.flags = COCA_FLAG_EXT_BUF;
            m.buf_gpa = guest_alloc(&src->alloc, COCA_PAGE_SIZE);
            m.buf_len = COCA_PAGE_SIZE;
        }
        g_assert_cmpuint(page_req(src, &m, req, req_len), ==,
                         mc->state == MIG_PENDING ? COCA_STATUS_PENDING
                                                  : COCA_STATUS_OK);
        if (mc->state == MIG_ACKED) {
            g_assert_cmpuint(cmd(src, COCA_CMD_ACK), ==, COCA_RES_OK);
        }
    }

    /* source -> destination -> a second destination */
    mid = mig_hop(src, obj, props, path, log);
    dst = mig_hop(mid, obj, props, path, log);

    switch (mc->state) {
    case MIG_HALF_WRITTEN:
        port_write_words(dst, stream, ROUND_UP(wire / 2, 4), wire);
        wr(dst, COCA_REG_CRC, crc(stream, COCA_HDR_SIZE + req_len));
        g_assert_cmpuint(cmd(dst, COCA_CMD_PORT_SUBMIT), ==, COCA_RES_OK);
        /* fall through */
    case MIG_UNREAD:
    case MIG_HALF_READ:
        if (mc->port) {
            port_finish_read(dst, resp, mc->state == MIG_HALF_READ ?
                             COCA_HDR_SIZE : 0, &m);
            g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
            g_assert_cmpuint(m.resp_len, ==, req_len);
            check_echo(resp + COCA_HDR_SIZE, mc->len, 0, mc->len);
        } else {
            m = page_hdr(dst);
            g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
            page_payload(dst, &m, resp, req_len);
            check_echo(resp, mc->len, 0, mc->len);
            g_assert_cmpuint(cmd(dst, COCA_CMD_ACK), ==, COCA_RES_OK);
        }
        break;
    case MIG_PENDING:
        /* the first destination answered RETRY, the second carried it */
        if (mc->port) {
            port_finish_read(dst, resp, 0, &m);
        } else {
            m = page_wait(dst);
            g_assert_cmpuint(cmd(dst, COCA_CMD_ACK), ==, COCA_RES_OK);
        }
        g_assert_cmpuint(m.status, ==, COCA_STATUS_RETRY);
        g_assert_cmpuint(m.resp_len, ==, 0);
        break;
    case MIG_ACKED:
        g_assert_cmphex(rd(dst, COCA_REG_STATUS) &
                        (COCA_STS_BUSY | COCA_STS_DONE), ==, 0);
        break;
    }

    /* the guest's next request works on the same channel */
    m = msg_new(dst, COCA_OP_ECHO, sizeof(struct coca_echo) + mc->len);
    if (mc->port) {
        g_autofree uint8_t *again = echo_payload(0, mc->len, 77);
        g_autofree uint8_t *out = NULL;

        g_assert_cmpuint(port_send(dst, &m, again, m.req_len, 0), ==,
                         COCA_RES_OK);
        out = port_recv(dst, &m);
        g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
        check_echo(out, mc->len, 0, 77);
    } else {
        echo_ok(dst);
    }
    if (url) {
        QDict *info = query_one(dst);

        g_assert_cmpint(qdict_get_int(info, "kbs-sessions"), ==, 1);
        qobject_unref(info);
        g_assert_cmpuint(kbs_close(dst, session), ==, COCA_STATUS_OK);
    }
    coca_stop(src);
    coca_stop(mid);
    coca_stop(dst);
    unlink(path);
    unlink(log);
}

static void test_migration_matrix(void)
{
    static const MigState page_states[] = {
        MIG_ACKED, MIG_UNREAD, MIG_PENDING,
    };
    static const MigState port_states[] = {
        MIG_ACKED, MIG_UNREAD, MIG_HALF_READ, MIG_PENDING, MIG_HALF_WRITTEN,
    };
    static const size_t lens[] = { 1, 2, 5, 8 };
    bool have_kbs = g_getenv("COCA_KBS_URL") != NULL;
    size_t i, j, k;
    int kbs;

    for (kbs = 0; kbs <= have_kbs; kbs++) {
        for (i = 0; i < ARRAY_SIZE(lens); i++) {
            for (j = 0; j < ARRAY_SIZE(port_states); j++) {
                MigCase mc = { .port = true, .state = port_states[j],
                               .len = lens[i], .kbs = kbs };

                g_test_message("port, %s, %zu bytes%s",
                               mig_state_names[mc.state], mc.len,
                               kbs ? ", KBS session" : "");
                mig_matrix_case(&mc);
            }
            for (j = 0; j < ARRAY_SIZE(page_states); j++) {
                for (k = 0; k < 2; k++) {
                    MigCase mc = { .state = page_states[j], .len = lens[i],
                                   .ext_buf = k, .kbs = kbs };

                    g_test_message("page, %s, %zu bytes%s%s",
                                   mig_state_names[mc.state], mc.len,
                                   k ? ", external buffer" : "",
                                   kbs ? ", KBS session" : "");
                    mig_matrix_case(&mc);
                }
            }
        }
    }
}

/*
 * A port response of any length moves, and the source survives saving
 * it: a 1-byte ECHO answer is 57 bytes, not whole words.  (The guest
 * read and acknowledged it; the stream still holds it.)
 */
static void test_migration_port_odd(void)
{
    g_autofree char *log = log_path("port-odd");
    g_autofree uint8_t *req = echo_payload(0, 1, 5);
    g_autofree uint8_t *resp = NULL;
    Coca *src = coca_ready(NULL);
    Coca *dst = coca_incoming(NULL, NULL, log);
    Msg m = msg_new(src, COCA_OP_ECHO, sizeof(struct coca_echo) + 1);

    g_assert_cmpuint(port_send(src, &m, req, m.req_len, 0), ==,
                     COCA_RES_OK);
    resp = port_recv(src, &m);
    g_assert_cmpuint(m.resp_len, ==, sizeof(struct coca_echo) + 1);
    /* a shorter request after a longer response: a stale read position */
    g_free(resp);
    g_free(req);
    req = echo_payload(0, 200, 6);
    m = msg_new(src, COCA_OP_ECHO, sizeof(struct coca_echo) + 200);
    g_assert_cmpuint(port_send(src, &m, req, m.req_len, 0), ==,
                     COCA_RES_OK);
    resp = port_recv(src, &m);
    g_assert_cmpuint(cmd(src, COCA_CMD_PORT_BEGIN), ==, COCA_RES_OK);
    wr(src, COCA_REG_DATA, 0);
    wr(src, COCA_REG_DATA, 0);
    g_assert_true(coca_migrate(src, dst));
    dst->seq = src->seq;
    echo_ok(dst);
    /* the source is alive too, and carries on when resumed */
    qtest_qmp_assert_success(src->qts, "{'execute': 'cont'}");
    mig_wait_running(src->qts);
    echo_ok(src);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}

/*
 * Every field a stream sets is checked against what the device relies
 * on: here the port channel's read position and CRC, on a stream with a
 * response ready (a 4-byte ECHO: 60 bytes, whole words).
 */
static void test_migration_corrupt_port(void)
{
    static const Corruption cases[] = {
        /* port_pos = 59: the last word would read past the response */
        { 71, { 0, 0, 0, 59 }, 4, "inconsistent port channel state" },
        /* port_pos = 2: not a word */
        { 71, { 0, 0, 0, 2 }, 4, "inconsistent port channel state" },
        /* port_pos = 64: past the padded end */
        { 71, { 0, 0, 0, 64 }, 4, "inconsistent port channel state" },
        /* port_crc changed */
        { 75, { 0x12, 0x34, 0x56, 0x78 }, 4, "port response CRC" },
        /* port_active and port_response both set */
        { 69, { 1 }, 1, "inconsistent port channel state" },
    };
    g_autofree char *path = g_strdup_printf("%s/coca-mig-%d.bin",
                                            g_get_tmp_dir(), getpid());
    g_autofree uint8_t *req = echo_payload(0, 4, 1);
    Coca *src = coca_ready(NULL);
    Msg m = msg_new(src, COCA_OP_ECHO, sizeof(struct coca_echo) + 4);
    GByteArray *st;

    g_assert_cmpuint(port_send(src, &m, req, m.req_len, 0), ==,
                     COCA_RES_OK);
    st = mig_to_file(src, path);
    coca_stop(src);
    /* the layout this test assumes: port_len (60) after port_crc */
    g_assert_cmphex(ldl_be_p(st->data + coca_section(st) + 79), ==, 60);
    load_corrupted(st, path, cases, ARRAY_SIZE(cases));
    g_byte_array_unref(st);
    unlink(path);
}

/* ------------------------------------------------------------------ */
/* Power states with a request pending: system_reset, S3 suspend and   */
/* wakeup, stop/cont and quit, on both channels.                       */
/* ------------------------------------------------------------------ */

#define LPC_CFG(reg)    (0x80000000u | (31 << 11) | (reg))  /* 0:1f.0 */
#define PM_BASE         0x600
#define PM1_CNT_S3      ((1 << 10) | (1 << 13))     /* SLP_TYP 1, SLP_EN */

/* ACPI S3 as a guest OS enters it on q35: PM1a_CNT of the ICH9 */
static void s3_suspend(Coca *c)
{
    QTestState *q = c->qts;

    qtest_outl(q, 0xcf8, LPC_CFG(0x40));            /* PMBASE */
    qtest_outl(q, 0xcfc, PM_BASE | 1);
    qtest_outl(q, 0xcf8, LPC_CFG(0x44));            /* ACPI_CNTL */
    qtest_outb(q, 0xcfc, 0x80);                     /* ACPI_EN */
    qtest_outw(q, PM_BASE + 4, PM1_CNT_S3);
    qtest_qmp_eventwait(q, "SUSPEND");
}

static void s3_wakeup(Coca *c)
{
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_wakeup'}");
    qtest_qmp_eventwait(c->qts, "WAKEUP");
}

static void assert_run_status(Coca *c, const char *expect)
{
    QDict *rsp = qtest_qmp(c->qts, "{'execute': 'query-status'}");

    g_assert_cmpstr(qdict_get_str(qdict_get_qdict(rsp, "return"), "status"),
                    ==, expect);
    qobject_unref(rsp);
}

/* Start an asynchronous ECHO on a channel; it completes DELAY_MS later */
static Msg start_async_echo(Coca *c, bool port, size_t len, uint8_t seed)
{
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, len, seed);
    Msg m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + len);

    if (port) {
        g_assert_cmpuint(port_send(c, &m, req, m.req_len, 0), ==,
                         COCA_RES_OK);
    } else {
        g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                         COCA_STATUS_PENDING);
    }
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & COCA_STS_BUSY, ==,
                    COCA_STS_BUSY);
    return m;
}

/* Wait (bounded) for the device to finish, then check the ECHO answer */
static void finish_async_echo(Coca *c, bool port, size_t len, uint8_t seed)
{
    g_autofree uint8_t *resp = NULL;
    Msg m;
    int i;

    for (i = 0; i < 5000 && (rd(c, COCA_REG_STATUS) & COCA_STS_BUSY); i++) {
        g_usleep(1000);
    }
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & (COCA_STS_BUSY | COCA_STS_DONE),
                    ==, COCA_STS_DONE);
    if (port) {
        resp = port_recv(c, &m);
    } else {
        m = page_wait(c);
        resp = g_malloc(m.resp_len);
        page_payload(c, &m, resp, m.resp_len);
        g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    }
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    g_assert_cmpuint(m.resp_len, ==, sizeof(struct coca_echo) + len);
    check_echo(resp, len, COCA_ECHO_ASYNC, seed);
}

/*
 * S3 with a request pending across the whole suspend: the device keeps
 * its state (negotiation, page, the request) through the wakeup, as the
 * guest's memory does, and the answer comes after it.  (The echo delay
 * runs on virtual time, which stands still while the VM is suspended;
 * power/s3-kbs-* has an answer arrive during the suspend.)
 */
static void test_power_s3(const void *data)
{
    bool port = GPOINTER_TO_INT(data);
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    QDict *info;

    start_async_echo(c, port, 34, 5);
    s3_suspend(c);
    assert_run_status(c, "suspended");
    s3_wakeup(c);
    assert_run_status(c, "running");
    g_assert_cmphex(rd(c, COCA_REG_STATUS) &
                    (COCA_STS_BUSY | COCA_STS_NEGOTIATED |
                     COCA_STS_PAGE_VALID), ==,
                    COCA_STS_BUSY | COCA_STS_NEGOTIATED |
                    COCA_STS_PAGE_VALID);
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    finish_async_echo(c, port, 34, 5);
    info = query_one(c);
    g_assert_cmpint(qdict_get_int(info, "dropped"), ==, 0);
    qobject_unref(info);
    echo_ok(c);
    coca_stop(c);
}

/* stop with a request pending: parked, delivered at cont */
static void test_power_stop_cont(const void *data)
{
    bool port = GPOINTER_TO_INT(data);
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    uint8_t before[COCA_HDR_SIZE], after[COCA_HDR_SIZE];
    QDict *info;

    start_async_echo(c, port, 35, 6);
    qtest_qmp_assert_success(c->qts, "{'execute': 'stop'}");
    qtest_memread(c->qts, c->page, before, sizeof(before));
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    g_usleep(100 * 1000);
    /* nothing written to guest memory while stopped */
    qtest_memread(c->qts, c->page, after, sizeof(after));
    g_assert(memcmp(before, after, sizeof(before)) == 0);
    info = query_one(c);
    g_assert_true(qdict_get_bool(info, "pending"));
    qobject_unref(info);
    qtest_qmp_assert_success(c->qts, "{'execute': 'cont'}");
    finish_async_echo(c, port, 35, 6);
    echo_ok(c);
    coca_stop(c);
}

/* system_reset with a request pending: dropped, the device starts over */
static void test_power_reset(const void *data)
{
    bool port = GPOINTER_TO_INT(data);
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    QDict *info;
    int i;

    start_async_echo(c, port, 36, 7);
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(c->qts, "RESET");
    g_assert_cmphex(rd(c, COCA_REG_STATUS), ==, 0);
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    for (i = 0; i < 5000; i++) {
        info = query_one(c);
        if (qdict_get_int(info, "dropped") == 1) {
            break;
        }
        qobject_unref(info);
        info = NULL;
        g_usleep(1000);
    }
    g_assert(info);
    qobject_unref(info);
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    echo_ok(c);
    coca_stop(c);
}

/* quit with a request pending: QEMU exits cleanly (qtest_quit checks) */
static void test_power_quit(const void *data)
{
    bool port = GPOINTER_TO_INT(data);
    Coca *c = coca_ready(",x-echo-delay-ms=100");

    start_async_echo(c, port, 37, 8);
    coca_stop(c);
    c = coca_ready(",x-echo-delay-ms=100");
    start_async_echo(c, port, 38, 9);
    /* the work is in the thread pool when QEMU is told to quit */
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    coca_stop(c);
}

/*
 * A reset does not let the guest stack up work: until the request of
 * the previous epoch has finished, a new one that would start work is
 * answered RETRY.
 */
static void test_power_reset_no_stacking(void)
{
    Coca *c = coca_ready(",x-echo-delay-ms=100");
    g_autofree uint8_t *req = echo_payload(COCA_ECHO_ASYNC, 8, 3);
    Msg m;
    int i;

    start_async_echo(c, false, 8, 3);
    qtest_qmp_assert_success(c->qts, "{'execute': 'system_reset'}");
    qtest_qmp_eventwait(c->qts, "RESET");
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 8);
    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==, COCA_STATUS_RETRY);
    g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    /* a request that starts no work is served meanwhile */
    echo_ok(c);
    /* once the old one is gone, the resent request runs */
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    for (i = 0; i < 5000; i++) {
        QDict *info = query_one(c);
        bool gone = qdict_get_int(info, "dropped") == 1;

        qobject_unref(info);
        if (gone) {
            break;
        }
        g_usleep(1000);
    }
    m = msg_new(c, COCA_OP_ECHO, sizeof(struct coca_echo) + 8);
    g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    qtest_clock_step(c->qts, DELAY_MS * 1000 * 1000);
    m = page_wait(c);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    coca_stop(c);
}

/* Run QEMU to completion with @args; its stderr (and stdout) */
static char *qemu_output(const char *args)
{
    g_autofree char *run = g_strdup_printf("timeout 20 %s %s",
                                           g_getenv("QTEST_QEMU_BINARY"),
                                           args);
    g_autofree char *out = NULL;
    char *err = NULL;
    int status;

    g_assert_true(g_spawn_command_line_sync(run, &out, &err, &status, NULL));
    return g_strconcat(out, err, NULL);
}

/* A qom-set on a backend property after creation is refused */
static void assert_fixed(Coca *c, const char *obj, const char *prop,
                         const char *value_json)
{
    g_autofree char *cmdline = g_strdup_printf(
        "{'execute': 'qom-set', 'arguments': {'path': '/objects/%s', "
        "'property': '%s', 'value': %s}}", obj, prop, value_json);
    QDict *rsp, *err;

    qtest_qmp_send_raw(c->qts, "%s", cmdline);
    rsp = qtest_qmp_receive(c->qts);
    err = qdict_get_qdict(rsp, "error");

    g_assert(err);
    g_assert_nonnull(strstr(qdict_get_str(err, "desc"),
                            "cannot be changed once the object is created"));
    qobject_unref(rsp);
}

/* -object TYPE,help lists @props, each with a description */
static void assert_help_lists(const char *type, const char *const *props)
{
    g_autofree char *args = g_strdup_printf("-object %s,help", type);
    g_autofree char *help = qemu_output(args);
    size_t i;

    for (i = 0; props[i]; i++) {
        g_autofree char *line = g_strdup_printf("  %s=<", props[i]);
        const char *at = strstr(help, line);

        if (!at) {
            g_test_message("%s", help);
        }
        g_assert_nonnull(at);
        /* "  name=<type>   - description" */
        g_assert_nonnull(g_strstr_len(at, strcspn(at, "\n"), " - "));
    }
}

/*
 * The QEMU this project builds can run confidential guests: KVM beside
 * TCG, and the SEV/SEV-SNP guest objects.  Here (TCG only) a machine
 * with confidential-guest-support and the device gets as far as the
 * host allows: the refusal is KVM's, never the device's.
 */
static void test_confidential_guest(void)
{
    static const char *const accels[] = { "-accel tcg", "-accel kvm" };
    g_autofree char *accel = qemu_output("-accel help");
    g_autofree char *objects = qemu_output("-object help");
    size_t i;

    g_assert_nonnull(strstr(accel, "\nkvm\n"));
    g_assert_nonnull(strstr(accel, "\ntcg\n"));
    g_assert_nonnull(strstr(objects, "  sev-snp-guest\n"));
    g_assert_nonnull(strstr(objects, "  sev-guest\n"));
    for (i = 0; i < ARRAY_SIZE(accels); i++) {
        g_autofree char *args = g_strdup_printf(
            "-M q35,confidential-guest-support=sev0 %s -nodefaults "
            "-display none -S -object sev-snp-guest,id=sev0,cbitpos=51,"
            "reduced-phys-bits=1 -device coco-attest,irq=5 "
            "-monitor none -serial none", accels[i]);
        g_autofree char *out = qemu_output(args);

        g_test_message("%s: %s", accels[i], out);
        g_assert_null(strstr(out, "coco-attest"));
        g_assert_nonnull(strstr(out, "KVM"));
    }
}

#ifdef CONFIG_GNUTLS
/* DER: tag, definite length, content */
static void der_put(GByteArray *out, uint8_t tag, const void *p, size_t len)
{
    uint8_t h[5];
    size_t n = 0;

    h[n++] = tag;
    if (len < 0x80) {
        h[n++] = len;
    } else if (len < 0x100) {
        h[n++] = 0x81;
        h[n++] = len;
    } else {
        g_assert_cmpuint(len, <, 0x10000);
        h[n++] = 0x82;
        h[n++] = len >> 8;
        h[n++] = len;
    }
    g_byte_array_append(out, h, n);
    g_byte_array_append(out, p, len);
}

/* Wrap @in as a constructed @tag into @out; frees @in */
static void der_wrap(GByteArray *out, uint8_t tag, GByteArray *in)
{
    der_put(out, tag, in->data, in->len);
    g_byte_array_unref(in);
}

/* A positive INTEGER of @len random bytes, top bit set, odd */
static void der_random_int(GByteArray *out, size_t len)
{
    g_autofree uint8_t *v = g_malloc(len + 1);
    size_t i;

    v[0] = 0;
    for (i = 1; i <= len; i++) {
        v[i] = g_random_int();
    }
    v[1] |= 0x80;
    v[len] |= 1;
    der_put(out, 0x02, v, len + 1);
}

/*
 * A PKCS#10 request for an RSA key with an @n_len-byte modulus and an
 * @e_len-byte exponent (0: 65537), whose signature is garbage: only a
 * signature check tells it apart from a valid one.
 */
static GBytes *crafted_rsa_csr(size_t n_len, size_t e_len)
{
    static const uint8_t rsa_oid[] = {
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
        0x05, 0x00,
    };
    static const uint8_t sha256_rsa_oid[] = {
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b,
        0x05, 0x00,
    };
    static const uint8_t f4[] = { 0x01, 0x00, 0x01 };
    GByteArray *key = g_byte_array_new(), *bits = g_byte_array_new();
    GByteArray *spki = g_byte_array_new(), *alg = g_byte_array_new();
    GByteArray *info = g_byte_array_new(), *csr = g_byte_array_new();
    GByteArray *sig = g_byte_array_new();
    GByteArray *out = g_byte_array_new();
    const uint8_t zero = 0;
    size_t i;

    der_random_int(key, n_len);
    if (e_len) {
        der_random_int(key, e_len);
    } else {
        der_put(key, 0x02, f4, sizeof(f4));
    }
    g_byte_array_append(bits, &zero, 1);
    der_wrap(bits, 0x30, key);
    g_byte_array_append(alg, rsa_oid, sizeof(rsa_oid));
    der_wrap(spki, 0x30, alg);
    der_wrap(spki, 0x03, bits);
    der_put(info, 0x02, &zero, 1);              /* version 0 */
    der_put(info, 0x30, NULL, 0);               /* empty subject */
    der_wrap(info, 0x30, spki);
    der_put(info, 0xa0, NULL, 0);               /* no attributes */
    der_wrap(csr, 0x30, info);
    alg = g_byte_array_new();
    g_byte_array_append(alg, sha256_rsa_oid, sizeof(sha256_rsa_oid));
    der_wrap(csr, 0x30, alg);
    g_byte_array_append(sig, &zero, 1);
    for (i = 0; i < n_len; i++) {
        uint8_t b = g_random_int();

        g_byte_array_append(sig, &b, 1);
    }
    der_wrap(csr, 0x03, sig);
    der_wrap(out, 0x30, csr);
    return g_byte_array_free_to_bytes(out);
}

/*
 * CERTIFY_AK applies the key policy (algorithm, size, exponent) before
 * it checks a CSR's signature: a huge key costs no signature work.
 */
static void test_ca_csr_policy_first(void)
{
    static const struct {
        size_t n_len, e_len;
        uint32_t status;
    } cases[] = {
        { 2048, 0, COCA_STATUS_UNSUPPORTED_KEY },   /* RSA-16384 */
        { 1024, 0, COCA_STATUS_UNSUPPORTED_KEY },   /* RSA-8192 */
        { 256, 256, COCA_STATUS_UNSUPPORTED_KEY },  /* 2048-bit exponent */
        { 256, 5, COCA_STATUS_UNSUPPORTED_KEY },    /* 40-bit exponent */
        { 256, 0, COCA_STATUS_BAD_SIGNATURE },      /* RSA-2048: checked */
    };
    const char *dir = ca_dir();
    Coca *c;
    size_t i;

    if (!dir) {
        return;
    }
    c = ca_ready(dir, ",burst=100");
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        g_autoptr(GBytes) csr = crafted_rsa_csr(cases[i].n_len,
                                                cases[i].e_len);

        g_test_message("RSA modulus %zu bytes, exponent %zu bytes",
                       cases[i].n_len, cases[i].e_len);
        g_assert_cmpuint(certify_ak(c, csr, NULL), ==, cases[i].status);
    }
    coca_stop(c);
}

/* coco-attest-ca's properties are fixed once it exists, and listed */
static void test_ca_properties(void)
{
    static const char *const props[] = { "dir", "rate", "burst", NULL };
    const char *dir = ca_dir();
    Coca *c;

    if (!dir) {
        return;
    }
    c = ca_ready(dir, NULL);
    assert_fixed(c, "ca0", "dir", "'/tmp'");
    assert_fixed(c, "ca0", "rate", "1");
    assert_fixed(c, "ca0", "burst", "1");
    {
        g_autofree uint8_t *resp = NULL;
        uint32_t len;

        /* and it goes on issuing with what it was created with */
        g_assert_cmpuint(ca_call(c, COCA_OP_GET_IDENTITY, NULL, 0, &resp,
                                 &len), ==, COCA_STATUS_OK);
    }
    coca_stop(c);
    assert_help_lists("coco-attest-ca", props);
}

/* Nonces come from the host's CSPRNG, whatever -seed says */
static void test_ca_nonce_seed(void)
{
    g_autofree char *obj = NULL;
    g_autofree uint8_t *n1 = NULL, *n2 = NULL;
    const char *dir = ca_dir();
    Coca *a, *b;

    if (!dir) {
        return;
    }
    obj = g_strdup_printf("-seed 1 -object coco-attest-ca,id=ca0,dir=%s",
                          dir);
    a = coca_start_with("q35", obj, ",ca=ca0");
    b = coca_start_with("q35", obj, ",ca=ca0");
    g_assert_cmpuint(register_page(a, a->page), ==, COCA_RES_OK);
    g_assert_cmpuint(register_page(b, b->page), ==, COCA_RES_OK);
    negotiate(a, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    negotiate(b, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    n1 = get_nonce(a);
    n2 = get_nonce(b);
    g_assert(memcmp(n1, n2, COCA_NONCE_SIZE) != 0);
    coca_stop(a);
    coca_stop(b);
}

/*
 * A nonce is single use across a migration: a TPM-form CERTIFY_AK in
 * flight consumed it, and its resent request gets NONCE, not a second
 * certificate for the same nonce.
 */
static void test_ca_nonce_migration(void)
{
    g_autofree char *log = log_path("nonce");
    g_autofree char *uri = g_strdup_printf("unix:%s/coca-mig-%d.sock",
                                           g_get_tmp_dir(), getpid());
    g_autofree char *obj = NULL, *st = NULL;
    g_autofree uint8_t *nonce = NULL, *req = NULL;
    g_autoptr(GBytes) proof = NULL;
    gnutls_x509_privkey_t key;
    const char *dir = ca_dir();
    Coca *src, *dst;
    size_t n;
    Msg m;

    if (!dir) {
        return;
    }
    obj = g_strdup_printf("-object coco-attest-ca,id=ca0,dir=%s", dir);
    key = new_key(GNUTLS_PK_ECDSA,
                  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1));
    src = ca_ready(dir, NULL);
    dst = coca_incoming(obj, ",ca=ca0", log);
    nonce = get_nonce(src);
    proof = tpm_ak_proof(key, nonce, 0x000b);
    n = g_bytes_get_size(proof);
    req = g_malloc0(sizeof(struct coca_certify_ak_req) + n);
    stl_le_p(req, COCA_AK_FORMAT_TPM);
    memcpy(req + sizeof(struct coca_certify_ak_req),
           g_bytes_get_data(proof, NULL), n);

    /* stopped: the answer is parked, the request is in flight */
    qtest_qmp_assert_success(src->qts, "{'execute': 'stop'}");
    m = msg_new(src, COCA_OP_CERTIFY_AK,
                sizeof(struct coca_certify_ak_req) + n);
    g_assert_cmpuint(page_req(src, &m, req, m.req_len), ==,
                     COCA_STATUS_PENDING);
    qtest_qmp_assert_success(dst->qts, "{'execute': 'migrate-incoming', "
                             "'arguments': {'uri': %s, "
                             "'exit-on-error': false}}", uri);
    qtest_qmp_assert_success(src->qts, "{'execute': 'migrate', "
                             "'arguments': {'uri': %s}}", uri);
    st = mig_wait(dst->qts, NULL);
    g_assert_cmpstr(st, ==, "completed");
    /* the source was paused, so is the destination until told */
    qtest_qmp_assert_success(dst->qts, "{'execute': 'cont'}");
    m = page_wait(dst);
    g_assert_cmpuint(m.status, ==, COCA_STATUS_RETRY);
    g_assert_cmpuint(cmd(dst, COCA_CMD_ACK), ==, COCA_RES_OK);
    dst->seq = src->seq;
    m = msg_new(dst, COCA_OP_CERTIFY_AK,
                sizeof(struct coca_certify_ak_req) + n);
    g_assert_cmpuint(page_req(dst, &m, req, m.req_len), ==,
                     COCA_STATUS_NONCE);
    g_assert_cmpuint(cmd(dst, COCA_CMD_ACK), ==, COCA_RES_OK);
    /* with a fresh nonce, the guest gets its certificate */
    g_free(nonce);
    g_bytes_unref(proof);
    nonce = get_nonce(dst);
    proof = tpm_ak_proof(key, nonce, 0x000b);
    g_assert_cmpuint(certify_tpm_ak(dst, proof, NULL), ==, COCA_STATUS_OK);
    gnutls_x509_privkey_deinit(key);
    coca_stop(src);
    coca_stop(dst);
    unlink(log);
}
#endif /* CONFIG_GNUTLS */

#ifdef CONFIG_CURL
/* KBS_OPEN and KBS_FORWARD are rate-limited per instance */
static void test_kbs_rate_limit(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree char *log = log_path("kbs-rate");
    g_autofree char *obj = NULL;
    uint32_t s1, s2;
    QDict *info;
    KbsReply r;
    Coca *c, *d;

    if (!url) {
        return;
    }
    kbs_faults(NULL);
    obj = g_strdup_printf("-object coco-attest-kbs,id=kbs0,allow-http=on,"
                          "rate=1,burst=3,url=%s", url);
    c = coca_start_with("q35", obj, ",kbs=kbs0");
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    s1 = kbs_open(c, COCA_STATUS_OK);
    kbs_auth_ok(c, s1);
    s2 = kbs_open(c, COCA_STATUS_OK);
    /* the burst is spent: one more a minute */
    g_assert_cmpuint(kbs_forward(c, s1, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_RATE_LIMITED);
    kbs_reply_clear(&r);
    kbs_open(c, COCA_STATUS_RATE_LIMITED);
    /* closing costs nothing, and what is not the KBS's still works */
    g_assert_cmpuint(kbs_close(c, s2), ==, COCA_STATUS_OK);
    echo_ok(c);
    info = query_one(c);
    g_assert_cmpint(qdict_get_int(info, "kbs-rate-limited"), ==, 2);
    g_assert_cmpint(qdict_get_int(info, "kbs-requests"), ==, 1);
    qobject_unref(info);
    /* the counter moves with the VM */
    d = coca_incoming(obj, ",kbs=kbs0", log);
    g_assert_true(coca_migrate(c, d));
    info = query_one(d);
    g_assert_cmpint(qdict_get_int(info, "kbs-rate-limited"), ==, 2);
    qobject_unref(info);
    coca_stop(c);
    coca_stop(d);
    unlink(log);
}

/* Session ids are random: neither sequential nor the same per boot */
static void test_kbs_session_ids(void)
{
    const char *url = kbs_env("COCA_KBS_URL");
    uint32_t a[4], b;
    Coca *c, *d;
    int i, j;

    if (!url) {
        return;
    }
    c = kbs_ready(url, ",max-sessions=4", "-seed 7");
    d = kbs_ready(url, NULL, "-seed 7");
    for (i = 0; i < 4; i++) {
        a[i] = kbs_open(c, COCA_STATUS_OK);
        for (j = 0; j < i; j++) {
            g_assert_cmpuint(a[i], !=, a[j]);
            g_assert_cmpuint(a[i], !=, a[j] + 1);
        }
    }
    b = kbs_open(d, COCA_STATUS_OK);
    g_assert_cmpuint(b, !=, a[0]);
    /* a closed id does not come back as the next one */
    g_assert_cmpuint(kbs_close(c, a[3]), ==, COCA_STATUS_OK);
    g_assert_cmpuint(kbs_open(c, COCA_STATUS_OK), !=, a[3]);
    coca_stop(c);
    coca_stop(d);
}

/* Proxies only when configured; plain HTTP only with allow-http */
static void test_kbs_transport(void)
{
    static const char *const vars[] = {
        "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
        "all_proxy", "ALL_PROXY",
    };
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree char *log = log_path("transport");
    g_autofree char *obj = NULL;
    uint32_t s;
    KbsReply r;
    Coca *c;
    size_t i;

    if (!url) {
        return;
    }
    kbs_faults(NULL);
    /* a proxy in QEMU's environment that would swallow everything */
    for (i = 0; i < ARRAY_SIZE(vars); i++) {
        g_setenv(vars[i], "http://127.0.0.1:1", true);
    }
    g_unsetenv("no_proxy");
    g_unsetenv("NO_PROXY");
    obj = g_strdup_printf("-object coco-attest-kbs,id=kbs0,allow-http=on,"
                          "url=%s 2>%s", url, log);
    c = coca_start_with("q35", obj, ",kbs=kbs0");
    for (i = 0; i < ARRAY_SIZE(vars); i++) {
        g_unsetenv(vars[i]);
    }
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    s = kbs_open(c, COCA_STATUS_OK);
    kbs_auth_ok(c, s);
    coca_stop(c);
    g_assert_true(log_has(log, "is plain HTTP (allow-http=on)"));
    unlink(log);

    /* a configured proxy is used: this one is not there */
    obj = g_strdup_printf("-object coco-attest-kbs,id=kbs0,allow-http=on,"
                          "proxy=http://127.0.0.1:1,url=%s", url);
    c = coca_start_with("q35", obj, ",kbs=kbs0");
    g_assert_cmpuint(register_page(c, c->page), ==, COCA_RES_OK);
    negotiate(c, 1, 1, COCA_FEAT_ALL, COCA_STATUS_OK);
    s = kbs_open(c, COCA_STATUS_OK);
    g_assert_cmpuint(kbs_forward(c, s, COCA_KBS_POST, "/kbs/v0/auth",
                                 KBS_JSON, KBS_AUTH_BODY, &r), ==,
                     COCA_STATUS_KBS_UNREACHABLE);
    kbs_reply_clear(&r);
    coca_stop(c);
}

/* coco-attest-kbs's properties are fixed once it exists, and listed */
static void test_kbs_properties(void)
{
    static const char *const props[] = {
        "url", "tls-creds", "proxy", "allow-http", "connect-timeout",
        "timeout", "max-response", "max-sessions", "session-timeout",
        "rate", "burst", NULL,
    };
    const char *url = kbs_env("COCA_KBS_URL");
    Coca *c;

    if (!url) {
        return;
    }
    c = kbs_ready(url, NULL, NULL);
    assert_fixed(c, "kbs0", "url", "'http://elsewhere'");
    assert_fixed(c, "kbs0", "timeout", "1");
    assert_fixed(c, "kbs0", "max-sessions", "64");
    assert_fixed(c, "kbs0", "rate", "1");
    assert_fixed(c, "kbs0", "allow-http", "false");
    assert_fixed(c, "kbs0", "proxy", "'http://p:3128'");
    coca_stop(c);
    assert_help_lists("coco-attest-kbs", props);
}

/*
 * S3 with a KBS exchange pending, on either channel: its answer arrives
 * while the VM is suspended, is delivered then (not parked), and is
 * there after wakeup; the session survives the suspend.
 */
static void test_power_s3_kbs(const void *data)
{
    bool port = GPOINTER_TO_INT(data);
    const char *url = kbs_env("COCA_KBS_URL");
    g_autofree char *tail = g_strconcat("/kbs/v0/auth", KBS_JSON,
                                        KBS_AUTH_BODY, NULL);
    struct coca_kbs_forward_req h = {
        .method = cpu_to_le16(COCA_KBS_POST),
        .path_len = cpu_to_le16(12),
        .ctype_len = cpu_to_le16(strlen(KBS_JSON)),
        .body_len = cpu_to_le32(strlen(KBS_AUTH_BODY)),
    };
    g_autofree uint8_t *req = NULL, *resp = NULL;
    QDict *info;
    uint32_t s;
    Coca *c;
    Msg m;
    int i;

    if (!url) {
        return;
    }
    kbs_faults(NULL);
    c = kbs_ready(url, NULL, NULL);
    s = kbs_open(c, COCA_STATUS_OK);
    h.session = cpu_to_le32(s);
    m = msg_new(c, COCA_OP_KBS_FORWARD, sizeof(h) + strlen(tail));
    req = g_malloc(m.req_len);
    memcpy(req, &h, sizeof(h));
    memcpy(req + sizeof(h), tail, strlen(tail));
    kbs_faults("{\"delay\": 1}");
    if (port) {
        g_assert_cmpuint(port_send(c, &m, req, m.req_len, 0), ==,
                         COCA_RES_OK);
    } else {
        g_assert_cmpuint(page_req(c, &m, req, m.req_len), ==,
                         COCA_STATUS_PENDING);
    }
    s3_suspend(c);
    kbs_faults(NULL);
    /* the answer comes while the VM sleeps */
    for (i = 0; i < 5000 && (rd(c, COCA_REG_STATUS) & COCA_STS_BUSY); i++) {
        g_usleep(1000);
    }
    assert_run_status(c, "suspended");
    g_assert_cmphex(rd(c, COCA_REG_STATUS) & (COCA_STS_BUSY | COCA_STS_DONE),
                    ==, COCA_STS_DONE);
    s3_wakeup(c);
    if (port) {
        resp = port_recv(c, &m);
    } else {
        m = page_wait(c);
        g_assert_cmpuint(cmd(c, COCA_CMD_ACK), ==, COCA_RES_OK);
    }
    g_assert_cmpuint(m.status, ==, COCA_STATUS_OK);
    info = query_one(c);
    g_assert_cmpint(qdict_get_int(info, "kbs-sessions"), ==, 1);
    g_assert_cmpint(qdict_get_int(info, "dropped"), ==, 0);
    qobject_unref(info);
    kbs_auth_ok(c, s);
    coca_stop(c);
}
#endif /* CONFIG_CURL */

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);

    qtest_add_func("/coco-attest/crc32c-vector", test_crc_vector);
    qtest_add_data_func("/coco-attest/probe/q35", "q35", test_probe);
    qtest_add_data_func("/coco-attest/probe/pc", "pc", test_probe);
    qtest_add_func("/coco-attest/iobase", test_iobase);
    qtest_add_func("/coco-attest/fw-cfg", test_fw_cfg);
    qtest_add_func("/coco-attest/acpi", test_acpi);
    qtest_add_func("/coco-attest/bad-properties", test_bad_properties);
    qtest_add_func("/coco-attest/realize/overlap-fwcfg", test_overlap_fwcfg);
    qtest_add_func("/coco-attest/realize/overlap-pci", test_overlap_pci);
    qtest_add_func("/coco-attest/realize/overlap-com1", test_overlap_com1);
    qtest_add_func("/coco-attest/realize/irq-com1", test_irq_com1);
    qtest_add_func("/coco-attest/realize/irq-builtin", test_irq_builtin);
    qtest_add_func("/coco-attest/realize/free", test_realize_free);
    qtest_add_func("/coco-attest/query-empty", test_query_empty);
    qtest_add_func("/coco-attest/negotiate", test_negotiate);
    qtest_add_func("/coco-attest/pinned-features", test_pinned_features);
    qtest_add_func("/coco-attest/page-echo", test_page_echo);
    qtest_add_func("/coco-attest/port-echo", test_port_echo);
    qtest_add_func("/coco-attest/large-object", test_large_object);
    qtest_add_func("/coco-attest/async/poll", test_async_poll);
    qtest_add_func("/coco-attest/async/irq", test_async_irq);
    qtest_add_func("/coco-attest/async/busy", test_busy);
    qtest_add_func("/coco-attest/async/reset", test_reset_pending);
    qtest_add_func("/coco-attest/bad/page", test_bad_page);
    qtest_add_func("/coco-attest/bad/header", test_bad_header);
    qtest_add_func("/coco-attest/bad/payload", test_bad_payload);
    qtest_add_func("/coco-attest/bad/port", test_bad_port);
    qtest_add_func("/coco-attest/bad/access-size", test_access_size);
    qtest_add_func("/coco-attest/events/guest-error",
                   test_guest_error_event);
#ifdef CONFIG_GNUTLS
    qtest_add_func("/coco-attest/ca/identity", test_ca_identity);
    qtest_add_func("/coco-attest/ca/certify-ak", test_ca_certify_ak);
    qtest_add_func("/coco-attest/ca/bad-csr", test_ca_bad_csr);
    qtest_add_func("/coco-attest/ca/rate-limit", test_ca_rate_limit);
    qtest_add_func("/coco-attest/ca/ek-cert", test_ca_ek_cert);
    qtest_add_func("/coco-attest/ca/certify-ek", test_ca_certify_ek);
    qtest_add_func("/coco-attest/ca/bad-ek", test_ca_bad_ek);
    qtest_add_func("/coco-attest/ca/tpm-ak", test_ca_tpm_ak);
    qtest_add_func("/coco-attest/ca/gce", test_ca_gce);
    qtest_add_func("/coco-attest/ca/feature", test_ca_feature);
    qtest_add_func("/coco-attest/ca/startup-errors", test_ca_startup_errors);
    qtest_add_func("/coco-attest/ca/missing-dir", test_ca_missing_dir);
    qtest_add_func("/coco-attest/ca/uuid", test_ca_uuid);
    qtest_add_func("/coco-attest/ca/renew", test_ca_renew);
#endif
    qtest_add_func("/coco-attest/migration/idle", test_migration_idle);
    qtest_add_func("/coco-attest/migration/port-stream",
                   test_migration_port_stream);
    qtest_add_func("/coco-attest/migration/pending", test_migration_pending);
    qtest_add_func("/coco-attest/migration/fewer-features",
                   test_migration_fewer_features);
    qtest_add_func("/coco-attest/migration/corrupt", test_migration_corrupt);
    qtest_add_func("/coco-attest/migration/page-remapped",
                   test_migration_page_remapped);
    qtest_add_func("/coco-attest/migration/corrupt-port",
                   test_migration_corrupt_port);
    qtest_add_func("/coco-attest/migration/port-odd",
                   test_migration_port_odd);
    qtest_add_func("/coco-attest/migration/matrix", test_migration_matrix);
    qtest_add_data_func("/coco-attest/power/s3-page", GINT_TO_POINTER(0),
                        test_power_s3);
    qtest_add_data_func("/coco-attest/power/s3-port", GINT_TO_POINTER(1),
                        test_power_s3);
    qtest_add_data_func("/coco-attest/power/stop-cont-page",
                        GINT_TO_POINTER(0), test_power_stop_cont);
    qtest_add_data_func("/coco-attest/power/stop-cont-port",
                        GINT_TO_POINTER(1), test_power_stop_cont);
    qtest_add_data_func("/coco-attest/power/reset-page", GINT_TO_POINTER(0),
                        test_power_reset);
    qtest_add_data_func("/coco-attest/power/reset-port", GINT_TO_POINTER(1),
                        test_power_reset);
    qtest_add_data_func("/coco-attest/power/quit-page", GINT_TO_POINTER(0),
                        test_power_quit);
    qtest_add_data_func("/coco-attest/power/quit-port", GINT_TO_POINTER(1),
                        test_power_quit);
    qtest_add_func("/coco-attest/power/reset-no-stacking",
                   test_power_reset_no_stacking);
    qtest_add_func("/coco-attest/confidential-guest",
                   test_confidential_guest);
#ifdef CONFIG_GNUTLS
    qtest_add_func("/coco-attest/ca/csr-policy-first",
                   test_ca_csr_policy_first);
    qtest_add_func("/coco-attest/ca/properties", test_ca_properties);
    qtest_add_func("/coco-attest/ca/nonce-seed", test_ca_nonce_seed);
    qtest_add_func("/coco-attest/ca/nonce-migration",
                   test_ca_nonce_migration);
#endif
#ifdef CONFIG_CURL
    qtest_add_func("/coco-attest/migration/kbs-session",
                   test_migration_kbs_session);
    qtest_add_func("/coco-attest/migration/kbs-pending",
                   test_migration_kbs_pending);
    qtest_add_func("/coco-attest/kbs/config", test_kbs_config);
    qtest_add_func("/coco-attest/kbs/sessions", test_kbs_sessions);
    qtest_add_func("/coco-attest/kbs/cookies", test_kbs_cookies);
    qtest_add_func("/coco-attest/kbs/bad-request", test_kbs_bad_request);
    qtest_add_func("/coco-attest/kbs/faults", test_kbs_faults);
    qtest_add_func("/coco-attest/kbs/tls", test_kbs_tls);
    qtest_add_func("/coco-attest/kbs/expiry", test_kbs_expiry);
    qtest_add_func("/coco-attest/kbs/pending", test_kbs_pending);
    qtest_add_func("/coco-attest/kbs/startup-errors", test_kbs_startup_errors);
    qtest_add_func("/coco-attest/kbs/rate-limit", test_kbs_rate_limit);
    qtest_add_func("/coco-attest/kbs/session-ids", test_kbs_session_ids);
    qtest_add_func("/coco-attest/kbs/transport", test_kbs_transport);
    qtest_add_func("/coco-attest/kbs/properties", test_kbs_properties);
    qtest_add_data_func("/coco-attest/power/s3-kbs-page", GINT_TO_POINTER(0),
                        test_power_s3_kbs);
    qtest_add_data_func("/coco-attest/power/s3-kbs-port", GINT_TO_POINTER(1),
                        test_power_s3_kbs);
#endif

    return g_test_run();
}
