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

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "coco-attest/guest.h"
#include "kbs-client.h"

#define LIST_MAX    (32 * 1024)

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
"  identity              the platform identity the host asserts\n"
"  ek-cert               fetch the EK certificate (--nv) and its chain\n"
"  ek-certify            generate an EK (ECC P-256) and have it certified\n"
"  ak-certify            generate an AK (ECC P-256), certify it with a CSR\n"
"                        and, with --tpm, also in the TPM-native form\n"
"  kbs config            the host's KBS forwarding configuration\n"
"  kbs get REPO/TYPE/TAG attest to the KBS through the device (Trustee\n"
"                        protocol, sample TEE) and fetch a secret; it is\n"
"                        decrypted here and written to stdout (or -o FILE)\n"
"\n"
"options:\n"
"  -m, --mem PHYS        memmap=-reserved guest-physical memory (at least\n"
"                        68 KiB) for the page channel; without it only the\n"
"                        port channel is used\n"
"  -c, --channel CH      page or port (default: page with --mem, else port)\n"
"  -a, --async           ask for asynchronous completion (ECHO)\n"
"  -p, --iobase PORT     device I/O base (default: from fw_cfg)\n"
"  -n, --nv INDEX        EK NV index (default 0x01c0000a, ECC P-256)\n"
"  -r, --root FILE       verify returned chains against this root (PEM)\n"
"  -o, --out DIR         write returned certificates there (PEM; '-':\n"
"                        print them); kbs get: the file for the secret\n"
"      --curve CRV       kbs get: ephemeral key p256 (default) or p521\n"
"      --sha256          kbs get: print only the secret's SHA-256\n"
"      --progress        kbs get: measure vCPU progress while the host\n"
"                        forwards (baseline vs pending work rate)\n"
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

/* Verify a certificate list against the root; print and save it. */
static int check_list(const uint8_t *list, uint32_t len, const char *root,
                      const char *out_dir, const char *name)
{
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    STACK_OF(X509) *rest = sk_X509_new_null();
    X509 *leaf = NULL;
    int n, i, rc = 1;

    n = coca_cert_list_get(list, len, 0, NULL, NULL);
    if (n < 0) {
        fprintf(stderr, "coco-attest-guest: malformed certificate list\n");
        goto out;
    }
    for (i = 0; i < n; i++) {
        const uint8_t *der, *p;
        uint32_t dl;
        X509 *x;

        coca_cert_list_get(list, len, i, &der, &dl);
        p = der;
        x = d2i_X509(NULL, &p, dl);
        if (!x || p != der + dl) {
            fprintf(stderr, "coco-attest-guest: certificate %d is not "
                    "DER X.509\n", i);
            X509_free(x);
            goto out;
        }
        if (out_dir && !strcmp(out_dir, "-")) {
            printf("%s certificate %d (PEM):\n", name, i);
            PEM_write_X509(stdout, x);
        } else if (out_dir) {
            char path[512];
            FILE *f;

            snprintf(path, sizeof(path), "%s/%s-%d.pem", out_dir, name, i);
            f = fopen(path, "w");
            if (f) {
                PEM_write_X509(f, x);
                fclose(f);
            }
        }
        if (i == 0) {
            leaf = x;
        } else {
            sk_X509_push(rest, x);
        }
    }
    {
        char subj[256] = "";
        GENERAL_NAMES *san = X509_get_ext_d2i(leaf, NID_subject_alt_name,
                                              NULL, NULL);

        X509_NAME_oneline(X509_get_subject_name(leaf), subj, sizeof(subj));
        printf("%s certificate: subject=%s", name, subj[0] ? subj : "(empty)");
        if (san && sk_GENERAL_NAME_num(san) > 0) {
            GENERAL_NAME *g = sk_GENERAL_NAME_value(san, 0);

            if (g->type == GEN_URI) {
                printf(" uri=%s", (const char *)ASN1_STRING_get0_data(
                           g->d.uniformResourceIdentifier));
            } else if (g->type == GEN_DIRNAME) {
                X509_NAME_oneline(g->d.directoryName, subj, sizeof(subj));
                printf(" san-dirname=%s", subj);
            }
        }
        GENERAL_NAMES_free(san);
        printf(" chain=%d\n", n);
    }
    if (root) {
        FILE *f = fopen(root, "r");
        X509 *r = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;

        if (f) {
            fclose(f);
        }
        store = X509_STORE_new();
        ctx = X509_STORE_CTX_new();
        if (!r || !store || !ctx || !X509_STORE_add_cert(store, r) ||
            !X509_STORE_CTX_init(ctx, store, leaf, rest)) {
            fprintf(stderr, "coco-attest-guest: cannot load %s\n", root);
            X509_free(r);
            goto out;
        }
        X509_free(r);
        if (X509_verify_cert(ctx) != 1) {
            fprintf(stderr, "coco-attest-guest: %s chain: %s\n", name,
                    X509_verify_cert_error_string(
                        X509_STORE_CTX_get_error(ctx)));
            goto out;
        }
        printf("%s chain verified against %s\n", name, root);
    }
    rc = 0;
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(leaf);
    sk_X509_pop_free(rest, X509_free);
    return rc;
}

