/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * coco-attest-kbs: forwards a confidential guest's HTTP requests to one
 * Key Broker Service (Trustee's KBS protocol, "RCAR").
 *
 *   -object tls-creds-x509,id=kbstls,dir=/etc/pki/kbs,endpoint=client
 *   -object coco-attest-kbs,id=kbs0,url=https://kbs.example:8080,
 *           tls-creds=kbstls
 *   -device coco-attest,kbs=kbs0
 *
 * The guest builds every protocol message itself, evidence included, and
 * decrypts the released secret itself: the KBS encrypts it (JWE) to a key
 * generated in the guest.  The backend only relays bytes, so that neither
 * it nor the host can bind evidence to anything or read a secret, and so
 * that a protocol change needs no VMM change.  What it does enforce is
 * where requests go: one configured KBS, and only the protocol's three
 * endpoints.
 *
 * Requests are made with libcurl's easy interface from the thread pool
 * (the device defers them), never from a vCPU or with the BQL held, with
 * connect and total timeouts and a cap on the answer.  Each guest session
 * has its own handle and so its own connection and cookie jar, which is
 * what carries the KBS's kbs-session-id.
 */

#include "qemu/osdep.h"
#include "qapi/error.h"
#include "qemu/atomic.h"
#include "qemu/error-report.h"
#include "qemu/thread.h"
#include "qemu/units.h"
#include "qom/object_interfaces.h"
#include "crypto/tlscreds.h"
#include "crypto/tlscredsx509.h"
#include "system/coco-attest-backend.h"
#include "system/coco-attest-kbs.h"
#include "hw/coco-attest/abi.h"
#include "trace.h"

#include <curl/curl.h>

#define KBS_API_PREFIX          "/kbs/v0/"
#define KBS_MAX_SESSIONS_LIMIT  64
#define KBS_CTYPE_MAX           127

struct CocoAttestKbs {
    Object parent_obj;

    /* properties */
    char *url;
    char *tls_creds;
    char *proxy;                /* NULL: no proxy, whatever the environment */
    bool allow_http;
    CocoAttestRate limit;       /* KBS_OPEN and KBS_FORWARD per minute */
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;
    uint32_t max_response;
    uint32_t max_sessions;
    uint32_t session_timeout;

    /*
     * Fixed at completion, what requests use: later property changes
     * cannot reach a request running in a worker thread.
     */
    bool ready;
    char *base;                 /* the validated url */
    uint32_t connect_ms, total_ms, max_body_in, sessions, idle_s;

    /* from tls-creds, at completion */
    char *ca_file;
    char *cert_file;
    char *key_file;
};

struct CocoAttestKbsSession {
    int refcnt;
    CocoAttestKbs *kbs;         /* referenced */
    CURL *curl;                 /* its connection and cookie jar */
    int cancelled;              /* abort the transfer (atomic) */
    /*
     * The jar as Netscape cookie-file lines: a copy taken after each
     * request, so that migration can read it while a request runs; and
     * cookies to load into a new handle (from a migration stream).
     */
    QemuMutex lock;
    char *cookies;
};

typedef struct KbsSink {
    GByteArray *body;
    size_t max;
    bool too_large;
} KbsSink;

/* ------------------------------------------------------------------ */
/* The API the guest may reach                                         */
/* ------------------------------------------------------------------ */

static bool kbs_segment_ok(const char *p, size_t len)
{
    size_t i;

    if (!len || (len == 1 && p[0] == '.') ||
        (len == 2 && p[0] == '.' && p[1] == '.')) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (!g_ascii_isalnum(p[i]) && p[i] != '.' && p[i] != '_' &&
            p[i] != '-') {
            return false;
        }
    }
    return true;
}

