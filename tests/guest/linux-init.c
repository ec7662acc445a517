/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * /init of the Linux end-to-end test guest: runs coco-attest-guest the way
 * a user would, checks each result, prints it on the console and reports
 * the verdict through isa-debug-exit (QEMU exit status 33 = pass).
 */

#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

/*
 * Run the tool with argv and check it: exit 0 and, if given, expect in its
 * output; or with must_fail, a non-zero exit with expect in its output.
 * The output is stdout, and stderr too with with_stderr.
 */
static void run_ex(const char *what, const char *expect, int must_fail,
                   int with_stderr, char *const argv[])
{
    static char out[32768];
    int pipefd[2], status = -1, ok;
    ssize_t n, len = 0;
    pid_t pid;

    if (pipe(pipefd) < 0) {
        perror("pipe");
        failures++;
        return;
    }
    pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        if (with_stderr) {
            dup2(pipefd[1], 2);
        }
        close(pipefd[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], out + len, sizeof(out) - 1 - len)) > 0) {
        len += n;
    }
    out[len] = 0;
    close(pipefd[0]);
    waitpid(pid, &status, 0);
    printf("%s", out);
    if (must_fail) {
        ok = WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
             WEXITSTATUS(status) != 127 && (!expect || strstr(out, expect));
    } else {
        ok = WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
             (!expect || strstr(out, expect));
    }
    if (!ok) {
        printf("FAIL: %s\n", what);
        failures++;
    } else {
        printf("PASS: %s\n", what);
    }
    fflush(stdout);
}

/* Run the tool with argv, require exit 0 and, if given, text in stdout. */
static void run(const char *what, const char *expect, char *const argv[])
{
    run_ex(what, expect, 0, 0, argv);
}

static char *cmdline_value(const char *key)
{
    static char buf[4096];
    char *p;
    FILE *f = fopen("/proc/cmdline", "r");

    if (!f || !fgets(buf, sizeof(buf), f)) {
        return NULL;
    }
    fclose(f);
    p = strstr(buf, key);
    if (!p) {
        return NULL;
    }
    p += strlen(key);
    if (*p == '"') {
        /* key="value with spaces" */
        p++;
        p[strcspn(p, "\"\n")] = 0;
        return p;
    }
    p[strcspn(p, " \n")] = 0;
    return p;
}

/* A copy of a command-line value (cmdline_value() reuses its buffer) */
static char *cmdline_dup(const char *key)
{
    char *v = cmdline_value(key);

    return v ? strdup(v) : NULL;
}

/*
 * KBS forwarding, with coca.kbs=REPO/TYPE/TAG: the guest attests to the
 * KBS through the device and fetches the secret, printing only its
 * SHA-256.  coca.kbs.curve=p521 and coca.kbs.progress add --curve p521
 * and --progress; coca.kbs.expect=TEXT (quote it for spaces) makes it a
 * negative test: the run must fail with TEXT in its output.
 */
static void kbs_checks(void)
{
    char *res = cmdline_dup("coca.kbs=");
    char *mem = cmdline_dup("coca.mem=");
    char *curve = cmdline_dup("coca.kbs.curve=");
    char *expect = cmdline_dup("coca.kbs.expect=");
    int progress = cmdline_value("coca.kbs.progress") != NULL;
    char *a[16], what[512];
    int n = 0;

    if (!res) {
        free(mem);
        free(curve);
        free(expect);
        return;
    }
    a[n++] = "/coco-attest-guest";
    if (mem) {
        a[n++] = "-m";
        a[n++] = mem;
    }
    a[n++] = "kbs";
    a[n++] = "get";
    a[n++] = res;
    a[n++] = "--sha256";
    if (curve) {
        a[n++] = "--curve";
        a[n++] = curve;
    }
    if (progress) {
        a[n++] = "--progress";
    }
    a[n] = NULL;
    if (expect) {
        snprintf(what, sizeof(what), "KBS request for %s refused as "
                 "expected (%s)", res, expect);
        run_ex(what, expect, 1, 1, a);
    } else {
        snprintf(what, sizeof(what), "KBS secret %s fetched through the "
                 "device and decrypted in the guest%s%s", res,
                 curve ? " with " : "", curve ? curve : "");
        /* exit 0 comes only after the secret's line */
        run_ex(what, progress ? "kbs: progress baseline="
                              : "kbs secret sha256=", 0, 1, a);
    }
    free(res);
    free(mem);
    free(curve);
    free(expect);
}

int main(void)
{
    char *mem;
    int fd;

    mkdir("/dev", 0755);
    mkdir("/proc", 0755);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
    mount("proc", "/proc", "proc", 0, NULL);
    fd = open("/dev/console", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    mem = cmdline_value("coca.mem=");
    printf("coco-attest Linux guest: memmap region %s\n", mem ? mem : "none");

    {
        char *a[] = { "/coco-attest-guest", "probe", NULL };
        run("probe (port I/O from user space)", "transport=1.0", a);
    }
    {
        char *a[] = { "/coco-attest-guest", "negotiate", NULL };
        run("negotiate over the port channel", "negotiated version=1", a);
    }
    {
        char *a[] = { "/coco-attest-guest", "-c", "port", "echo", "3000",
                      NULL };
        run("echo over the port channel", "channel=port", a);
    }
    if (mem) {
        char *a1[] = { "/coco-attest-guest", "-m", mem, "echo", "1000",
                       NULL };
        char *a2[] = { "/coco-attest-guest", "-m", mem, "echo", "65528",
                       NULL };
        char *a3[] = { "/coco-attest-guest", "-m", mem, "-a", "echo", "100",
                       NULL };
        char *a4[] = { "/coco-attest-guest", "-m", mem, "negotiate", NULL };

        run("negotiate over the page channel", "negotiated version=1", a4);
        run("echo over the page channel", "channel=page", a1);
        run("echo 64 KiB through the external buffer",
            "channel=page+ext-buf", a2);
        run("asynchronous echo over the page channel", "echo ok", a3);
    } else {
        printf("FAIL: no coca.mem= on the kernel command line\n");
        failures++;
    }

    if (cmdline_value("coca.ca")) {
        char *a1[] = { "/coco-attest-guest", "identity", NULL };
        char *a2[] = { "/coco-attest-guest", "ek-certify", "-r", "/root.crt",
                       NULL };
        char *a3[] = { "/coco-attest-guest", "ek-cert", "-r", "/root.crt",
                       "-o", "-", NULL };
        char *a4[] = { "/coco-attest-guest", "ak-certify", "--tpm", "-r",
                       "/root.crt", "-o", "-", NULL };

        run("identity claims", "identity project-id=", a1);
        /* like a vTPM: certify the EK on first boot only */
        if (!cmdline_value("coca.reboot")) {
            run("EK certified at first boot, chain verified in the guest",
                "ek chain verified", a2);
        }
        run("EK certificate fetched, chain verified in the guest",
            "ek chain verified", a3);
        run("AK certified (CSR and TPM-native), chains verified",
            "ak-tpm chain verified", a4);
    }
    kbs_checks();
    printf("coco-attest Linux guest: %s (%d failures)\n",
           failures ? "FAIL" : "PASS", failures);
    fflush(stdout);
    if (cmdline_value("coca.hold")) {
        /* the demo inspects the VM through QMP, then quits QEMU */
        for (;;) {
            pause();
        }
    }
    if (ioperm(0xf4, 1, 1) == 0) {
        outb(failures ? 0x11 : 0x10, 0xf4);
    }
    reboot(RB_POWER_OFF);  /* if isa-debug-exit is missing */
    return 0;
}