static EVP_PKEY *new_p256(void)
{
    return EVP_EC_gen("P-256");
}

/* TPM2B of a big-endian integer, fixed to size bytes */
static void put_2b(uint8_t **p, const BIGNUM *bn, int size)
{
    (*p)[0] = size >> 8;
    (*p)[1] = size;
    BN_bn2binpad(bn, *p + 2, size);
    *p += 2 + size;
}

static void put_be16(uint8_t **p, uint16_t v)
{
    (*p)[0] = v >> 8;
    (*p)[1] = v;
    *p += 2;
}

/*
 * The TPM-native AK proof a vTPM would produce: TPMT_PUBLIC of the P-256
 * key, then TPMT_SIGNATURE (ECDSA, SHA-256) over SHA-256(nonce).
 */
static int tpm_proof(EVP_PKEY *key, const uint8_t *nonce, uint8_t *out,
                     uint32_t *len)
{
    BIGNUM *x = NULL, *y = NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned char sig[80];
    const unsigned char *sp = sig;
    size_t slen = sizeof(sig);
    ECDSA_SIG *es = NULL;
    uint8_t *p = out;
    int ok = 0;

    if (!EVP_PKEY_get_bn_param(key, "qx", &x) ||
        !EVP_PKEY_get_bn_param(key, "qy", &y) || !md ||
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, sig, &slen, nonce, COCA_NONCE_SIZE) != 1 ||
        !(es = d2i_ECDSA_SIG(NULL, &sp, slen))) {
        goto out;
    }
    put_be16(&p, 0x0023);           /* TPM_ALG_ECC */
    put_be16(&p, 0x000b);           /* SHA-256 */
    put_be16(&p, 0x0005);           /* objectAttributes (restricted sign) */
    put_be16(&p, 0x0072);
    put_be16(&p, 0);                /* authPolicy */
    put_be16(&p, 0x0010);           /* symmetric NULL */
    put_be16(&p, 0x0018);           /* ECDSA */
    put_be16(&p, 0x000b);
    put_be16(&p, 0x0003);           /* NIST P-256 */
    put_be16(&p, 0x0010);           /* kdf NULL */
    put_2b(&p, x, 32);
    put_2b(&p, y, 32);
    put_be16(&p, 0x0018);           /* TPMT_SIGNATURE: ECDSA, SHA-256 */
    put_be16(&p, 0x000b);
    put_2b(&p, ECDSA_SIG_get0_r(es), 32);
    put_2b(&p, ECDSA_SIG_get0_s(es), 32);
    *len = p - out;
    ok = 1;
