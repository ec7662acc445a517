/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Fuzz target for the coco-attest device: the guest-facing surface, its
 * I/O ports and request page, driven the way a hostile guest would.
 *
 * Every input starts from a registered page and a negotiation of all the
 * features, so that each command is reachable; then it is a sequence of
 * actions: a request on the page channel (a command from the ABI or any
 * other, the header mutated at will, a payload inline or in an external
 * buffer), the same streamed over the port channel, raw register reads
 * and writes, writes into shared memory while a request is pending,
 * virtual time, and a migration: the VM stops, the device's state is
 * saved, the device is reset as a fresh destination's would be, the
 * state is loaded back and the VM runs again.  The device must always
 * save what it holds and load what it saved, so that a validator that
 * disagrees with a state the device can reach is found here.  The
 * machine is reset after each input.
 *
 * The backends are deterministic: a coco-attest-ca instance directory
 * from $COCA_FUZZ_CA_DIR (identity and signing commands), a
 * coco-attest-kbs whose KBS is a closed local port.
 *
 *   QEMU_FUZZ_ARGS unset; qemu-fuzz-x86_64 --fuzz-target=coco-attest
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/crc32c.h"
#include "qemu/module.h"
#include "qapi/error.h"
#include "hw/qdev-core.h"
#include "io/channel-buffer.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"
#include "system/runstate.h"
#include "tests/qtest/libqtest.h"
#include "fuzz.h"
#include "hw/coco-attest/abi.h"

#define BASE        COCA_DEFAULT_IOBASE
#define PAGE_GPA    0x100000
#define BUF_GPA     0x200000
#define BUF_LEN     (64 * 1024)

typedef struct Input {
    const unsigned char *p;
    size_t left;
} Input;

static uint8_t take8(Input *in)
{
    if (!in->left) {
        return 0;
    }
    in->left--;
    return *in->p++;
}

static uint16_t take16(Input *in)
{
    return take8(in) | take8(in) << 8;
}

static uint32_t take32(Input *in)
{
    return take16(in) | (uint32_t)take16(in) << 16;
}

/* up to len bytes of input into buf, the rest zero */
static void take(Input *in, uint8_t *buf, size_t len)
{
    size_t n = MIN(len, in->left);

    memcpy(buf, in->p, n);
    memset(buf + n, 0, len - n);
    in->p += n;
    in->left -= n;
}

static const uint16_t commands[] = {
    COCA_OP_NEGOTIATE, COCA_OP_ECHO, COCA_OP_GET_IDENTITY,
    COCA_OP_GET_NONCE, COCA_OP_GET_EK_CERT, COCA_OP_CERTIFY_EK,
    COCA_OP_CERTIFY_AK, COCA_OP_KBS_CONFIG, COCA_OP_KBS_OPEN,
    COCA_OP_KBS_FORWARD, COCA_OP_KBS_CLOSE,
};

/* a header as a guest builds it, then broken where @mut says */
static void build_hdr(struct coca_hdr *h, Input *in, uint16_t cmd,
                      uint32_t req_len, bool ext)
{
    uint8_t mut = take8(in);

    memset(h, 0, sizeof(*h));
    h->magic = cpu_to_le32(COCA_MSG_MAGIC);
    h->version = cpu_to_le16(COCA_MSG_VERSION);
    h->command = cpu_to_le16(cmd);
    h->seq = cpu_to_le32(take32(in));
    h->status = cpu_to_le32(COCA_STATUS_NONE);
    h->req_len = cpu_to_le32(req_len);
    if (ext) {
        h->flags = cpu_to_le32(COCA_FLAG_EXT_BUF);
        h->buf_gpa = cpu_to_le64(BUF_GPA);
        h->buf_len = cpu_to_le32(BUF_LEN);
    }
    if (mut & 0x80) {
        switch (mut & 7) {
        case 0:
            h->flags = cpu_to_le32(take32(in));
            break;
        case 1:
            h->req_len = cpu_to_le32(take32(in));
            break;
        case 2:
            h->buf_gpa = cpu_to_le64((uint64_t)take32(in) << 12);
            break;
        case 3:
            h->buf_len = cpu_to_le32(take32(in));
            break;
        case 4:
            h->reserved0 = cpu_to_le32(take8(in));
            break;
        default:
            h->magic ^= cpu_to_le32(take8(in));
            break;
        }
    }
}

