/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * Benchmark (not a test): provisioning instance directories in-process,
 * as the libvirt hook does, with the library coco-attest-provision uses.
 *
 *   bench-provision CA_DIR WORK_DIR COUNT
 *
 * Prints the median milliseconds per instance.
 */

#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "provision.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    CocaClaims c = {
        .project_id = "bench", .project_number = 1, .zone = "z",
        .instance_name = "vm", .instance_id = "1", .validity_hours = 24,
    };
    CocaCa ca;
    double *t;
    int n, i;

    if (argc != 4 || (n = atoi(argv[3])) < 1) {
        fprintf(stderr, "usage: bench-provision CA_DIR WORK_DIR COUNT\n");
        return 2;
    }
    ca.cert_path = g_build_filename(argv[1], "ca.crt", NULL);
    ca.key_uri = g_build_filename(argv[1], "ca.key", NULL);
    t = g_new(double, n);
    for (i = 0; i < n; i++) {
        g_autofree char *dir = g_strdup_printf("%s/i%d", argv[2], i);
        GError *err = NULL;
        double t0 = now();

        if (!coca_provision(&ca, dir, &c, (gid_t)-1, NULL, 0, &err)) {
            fprintf(stderr, "%s\n", err->message);
            return 1;
        }
        t[i] = now() - t0;
    }
    qsort(t, n, sizeof(*t), cmp);
    printf("%.3f\n", t[n / 2] * 1000);
    return 0;
}