out:
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(md);
    BN_free(x);
    BN_free(y);
    return ok;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "mem", required_argument, NULL, 'm' },
        { "channel", required_argument, NULL, 'c' },
        { "async", no_argument, NULL, 'a' },
        { "iobase", required_argument, NULL, 'p' },
        { "verbose", no_argument, NULL, 'v' },
        { "nv", required_argument, NULL, 'n' },
        { "root", required_argument, NULL, 'r' },
        { "out", required_argument, NULL, 'o' },
        { "tpm", no_argument, NULL, 't' },
        { "curve", required_argument, NULL, 'C' },
        { "sha256", no_argument, NULL, 'S' },
        { "progress", no_argument, NULL, 'P' },
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
    uint32_t flags = 0, nv = COCA_NV_EK_ECC_P256;
    const char *cmd, *root = NULL, *out_dir = NULL;
    int tpm = 0;
    struct kbs_get_opts kbs = { .curve = "P-256" };
    char *end;
    int c, err;

    while ((c = getopt_long(argc, argv, "m:c:ap:vhn:r:o:t", opts,
                            NULL)) != -1) {
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
        case 'n':
            nv = strtoul(optarg, &end, 0);
            break;
        case 'r':
            root = optarg;
            break;
        case 'o':
            out_dir = optarg;
            break;
        case 't':
            tpm = 1;
            break;
        case 'C':
            kbs.curve = kbs_curve_name(optarg);
            if (!kbs.curve) {
                fprintf(stderr, "coco-attest-guest: --curve is p256 or "
                        "p521\n");
                return 2;
            }
            break;
        case 'S':
            kbs.sha256 = 1;
            break;
        case 'P':
            kbs.progress = 1;
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
    if (!strcmp(cmd, "kbs")) {
        const char *sub = optind + 1 < argc ? argv[optind + 1] : "";

        if (!strcmp(sub, "config") && optind + 2 == argc) {
            kbs.resource = NULL;
        } else if (!strcmp(sub, "get") && optind + 3 == argc) {
            kbs.resource = argv[optind + 2];
            kbs.out = out_dir;
            if (!kbs_resource_ok(kbs.resource)) {
                fprintf(stderr, "coco-attest-guest: the resource must be "
                        "REPO/TYPE/TAG, each of [A-Za-z0-9._-]\n");
                return 2;
            }
        } else {
            usage(stderr);
            return 2;
        }
        /* KBS requests pend for long: --progress works while they do */
        ops.relax = kbs_relax;
    }

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
    if (!strcmp(cmd, "kbs")) {
        return kbs.resource ? kbs_cmd_get(&dev, &kbs) : kbs_cmd_config(&dev);
    }
    if (!strcmp(cmd, "identity")) {
        struct coca_identity id;

        err = coca_get_identity(&dev, &id);
        if (err) {
            return fail("identity", err, &dev);
        }
        printf("identity project-id=%s project-number=%" PRIu64 " zone=%s "
               "instance-name=%s instance-id=%s oid=%s\n", id.project_id,
               id.project_number, id.zone, id.instance_name, id.instance_id,
               id.oid);
        return 0;
    }
    if (!strcmp(cmd, "ek-cert") || !strcmp(cmd, "ek-certify") ||
        !strcmp(cmd, "ak-certify")) {
        static uint8_t list[LIST_MAX];
        uint32_t len = 0;

        if (!strcmp(cmd, "ek-cert")) {
            err = coca_get_ek_cert(&dev, nv, list, sizeof(list), &len);
            if (err) {
                return fail("ek-cert", err, &dev);
            }
            return check_list(list, len, root, out_dir, "ek");
        }
        if (!strcmp(cmd, "ek-certify")) {
            EVP_PKEY *ek = new_p256();
            unsigned char *spki = NULL;
            int n = ek ? i2d_PUBKEY(ek, &spki) : -1;

            if (n <= 0) {
                fprintf(stderr, "coco-attest-guest: cannot make a key\n");
                return 1;
            }
            err = coca_certify_ek(&dev, COCA_NV_EK_ECC_P256,
                                  COCA_KEY_FORMAT_SPKI, spki, n, list,
                                  sizeof(list), &len);
            OPENSSL_free(spki);
            EVP_PKEY_free(ek);
            if (err) {
                return fail("ek-certify", err, &dev);
            }
            return check_list(list, len, root, out_dir, "ek");
        }
        /* ak-certify: a CSR, whose signature proves possession */
        {
            EVP_PKEY *ak = new_p256();
            X509_REQ *req = X509_REQ_new();
            unsigned char *der = NULL;
            int n;

            if (!ak || !req || !X509_REQ_set_pubkey(req, ak) ||
                !X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req),
                                            "CN", MBSTRING_UTF8,
                                            (const unsigned char *)"ak", -1,
                                            -1, 0) ||
                !X509_REQ_sign(req, ak, EVP_sha256()) ||
                (n = i2d_X509_REQ(req, &der)) <= 0) {
                fprintf(stderr, "coco-attest-guest: cannot make a CSR\n");
                return 1;
            }
            X509_REQ_free(req);
            err = coca_certify_ak(&dev, COCA_AK_FORMAT_CSR, der, n, list,
                                  sizeof(list), &len);
            OPENSSL_free(der);
            if (err) {
                EVP_PKEY_free(ak);
                return fail("ak-certify (CSR)", err, &dev);
            }
            if (check_list(list, len, root, out_dir, "ak")) {
                EVP_PKEY_free(ak);
                return 1;
            }
            if (tpm) {
                uint8_t nonce[COCA_NONCE_SIZE], proof[512];
                uint32_t plen;

                err = coca_get_nonce(&dev, nonce);
                if (err) {
                    EVP_PKEY_free(ak);
                    return fail("nonce", err, &dev);
                }
                if (!tpm_proof(ak, nonce, proof, &plen)) {
                    EVP_PKEY_free(ak);
                    fprintf(stderr, "coco-attest-guest: cannot sign\n");
                    return 1;
                }
                err = coca_certify_ak(&dev, COCA_AK_FORMAT_TPM, proof, plen,
                                      list, sizeof(list), &len);
                if (err) {
                    EVP_PKEY_free(ak);
                    return fail("ak-certify (TPM form)", err, &dev);
                }
                if (check_list(list, len, root, out_dir, "ak-tpm")) {
                    EVP_PKEY_free(ak);
                    return 1;
                }
            }
            EVP_PKEY_free(ak);
            return 0;
        }
    }
    usage(stderr);
    return 2;
}