bool coco_attest_kbs_path_allowed(bool post, const char *path, size_t len)
{
    static const char resource[] = KBS_API_PREFIX "resource/";
    const char *p, *end = path + len;
    int segments = 0;

    if (len == strlen(KBS_API_PREFIX "auth") &&
        !memcmp(path, KBS_API_PREFIX "auth", len)) {
        return post;
    }
    if (len == strlen(KBS_API_PREFIX "attest") &&
        !memcmp(path, KBS_API_PREFIX "attest", len)) {
        return post;
    }
    if (post || len <= strlen(resource) ||
        memcmp(path, resource, strlen(resource))) {
        return false;
    }
    /* <repo>/<type>/<tag> */
    p = path + strlen(resource);
    while (p <= end) {
        const char *slash = memchr(p, '/', end - p);
        const char *seg_end = slash ? slash : end;

        if (!kbs_segment_ok(p, seg_end - p)) {
            return false;
        }
        segments++;
        if (!slash) {
            break;
        }
        p = slash + 1;
    }
    return segments == 3;
}

/* ------------------------------------------------------------------ */
/* Sessions and requests                                               */
/* ------------------------------------------------------------------ */

bool coco_attest_kbs_take_token(CocoAttestKbs *kbs)
{
    if (!coco_attest_rate_take(&kbs->limit)) {
        trace_coco_attest_kbs_rate_limited(kbs->base);
        return false;
    }
    return true;
}

void coco_attest_kbs_limits(CocoAttestKbs *kbs, CocoAttestKbsLimits *lim)
{
    lim->url = kbs->base;
    lim->max_sessions = kbs->sessions;
    lim->session_timeout = kbs->idle_s;
    lim->max_response = kbs->max_body_in;
    lim->timeout_ms = kbs->total_ms;
}

CocoAttestKbsSession *coco_attest_kbs_session_new(CocoAttestKbs *kbs)
{
    CocoAttestKbsSession *s = g_new0(CocoAttestKbsSession, 1);

    s->refcnt = 1;
    s->kbs = COCO_ATTEST_KBS(object_ref(OBJECT(kbs)));
    qemu_mutex_init(&s->lock);
    trace_coco_attest_kbs_session_new(s);
    return s;
}

CocoAttestKbsSession *coco_attest_kbs_session_ref(CocoAttestKbsSession *s)
{
    qatomic_inc(&s->refcnt);
    return s;
}

void coco_attest_kbs_session_unref(CocoAttestKbsSession *s)
{
    if (!s || qatomic_fetch_dec(&s->refcnt) != 1) {
        return;
    }
    trace_coco_attest_kbs_session_free(s);
    if (s->curl) {
        curl_easy_cleanup(s->curl);     /* closes the connection */
    }
    qemu_mutex_destroy(&s->lock);
    g_free(s->cookies);
    object_unref(OBJECT(s->kbs));
    g_free(s);
}

/* A cookie-file line: printable ASCII and tabs, nothing else */
static bool kbs_cookie_line_ok(const char *line)
{
    for (; *line; line++) {
        if (*line != '\t' && (*line < 0x20 || *line > 0x7e)) {
            return false;
        }
    }
    return true;
}

char *coco_attest_kbs_session_cookies(CocoAttestKbsSession *s)
{
    char *copy;

    qemu_mutex_lock(&s->lock);
    copy = g_strdup(s->cookies ? s->cookies : "");
    qemu_mutex_unlock(&s->lock);
    return copy;
}

bool coco_attest_kbs_session_set_cookies(CocoAttestKbsSession *s,
                                         const char *cookies, Error **errp)
{
    g_auto(GStrv) lines = NULL;
    size_t i;

    if (strlen(cookies) > COCO_ATTEST_KBS_COOKIES_MAX) {
        error_setg(errp, "KBS session cookies longer than %d bytes",
                   COCO_ATTEST_KBS_COOKIES_MAX);
        return false;
    }
    lines = g_strsplit(cookies, "\n", -1);
    for (i = 0; lines[i]; i++) {
        if (!kbs_cookie_line_ok(lines[i])) {
            error_setg(errp, "malformed KBS session cookie");
            return false;
        }
    }
    qemu_mutex_lock(&s->lock);
    assert(!s->curl);                   /* only for a fresh session */
    g_free(s->cookies);
    s->cookies = g_strdup(cookies);
    qemu_mutex_unlock(&s->lock);
    return true;
}