/* Let deferred work (thread pool, timers) finish, within bounds. */
static void settle(QTestState *s)
{
    int i;

    for (i = 0; i < 200; i++) {
        flush_events(s);
        if (!(qtest_inl(s, BASE + COCA_REG_STATUS) & COCA_STS_BUSY)) {
            return;
        }
        qtest_clock_step(s, 1000 * 1000);
        g_usleep(100);
    }
}

static void page_request(QTestState *s, Input *in, uint16_t cmd)
{
    static uint8_t payload[BUF_LEN];
    bool ext = take8(in) & 1;
    uint32_t len = take16(in) % (ext ? BUF_LEN : COCA_INLINE_MAX + 1);
    struct coca_hdr h;

    build_hdr(&h, in, cmd, len, ext);
    take(in, payload, len);
    qtest_memwrite(s, PAGE_GPA, &h, sizeof(h));
    qtest_memwrite(s, ext ? BUF_GPA : PAGE_GPA + COCA_HDR_SIZE, payload,
                   len);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_RING);
    qtest_inl(s, BASE + COCA_REG_CMD);
    if (take8(in) & 1) {
        /* the guest scribbles over shared memory while it waits */
        uint8_t junk[64];

        take(in, junk, sizeof(junk));
        qtest_memwrite(s, PAGE_GPA + take8(in), junk, sizeof(junk));
    }
    settle(s);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_ACK);
}

static void port_request(QTestState *s, Input *in, uint16_t cmd)
{
    static uint8_t msg[COCA_HDR_SIZE + 4096 + 4];
    uint32_t len = take16(in) % 4097, total, i, crc;
    bool bad_crc = take8(in) & 1;

    build_hdr((struct coca_hdr *)msg, in, cmd, len, false);
    take(in, msg + COCA_HDR_SIZE, len);
    total = ROUND_UP(COCA_HDR_SIZE + len, 4);
    memset(msg + COCA_HDR_SIZE + len, 0, total - COCA_HDR_SIZE - len);
    crc = crc32c(0xffffffff, msg, COCA_HDR_SIZE + len);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_PORT_BEGIN);
    for (i = 0; i < total; i += 4) {
        qtest_outl(s, BASE + COCA_REG_DATA, ldl_le_p(msg + i));
    }
    qtest_outl(s, BASE + COCA_REG_CRC, bad_crc ? crc ^ take32(in) : crc);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_PORT_SUBMIT);
    settle(s);
    /* read the response back, or more than there is */
    for (i = take8(in); i; i--) {
        qtest_inl(s, BASE + COCA_REG_DATA);
    }
    qtest_inl(s, BASE + COCA_REG_CRC);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_ACK);
}

static void negotiate_all(QTestState *s)
{
    struct {
        struct coca_hdr h;
        struct coca_negotiate_req r;
    } QEMU_PACKED m = {
        .h = {
            .magic = cpu_to_le32(COCA_MSG_MAGIC),
            .version = cpu_to_le16(COCA_MSG_VERSION),
            .command = cpu_to_le16(COCA_OP_NEGOTIATE),
            .status = cpu_to_le32(COCA_STATUS_NONE),
            .req_len = cpu_to_le32(sizeof(struct coca_negotiate_req)),
        },
        .r = {
            .proto_min = cpu_to_le16(COCA_PROTO_MIN),
            .proto_max = cpu_to_le16(COCA_PROTO_MAX),
            .features = cpu_to_le64(COCA_FEAT_ALL),
        },
    };

    qtest_outl(s, BASE + COCA_REG_PAGE_LO, PAGE_GPA);
    qtest_outl(s, BASE + COCA_REG_PAGE_HI, 0);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_REGISTER_PAGE);
    qtest_memwrite(s, PAGE_GPA, &m, sizeof(m));
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_RING);
    qtest_outl(s, BASE + COCA_REG_CMD, COCA_CMD_ACK);
}

