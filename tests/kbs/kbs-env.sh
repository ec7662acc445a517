# SPDX-License-Identifier: GPL-2.0-or-later
#
# The test KBS (tests/kbs/kbs-server.py) for the kbs suite and the KBS
# benchmark (sourced): one HTTP and one HTTPS instance on loopback sharing
# a fault-injection file, TLS material for the device's tls-creds-x509
# (the right CA, and another one for the mismatch case), and resources
# with known secrets.
#
#   kbs_env_start DIR    start both, export COCA_KBS_* (see below)
#   kbs_env_stop         stop them (by PID)
#
# Exports COCA_KBS_URL, COCA_KBS_TLS_URL, COCA_KBS_MTLS_URL (an instance
# that requires a client certificate), COCA_KBS_CONTROL, COCA_KBS_LOG,
# COCA_KBS_TLS_DIR, COCA_KBS_CLIENT_TLS_DIR (the same CA plus a client
# certificate), COCA_KBS_BAD_TLS_DIR, COCA_KBS_SECRET (the secret of
# resource default/test/secret) and COCA_KBS_SECRET_SHA256.

KBS_PIDS=

# a CA and a leaf for 127.0.0.1, laid out as tls-creds-x509 expects
kbs_tls_material() {   # kbs_tls_material DIR NAME
    local d=$1
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/ca-key.pem" -out "$d/ca-cert.pem" -days 2 \
        -subj "/CN=$2 test CA" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2> /dev/null &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/server-key.pem" -out "$d/server.csr" \
        -subj "/CN=127.0.0.1" 2> /dev/null &&
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca-cert.pem" \
        -CAkey "$d/ca-key.pem" -CAcreateserial -days 2 \
        -out "$d/server-cert.pem" \
        -extfile <(printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n') \
        2> /dev/null
}

# a client certificate from the CA in DIR, laid out beside a copy of it
kbs_client_material() {   # kbs_client_material CA-DIR OUT-DIR
    mkdir -p "$2"
    cp "$1/ca-cert.pem" "$2/"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$2/client-key.pem" -out "$2/client.csr" \
        -subj "/CN=coco-attest test VMM" 2> /dev/null &&
    openssl x509 -req -in "$2/client.csr" -CA "$1/ca-cert.pem" \
        -CAkey "$1/ca-key.pem" -CAcreateserial -days 2 \
        -out "$2/client-cert.pem" \
        -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n') \
        2> /dev/null
}

kbs_wait_port() {   # kbs_wait_port FILE PID
    for _ in $(seq 100); do
        [ -s "$1" ] && return 0
        kill -0 "$2" 2> /dev/null || return 1
        sleep 0.1
    done
    return 1
}

kbs_env_start() {
    local d=$1 srv http_pid https_pid mtls_pid
    srv=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/kbs-server.py
    rm -rf "$d"
    mkdir -p "$d/resources"
    kbs_tls_material "$d/tls" kbs || return 1
    kbs_tls_material "$d/other-tls" other || return 1
    kbs_client_material "$d/tls" "$d/client-tls" || return 1
    # a secret the host must never see in clear, and a bigger one
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/s3cr3t-/' \
        > "$d/resources/secret"
    head -c 3000 /dev/urandom > "$d/resources/blob"
    : > "$d/control"
    python3 "$srv" --port-file "$d/http.port" --log "$d/http.log" \
        --control "$d/control" \
        --resource "default/test/secret=$d/resources/secret" \
        --resource "default/test/blob=$d/resources/blob" \
        2> "$d/http.err" &
    http_pid=$!
    python3 "$srv" --port-file "$d/https.port" --log "$d/https.log" \
        --control "$d/control" \
        --tls-cert "$d/tls/server-cert.pem" --tls-key "$d/tls/server-key.pem" \
        --resource "default/test/secret=$d/resources/secret" \
        2> "$d/https.err" &
    https_pid=$!
    python3 "$srv" --port-file "$d/mtls.port" --control "$d/control" \
        --tls-cert "$d/tls/server-cert.pem" --tls-key "$d/tls/server-key.pem" \
        --client-ca "$d/tls/ca-cert.pem" \
        --resource "default/test/secret=$d/resources/secret" \
        2> "$d/mtls.err" &
    mtls_pid=$!
    KBS_PIDS="$http_pid $https_pid $mtls_pid"
    kbs_wait_port "$d/http.port" "$http_pid" &&
        kbs_wait_port "$d/https.port" "$https_pid" &&
        kbs_wait_port "$d/mtls.port" "$mtls_pid" || {
        cat "$d/http.err" "$d/https.err" "$d/mtls.err" >&2
        kbs_env_stop
        return 1
    }
    export COCA_KBS_URL="http://127.0.0.1:$(cat "$d/http.port")"
    export COCA_KBS_TLS_URL="https://127.0.0.1:$(cat "$d/https.port")"
    export COCA_KBS_MTLS_URL="https://127.0.0.1:$(cat "$d/mtls.port")"
    export COCA_KBS_CLIENT_TLS_DIR=$d/client-tls
    export COCA_KBS_CONTROL=$d/control COCA_KBS_LOG=$d/http.log
    export COCA_KBS_TLS_LOG=$d/https.log
    export COCA_KBS_TLS_DIR=$d/tls COCA_KBS_BAD_TLS_DIR=$d/other-tls
    COCA_KBS_SECRET=$(cat "$d/resources/secret")
    COCA_KBS_SECRET_SHA256=$(sha256sum "$d/resources/secret" | cut -c1-64)
    export COCA_KBS_SECRET COCA_KBS_SECRET_SHA256
}

kbs_env_stop() {
    local p
    for p in $KBS_PIDS; do
        kill "$p" 2> /dev/null
    done
    for p in $KBS_PIDS; do
        wait "$p" 2> /dev/null
    done
    KBS_PIDS=
    # nothing later may think a KBS is still listening
    unset COCA_KBS_URL COCA_KBS_TLS_URL COCA_KBS_MTLS_URL COCA_KBS_CONTROL \
        COCA_KBS_LOG COCA_KBS_TLS_LOG COCA_KBS_TLS_DIR COCA_KBS_CLIENT_TLS_DIR \
        COCA_KBS_BAD_TLS_DIR COCA_KBS_SECRET COCA_KBS_SECRET_SHA256
}