/* Worker side: load the session's cookies into its new handle */
static void kbs_cookies_load(CocoAttestKbsSession *s)
{
    g_auto(GStrv) lines = NULL;
    size_t i;

    qemu_mutex_lock(&s->lock);
    lines = g_strsplit(s->cookies ? s->cookies : "", "\n", -1);
    qemu_mutex_unlock(&s->lock);
    for (i = 0; lines[i]; i++) {
        if (*lines[i]) {
            curl_easy_setopt(s->curl, CURLOPT_COOKIELIST, lines[i]);
        }
    }
}

/* Worker side: remember the jar after a request */
static void kbs_cookies_save(CocoAttestKbsSession *s)
{
    struct curl_slist *list = NULL, *l;
    GString *jar = g_string_new("");

    if (curl_easy_getinfo(s->curl, CURLINFO_COOKIELIST, &list) == CURLE_OK) {
        for (l = list; l; l = l->next) {
            if (kbs_cookie_line_ok(l->data) &&
                jar->len + strlen(l->data) + 1 <=
                COCO_ATTEST_KBS_COOKIES_MAX) {
                g_string_append_printf(jar, "%s%s", jar->len ? "\n" : "",
                                       l->data);
            }
        }
        curl_slist_free_all(list);
    }
    qemu_mutex_lock(&s->lock);
    g_free(s->cookies);
    s->cookies = g_string_free(jar, false);
    qemu_mutex_unlock(&s->lock);
}

void coco_attest_kbs_reply_clear(CocoAttestKbsReply *reply)
{
    g_free(reply->content_type);
    if (reply->body) {
        g_byte_array_unref(reply->body);
    }
    memset(reply, 0, sizeof(*reply));
}

static size_t kbs_write(char *data, size_t size, size_t n, void *opaque)
{
    KbsSink *sink = opaque;
    size_t len = size * n;

    if (len > sink->max - sink->body->len) {
        sink->too_large = true;
        return 0;                       /* aborts the transfer */
    }
    g_byte_array_append(sink->body, (const guint8 *)data, len);
    return len;
}

void coco_attest_kbs_session_cancel(CocoAttestKbsSession *s)
{
    qatomic_set(&s->cancelled, 1);
}

/* Worker side, during a transfer: stop when the session was closed */
static int kbs_progress(void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                        curl_off_t ultotal, curl_off_t ulnow)
{
    CocoAttestKbsSession *s = opaque;

    return qatomic_read(&s->cancelled);
}

/* A fresh handle: the session's cookie jar lives as long as it does. */
static CURL *kbs_handle(CocoAttestKbsSession *s)
{
    CocoAttestKbs *kbs = s->kbs;
    CURL *c = curl_easy_init();

    if (!c) {
        return NULL;
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_COOKIEFILE, "");    /* in-memory jar */
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS,
                     (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)MIN(kbs->connect_ms, kbs->total_ms));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)kbs->total_ms);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "QEMU coco-attest-kbs");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, kbs_write);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, kbs_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, s);
    if (kbs->ca_file) {
        curl_easy_setopt(c, CURLOPT_CAINFO, kbs->ca_file);
    }
    if (kbs->cert_file) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, kbs->cert_file);
        curl_easy_setopt(c, CURLOPT_SSLKEY, kbs->key_file);
    }
    /*
     * A proxy only when one is configured: "" also keeps libcurl from
     * reading http_proxy, https_proxy and all_proxy from QEMU's
     * environment.
     */
    curl_easy_setopt(c, CURLOPT_PROXY, kbs->proxy ? kbs->proxy : "");
    return c;
}

static CocoAttestKbsResult kbs_result(CURLcode rc, bool too_large)
{
    if (too_large) {
        return COCO_ATTEST_KBS_TOO_LARGE;
    }
    switch (rc) {
    case CURLE_OK:
        return COCO_ATTEST_KBS_OK;
    case CURLE_ABORTED_BY_CALLBACK:
        return COCO_ATTEST_KBS_FAILED;  /* cancelled: nobody waits for it */
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
        return COCO_ATTEST_KBS_UNREACHABLE;
    case CURLE_OPERATION_TIMEDOUT:
        return COCO_ATTEST_KBS_TIMEOUT;
    case CURLE_FILESIZE_EXCEEDED:
        return COCO_ATTEST_KBS_TOO_LARGE;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
        return COCO_ATTEST_KBS_TLS;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return COCO_ATTEST_KBS_PROTOCOL;
    default:
        return COCO_ATTEST_KBS_FAILED;
    }
}