/*
 * What a migration does to the device, in this process: stop, save,
 * reset (a fresh device), load, run.  Saving or loading must not fail.
 */
static void migrate_device(QTestState *s)
{
    DeviceState *dev = DEVICE(object_resolve_path_type("", "coco-attest",
                                                       NULL));
    const VMStateDescription *vmsd = DEVICE_GET_CLASS(dev)->vmsd;
    QIOChannelBuffer *bioc = qio_channel_buffer_new(4096);
    QEMUFile *out, *in;

    settle(s);
    vm_stop(RUN_STATE_PAUSED);
    out = qemu_file_new_output(QIO_CHANNEL(bioc));
    if (vmstate_save_state(out, vmsd, dev, NULL) < 0) {
        abort();
    }
    qemu_put_byte(out, QEMU_VM_EOF);
    qemu_fflush(out);
    device_cold_reset(dev);
    qio_channel_io_seek(QIO_CHANNEL(bioc), 0, SEEK_SET, &error_abort);
    in = qemu_file_new_input(QIO_CHANNEL(bioc));
    if (vmstate_load_state(in, vmsd, dev, vmsd->version_id) < 0) {
        abort();
    }
    qemu_fclose(in);
    qemu_fclose(out);
    object_unref(OBJECT(bioc));
    vm_start();
    settle(s);
}

enum {
    ACT_PAGE_REQUEST,
    ACT_PORT_REQUEST,
    ACT_REG_WRITE,
    ACT_REG_READ,
    ACT_CLOCK,
    ACT_MIGRATE,
    ACT_MAX
};

static void coca_fuzz(QTestState *s, const unsigned char *data, size_t size)
{
    Input in = { data, size };
    int actions = 0;

    negotiate_all(s);
    while (in.left && actions++ < 32) {
        uint8_t act = take8(&in);
        uint8_t sel = take8(&in);
        uint16_t cmd = sel < ARRAY_SIZE(commands) * 16 ?
                       commands[sel % ARRAY_SIZE(commands)] : take16(&in);

        switch (act % ACT_MAX) {
        case ACT_PAGE_REQUEST:
            page_request(s, &in, cmd);
            break;
        case ACT_PORT_REQUEST:
            port_request(s, &in, cmd);
            break;
        case ACT_REG_WRITE:
            qtest_outl(s, BASE + (sel % 8) * 4, take32(&in));
            break;
        case ACT_REG_READ:
            qtest_inl(s, BASE + (sel % 8) * 4);
            break;
        case ACT_CLOCK:
            qtest_clock_step(s, ((uint64_t)take16(&in) + 1) * 1000);
            break;
        case ACT_MIGRATE:
            migrate_device(s);
            break;
        }
    }
    settle(s);
    fuzz_reset(s);
}

static GString *coca_fuzz_cmdline(FuzzTarget *t)
{
    const char *ca = getenv("COCA_FUZZ_CA_DIR");
    GString *cmd = g_string_new(TARGET_NAME " -machine q35,accel=qtest "
                                "-m 64 -display none -nodefaults "
                                "-object coco-attest-kbs,id=kbs0,"
                                "url=http://127.0.0.1:1,allow-http=on,"
                                "timeout=200,rate=100000,burst=100000 ");

    if (ca) {
        g_string_append_printf(cmd, "-object coco-attest-ca,id=ca0,dir=%s,"
                               "rate=100000,burst=100000 "
                               "-device coco-attest,irq=5,kbs=kbs0,ca=ca0",
                               ca);
    } else {
        g_string_append(cmd, "-device coco-attest,irq=5,kbs=kbs0");
    }
    return cmd;
}

static void register_coco_attest_fuzz_targets(void)
{
    fuzz_add_target(&(FuzzTarget){
        .name = "coco-attest",
        .description = "Fuzz the coco-attest device through its ports and "
                       "request page, as a hostile guest",
        .get_init_cmdline = coca_fuzz_cmdline,
        .fuzz = coca_fuzz,
    });
}

fuzz_target_init(register_coco_attest_fuzz_targets);