static bool kbs_ctype_ok(const char *ct)
{
    size_t i, len = strlen(ct);

    if (len > KBS_CTYPE_MAX) {
        return false;
    }
    for (i = 0; i < len; i++) {
        if (ct[i] < 0x20 || ct[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

CocoAttestKbsResult coco_attest_kbs_forward(CocoAttestKbsSession *s,
                                            bool post, const char *path,
                                            const char *content_type,
                                            const uint8_t *body, size_t len,
                                            size_t max_response,
                                            CocoAttestKbsReply *reply,
                                            char **why)
{
    CocoAttestKbs *kbs = s->kbs;
    g_autofree char *url = g_strconcat(kbs->base, path, NULL);
    g_autofree char *ct_header = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    KbsSink sink = { .max = MIN(max_response, kbs->max_body_in) };
    CocoAttestKbsResult r;
    long code = 0;
    char *ct = NULL;
    CURLcode rc;

    memset(reply, 0, sizeof(*reply));
    if (!s->curl) {
        s->curl = kbs_handle(s);
        if (!s->curl) {
            *why = g_strdup("curl_easy_init failed");
            return COCO_ATTEST_KBS_FAILED;
        }
        kbs_cookies_load(s);
    }
    sink.body = g_byte_array_new();
    curl_easy_setopt(s->curl, CURLOPT_URL, url);
    curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(s->curl, CURLOPT_MAXFILESIZE_LARGE,
                     (curl_off_t)sink.max);
    /* no "Expect: 100-continue" round trip for larger bodies */
    headers = curl_slist_append(headers, "Expect:");
    if (post) {
        ct_header = g_strdup_printf("Content-Type: %s", content_type);
        headers = curl_slist_append(headers, ct_header);
        curl_easy_setopt(s->curl, CURLOPT_POST, 1L);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, (const char *)body);
        curl_easy_setopt(s->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)len);
    } else {
        curl_easy_setopt(s->curl, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, headers);

    trace_coco_attest_kbs_request(s, post ? "POST" : "GET", path, len);
    rc = curl_easy_perform(s->curl);
    kbs_cookies_save(s);
    r = kbs_result(rc, sink.too_large);
    if (r == COCO_ATTEST_KBS_OK) {
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(s->curl, CURLINFO_CONTENT_TYPE, &ct);
        if (code < 100 || code > 599) {
            *why = g_strdup_printf("HTTP status %ld", code);
            r = COCO_ATTEST_KBS_PROTOCOL;
        } else if (ct && !kbs_ctype_ok(ct)) {
            *why = g_strdup("malformed or oversized Content-Type");
            r = COCO_ATTEST_KBS_PROTOCOL;
        }
    } else if (sink.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        *why = g_strdup_printf("answer larger than the limit (%zu bytes)",
                               sink.max);
    } else {
        *why = g_strdup_printf("%s", errbuf[0] ? errbuf
                                               : curl_easy_strerror(rc));
    }
    /* the request's buffers are the caller's: drop the references */
    curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(s->curl, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(s->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);

    if (r != COCO_ATTEST_KBS_OK) {
        trace_coco_attest_kbs_error(s, path, r, *why);
        g_byte_array_unref(sink.body);
        return r;
    }
    reply->http_status = code;
    reply->content_type = g_strdup(ct);
    reply->body = sink.body;
    trace_coco_attest_kbs_reply(s, path, reply->http_status,
                                reply->body->len);
    return r;
}

/* ------------------------------------------------------------------ */
/* QOM                                                                 */
/* ------------------------------------------------------------------ */

/* url: http or https, a host, no credentials, query or fragment */
static char *kbs_check_url(const char *url, bool allow_http, Error **errp)
{
    g_autofree char *scheme = NULL, *host = NULL, *query = NULL;
    g_autofree char *frag = NULL, *user = NULL;
    CURLU *u = curl_url();
    CURLUcode rc;
    char *base = NULL;

    if (!u) {
        error_setg(errp, "coco-attest-kbs: out of memory");
        return NULL;
    }
    rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc != CURLUE_OK) {
        error_setg(errp, "coco-attest-kbs: url '%s': %s", url,
                   curl_url_strerror(rc));
        goto out;
    }
    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    curl_url_get(u, CURLUPART_HOST, &host, 0);
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    if (!scheme || (strcmp(scheme, "http") && strcmp(scheme, "https"))) {
        error_setg(errp, "coco-attest-kbs: url '%s': only http and https "
                   "are supported", url);
    } else if (!host || !*host) {
        error_setg(errp, "coco-attest-kbs: url '%s' has no host", url);
    } else if (query || frag || user) {
        error_setg(errp, "coco-attest-kbs: url '%s': no credentials, "
                   "query or fragment allowed", url);
    } else if (!strcmp(scheme, "http") && !allow_http) {
        error_setg(errp, "coco-attest-kbs: url '%s' is plain HTTP: anyone "
                   "on the path sees and can change the exchanges", url);
        error_append_hint(errp, "Use https, or set allow-http=on to "
                          "accept this.\n");
    } else {
        if (!strcmp(scheme, "http")) {
            warn_report("coco-attest-kbs: url '%s' is plain HTTP "
                        "(allow-http=on): anyone on the path sees and can "
                        "change the exchanges", url);
        }
        /* the API paths are appended to it */
        base = g_strdup(url);
        while (*base && base[strlen(base) - 1] == '/') {
            base[strlen(base) - 1] = '\0';
        }
    }
out:
    curl_url_cleanup(u);
    return base;
}

/* A proxy URL libcurl understands, with a scheme it speaks */
static bool kbs_proxy_ok(const char *proxy, Error **errp)
{
    g_autofree char *scheme = NULL;
    CURLU *u = curl_url();
    bool ok;

    if (!u) {
        error_setg(errp, "coco-attest-kbs: out of memory");
        return false;
    }
    ok = curl_url_set(u, CURLUPART_URL, proxy, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
         (!strcmp(scheme, "http") || !strcmp(scheme, "https") ||
          !strcmp(scheme, "socks5h"));
    curl_url_cleanup(u);
    if (!ok) {
        error_setg(errp, "coco-attest-kbs: proxy '%s' is not an http, "
                   "https or socks5h URL", proxy);
    }
    return ok;
}

static bool kbs_readable(const char *path, Error **errp)
{
    if (access(path, R_OK) < 0) {
        error_setg_errno(errp, errno, "coco-attest-kbs: %s", path);
        return false;
    }
    return true;
}

/* tls-creds: a tls-creds-x509 object for a client, as its dir lays out */
static bool kbs_load_creds(CocoAttestKbs *kbs, Error **errp)
{
    Object *obj = object_resolve_path_component(object_get_objects_root(),
                                                kbs->tls_creds);
    g_autofree char *dir = NULL;
    QCryptoTLSCreds *creds;

    if (!obj) {
        error_setg(errp, "coco-attest-kbs: no TLS credentials with id '%s'",
                   kbs->tls_creds);
        return false;
    }
    if (!object_dynamic_cast(obj, TYPE_QCRYPTO_TLS_CREDS_X509)) {
        error_setg(errp, "coco-attest-kbs: '%s' is not a %s object",
                   kbs->tls_creds, TYPE_QCRYPTO_TLS_CREDS_X509);
        return false;
    }
    creds = QCRYPTO_TLS_CREDS(obj);
    if (!qcrypto_tls_creds_check_endpoint(creds,
                                          QCRYPTO_TLS_CREDS_ENDPOINT_CLIENT,
                                          errp)) {
        return false;
    }
    dir = object_property_get_str(obj, "dir", errp);
    if (!dir) {
        return false;
    }
    kbs->ca_file = g_build_filename(dir, QCRYPTO_TLS_CREDS_X509_CA_CERT,
                                    NULL);
    if (!kbs_readable(kbs->ca_file, errp)) {
        return false;
    }
    kbs->cert_file = g_build_filename(dir, QCRYPTO_TLS_CREDS_X509_CLIENT_CERT,
                                      NULL);
    kbs->key_file = g_build_filename(dir, QCRYPTO_TLS_CREDS_X509_CLIENT_KEY,
                                     NULL);
    if (access(kbs->cert_file, F_OK) < 0) {
        /* no client certificate: server authentication only */
        g_clear_pointer(&kbs->cert_file, g_free);
        g_clear_pointer(&kbs->key_file, g_free);
        return true;
    }
    return kbs_readable(kbs->cert_file, errp) &&
           kbs_readable(kbs->key_file, errp);
}

static void kbs_complete(UserCreatable *uc, Error **errp)
{
    static bool curl_ready;
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(uc);
    char *base;

    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
            error_setg(errp, "coco-attest-kbs: libcurl initialisation "
                       "failed");
            return;
        }
        curl_ready = true;
    }
    if (!kbs->url) {
        error_setg(errp, "coco-attest-kbs: the 'url' property is required");
        return;
    }
    base = kbs_check_url(kbs->url, kbs->allow_http, errp);
    if (!base) {
        return;
    }
    if (strlen(base) >= COCA_KBS_URL_MAX) {
        error_setg(errp, "coco-attest-kbs: url longer than %d bytes",
                   COCA_KBS_URL_MAX - 1);
        g_free(base);
        return;
    }
    kbs->base = base;
    if (kbs->max_sessions < 1 || kbs->max_sessions > KBS_MAX_SESSIONS_LIMIT) {
        error_setg(errp, "coco-attest-kbs: max-sessions must be 1 to %d",
                   KBS_MAX_SESSIONS_LIMIT);
        return;
    }
    if (!kbs->timeout_ms || !kbs->connect_timeout_ms ||
        !kbs->session_timeout || !kbs->max_response) {
        error_setg(errp, "coco-attest-kbs: timeout, connect-timeout, "
                   "session-timeout and max-response must not be zero");
        return;
    }
    if (!kbs->limit.rate || !kbs->limit.burst) {
        error_setg(errp, "coco-attest-kbs: rate and burst must be positive");
        return;
    }
    if (kbs->proxy && !kbs_proxy_ok(kbs->proxy, errp)) {
        return;
    }
    if (kbs->tls_creds && !kbs_load_creds(kbs, errp)) {
        return;
    }
    kbs->connect_ms = kbs->connect_timeout_ms;
    kbs->total_ms = kbs->timeout_ms;
    kbs->max_body_in = kbs->max_response;
    kbs->sessions = kbs->max_sessions;
    kbs->idle_s = kbs->session_timeout;
    coco_attest_rate_start(&kbs->limit);
    kbs->ready = true;
    trace_coco_attest_kbs_ready(kbs->base, kbs->ca_file ? kbs->ca_file : "",
                                kbs->cert_file != NULL);
}

static char *kbs_get_url(Object *obj, Error **errp)
{
    return g_strdup(COCO_ATTEST_KBS(obj)->url);
}

static void kbs_set_url(Object *obj, const char *value, Error **errp)
{
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(obj);

    if (!coco_attest_prop_settable(obj, kbs->ready, "url", errp)) {
        return;
    }
    g_free(kbs->url);
    kbs->url = g_strdup(value);
}

static char *kbs_get_tls_creds(Object *obj, Error **errp)
{
    return g_strdup(COCO_ATTEST_KBS(obj)->tls_creds);
}

static void kbs_set_tls_creds(Object *obj, const char *value, Error **errp)
{
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(obj);

    if (!coco_attest_prop_settable(obj, kbs->ready, "tls-creds", errp)) {
        return;
    }
    g_free(kbs->tls_creds);
    kbs->tls_creds = g_strdup(value);
}

static char *kbs_get_proxy(Object *obj, Error **errp)
{
    return g_strdup(COCO_ATTEST_KBS(obj)->proxy);
}

static void kbs_set_proxy(Object *obj, const char *value, Error **errp)
{
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(obj);

    if (!coco_attest_prop_settable(obj, kbs->ready, "proxy", errp)) {
        return;
    }
    g_free(kbs->proxy);
    kbs->proxy = g_strdup(value);
}

static bool kbs_get_allow_http(Object *obj, Error **errp)
{
    return COCO_ATTEST_KBS(obj)->allow_http;
}

static void kbs_set_allow_http(Object *obj, bool value, Error **errp)
{
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(obj);

    if (coco_attest_prop_settable(obj, kbs->ready, "allow-http", errp)) {
        kbs->allow_http = value;
    }
}

static void kbs_instance_init(Object *obj)
{
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(obj);

    kbs->connect_timeout_ms = 5000;
    kbs->timeout_ms = 30000;
    kbs->max_response = 256 * KiB;
    kbs->max_sessions = 4;
    kbs->session_timeout = 300;
    kbs->limit.rate = 60;
    kbs->limit.burst = 20;
}

static void kbs_instance_finalize(Object *obj)
{
    CocoAttestKbs *kbs = COCO_ATTEST_KBS(obj);

    g_free(kbs->url);
    g_free(kbs->base);
    g_free(kbs->tls_creds);
    g_free(kbs->proxy);
    g_free(kbs->ca_file);
    g_free(kbs->cert_file);
    g_free(kbs->key_file);
}

static const CocoAttestU32Prop kbs_u32_props[] = {
    COCO_ATTEST_U32_PROP(CocoAttestKbs, connect_timeout_ms,
        "connect-timeout",
        "milliseconds to establish a connection (default: 5000)"),
    COCO_ATTEST_U32_PROP(CocoAttestKbs, timeout_ms, "timeout",
        "milliseconds for a whole request, connection included "
        "(default: 30000)"),
    COCO_ATTEST_U32_PROP(CocoAttestKbs, max_response, "max-response",
        "largest answer body accepted, in bytes (default: 262144)"),
    COCO_ATTEST_U32_PROP(CocoAttestKbs, max_sessions, "max-sessions",
        "guest sessions open at once, 1 to 64 (default: 4)"),
    COCO_ATTEST_U32_PROP(CocoAttestKbs, session_timeout, "session-timeout",
        "seconds a session may stay idle (default: 300)"),
    COCO_ATTEST_U32_PROP(CocoAttestKbs, limit.rate, "rate",
        "KBS_OPEN and KBS_FORWARD requests per minute (default: 60)"),
    COCO_ATTEST_U32_PROP(CocoAttestKbs, limit.burst, "burst",
        "KBS_OPEN and KBS_FORWARD requests at once after a quiet period "
        "(default: 20)"),
};

static void kbs_class_init(ObjectClass *oc, void *data)
{
    UserCreatableClass *ucc = USER_CREATABLE_CLASS(oc);

    ucc->complete = kbs_complete;
    object_class_property_add_str(oc, "url", kbs_get_url, kbs_set_url);
    object_class_property_set_description(oc, "url",
        "base URL of the KBS (http or https); the API is under /kbs/v0/");
    object_class_property_add_str(oc, "tls-creds", kbs_get_tls_creds,
                                  kbs_set_tls_creds);
    object_class_property_set_description(oc, "tls-creds",
        "ID of a tls-creds-x509 object (endpoint=client) for https");
    object_class_property_add_str(oc, "proxy", kbs_get_proxy,
                                  kbs_set_proxy);
    object_class_property_set_description(oc, "proxy",
        "proxy URL for the KBS connections (default: none; the proxy "
        "environment variables are ignored)");
    object_class_property_add_bool(oc, "allow-http", kbs_get_allow_http,
                                   kbs_set_allow_http);
    object_class_property_set_description(oc, "allow-http",
        "accept a plain http url (default: off)");
    coco_attest_class_add_u32_props(oc, kbs_u32_props,
                                    G_N_ELEMENTS(kbs_u32_props));
}

static const TypeInfo kbs_info = {
    .name = TYPE_COCO_ATTEST_KBS,
    .parent = TYPE_OBJECT,
    .instance_size = sizeof(CocoAttestKbs),
    .instance_init = kbs_instance_init,
    .instance_finalize = kbs_instance_finalize,
    .class_init = kbs_class_init,
    .interfaces = (InterfaceInfo[]) {
        { TYPE_USER_CREATABLE },
        { }
    },
};

static void kbs_register_types(void)
{
    type_register_static(&kbs_info);
}

type_init(kbs_register_types)
