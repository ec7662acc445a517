#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Minimal test Key Broker Service speaking Trustee's KBS "RCAR" protocol.

This is a stand-in for confidential-containers/trustee's KBS (protocol
version 0.4.0, kbs-types 0.16.0) used by the coco-attest test suite.  It
implements:

  POST /kbs/v0/auth      Request -> Challenge, sets the kbs-session-id cookie
  POST /kbs/v0/attest    Attestation -> {"token": JWT}   (cookie required)
  GET  /kbs/v0/resource/<repo>/<type>/<tag>
                         -> JWE Response (ECDH-ES+A256KW / A256GCM) for an
                            attested session cookie or a Bearer token

Only the "sample" TEE can attest: its evidence {"svn", "report_data"} must
carry base64(SHA-384(JCS({"additional-evidence", "nonce", "tee-pubkey"})))
exactly as Trustee's sample verifier demands.  Errors are Trustee's
ErrorInformation bodies, 401 for nearly everything.

Deviations from Trustee (deliberate, to keep the server small and strict):
  * no attestation/resource policy engine and no admin API; every attested
    sample session may read every configured resource;
  * a resource that is not configured gives 401 PluginInternalError (as
    Trustee 0.21 does; newer Trustee answers 404 for "resource not found");
  * a malformed resource path gives 404 InvalidRequestPath (Trustee: 401);
  * the tee-pubkey is validated at /attest (EC P-256/P-521,
    ECDH-ES+A256KW, point on the curve); Trustee accepts any key there and
    fails only at resource fetch.  RSA keys are refused;
  * init-data is shape-checked ("toml" format only) but not bound;
  * bodies over 1 MiB get 413 (Trustee: 2 MiB);
  * the token is an ES256 JWT with EAR-like claims signed by a per-process
    key; only this server can verify it.
Like Trustee: version "0.4.0" (build metadata allowed), cookie with
Expires=, re-attesting an attested session returns the old token, errors
carry no Content-Type.

Test hooks: --log (one JSON line per request with the exact bytes sent) and
--control (fault injection, re-read on every request; see Handler.fault).
"""

import argparse
import base64
import email.utils
import hashlib
import http.cookies
import http.server
import json
import os
import re
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
import uuid

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature, encode_dss_signature)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

PREFIX = "/kbs/v0"
VERSION = "0.4.0"
ERROR_PREFIX = "https://github.com/confidential-containers/kbs/errors/"
COOKIE = "kbs-session-id"
MAX_BODY = 1 << 20
KEY_ALG = "ECDH-ES+A256KW"
# Tee enum of kbs-types 0.16.0 (serde names).
TEES = ("az-snp-vtpm", "az-tdx-vtpm", "nvidia", "sgx", "snp", "tdx", "cca",
        "csv", "se", "hygondcu", "tpm", "sample", "sampledevice")
# JWK curve name -> (curve class, coordinate length in bytes).
CURVES = {"P-256": (ec.SECP256R1, 32), "P-521": (ec.SECP521R1, 66)}
SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
B64URL = re.compile(r"^[A-Za-z0-9_-]*$")
EAR_PROFILE = "tag:github.com,2024:confidential-containers/Trustee"


class KbsError(Exception):
    """A protocol error answered with an ErrorInformation body."""

    def __init__(self, etype, detail, status=401):
        super().__init__(detail)
        self.etype, self.detail, self.status = etype, detail, status


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    """Strict base64url without padding (RFC 7515 §2)."""
    if not isinstance(text, str) or not B64URL.match(text) \
            or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jcs(value):
    """RFC 8785 canonical JSON for what occurs here (objects with ASCII
    keys, strings, integers): Python's escaping of strings matches JCS."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def compact(value):
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def error_body(etype, detail):
    return compact({"type": ERROR_PREFIX + etype, "detail": detail})


def want(obj, key, kind, where):
    """obj[key] must exist and be of type kind, else a SerdeError."""
    if not isinstance(obj, dict) or key not in obj \
            or not isinstance(obj[key], kind):
        raise KbsError("SerdeError", "%s: missing or invalid field %r"
                       % (where, key))
    return obj[key]


def parse_tee_pubkey(jwk):
    """Validate a TeePubKey and return (canonical dict, public key).

    The canonical dict holds only the members kbs-types knows, which is
    what Trustee re-serialises before hashing the binding."""
    kty = want(jwk, "kty", str, "tee-pubkey")
    if kty != "EC":
        raise KbsError("AttestationError",
                       "tee-pubkey: unsupported kty %r" % kty)
    canon = {k: want(jwk, k, str, "tee-pubkey")
             for k in ("crv", "alg", "x", "y")}
    canon["kty"] = "EC"
    if canon["alg"] != KEY_ALG:
        raise KbsError("AttestationError",
                       "tee-pubkey: unsupported alg %r" % canon["alg"])
    if canon["crv"] not in CURVES:
        raise KbsError("AttestationError",
                       "tee-pubkey: unsupported crv %r" % canon["crv"])
    curve, size = CURVES[canon["crv"]]
    try:
        x, y = b64url_decode(canon["x"]), b64url_decode(canon["y"])
        if len(x) != size or len(y) != size:
            raise ValueError("coordinate length is not %d" % size)
        key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"),
            curve()).public_key()
    except ValueError as exc:
        raise KbsError("AttestationError",
                       "tee-pubkey: invalid point: %s" % exc) from None
    return canon, key


def jwe_encrypt(jwk, plaintext):
    """Encrypt to the tee-pubkey as kbs-types' flattened JWE Response."""
    canon, peer = parse_tee_pubkey(jwk)
    curve, size = CURVES[canon["crv"]]
    eph = ec.generate_private_key(curve())
    shared = eph.exchange(ec.ECDH(), peer)
    # RFC 7518 §4.6.2: AlgorithmID || PartyUInfo || PartyVInfo ||
    # SuppPubInfo, each variable part prefixed with its u32 BE length.
    alg = KEY_ALG.encode("ascii")
    other = (len(alg).to_bytes(4, "big") + alg + bytes(4) + bytes(4)
             + (256).to_bytes(4, "big"))
    kek = ConcatKDFHash(hashes.SHA256(), 32, other).derive(shared)
    cek = AESGCM.generate_key(bit_length=256)
    nums = eph.public_key().public_numbers()
    header = {"alg": KEY_ALG, "enc": "A256GCM",
              "epk": {"crv": canon["crv"], "kty": "EC",
                      "x": b64url(nums.x.to_bytes(size, "big")),
                      "y": b64url(nums.y.to_bytes(size, "big"))}}
    protected = b64url(compact(header))
    iv = os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, protected.encode("ascii"))
    return {"protected": protected,
            "encrypted_key": b64url(aes_key_wrap(kek, cek)),
            "iv": b64url(iv),
            "ciphertext": b64url(sealed[:-16]),
            "tag": b64url(sealed[-16:])}


class Session:
    def __init__(self, tee, lifetime):
        self.id = uuid.uuid4().hex
        self.tee = tee
        self.nonce = base64.b64encode(os.urandom(32)).decode("ascii")
        self.expires = time.time() + lifetime
        self.token = None          # set once attested
        self.pubkey = None         # canonical tee-pubkey once attested


class Kbs:
    """Server state shared by all handler threads."""

    def __init__(self, args):
        self.timeout = args.session_timeout
        self.log_path = args.log
        self.control_path = args.control
        self.resources = {}
        for spec in args.resource:
            path, sep, fname = spec.partition("=")
            if not sep or not resource_path_ok(path.split("/")):
                sys.exit("kbs-server: bad --resource %r" % spec)
            with open(fname, "rb") as f:
                self.resources[path] = f.read()
        self.sessions = {}
        self.lock = threading.Lock()
        self.log_lock = threading.Lock()
        self.signer = ec.generate_private_key(ec.SECP256R1())

    def new_session(self, tee):
        sess = Session(tee, self.timeout)
        with self.lock:
            now = time.time()
            for sid in [s for s, v in self.sessions.items()
                        if v.expires <= now]:
                del self.sessions[sid]
            self.sessions[sess.id] = sess
        return sess

    def session(self, cookie_header):
        """The live session named by the request's cookie, or None."""
        try:
            jar = http.cookies.SimpleCookie(cookie_header or "")
        except http.cookies.CookieError:
            return None
        if COOKIE not in jar:
            return None
        with self.lock:
            sess = self.sessions.get(jar[COOKIE].value)
            if sess and sess.expires <= time.time():
                del self.sessions[sess.id]
                sess = None
        return sess

    def faults(self, path):
        """The control file's fault object if it applies to path."""
        if not self.control_path:
            return {}
        try:
            with open(self.control_path, "rb") as f:
                text = f.read().strip()
            ctl = json.loads(text) if text else {}
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            print("kbs-server: ignoring bad control file: %s" % exc,
                  file=sys.stderr)
            return {}
        if not isinstance(ctl, dict):
            return {}
        paths = ctl.get("paths")
        if isinstance(paths, list) and path not in paths:
            return {}
        return ctl

    def log(self, entry):
        if not self.log_path:
            return
        line = json.dumps(entry, sort_keys=True) + "\n"
        with self.log_lock, open(self.log_path, "a") as f:
            f.write(line)

    # ---- tokens ------------------------------------------------------

    def make_token(self, sess, evidence, runtime_claims):
        now = int(time.time())
        claims = {
            "iat": now, "nbf": now, "exp": int(sess.expires),
            "jti": uuid.uuid4().hex,
            "eat_profile": EAR_PROFILE,
            "ear.verifier-id": {"developer": "coco-attest tests",
                                "build": "kbs-server.py"},
            "submods": {"cpu0": {
                "ear.status": "affirming",
                "ear.veraison.annotated-evidence": {
                    sess.tee: evidence,
                    "runtime_data_claims": runtime_claims}}}}
        head = b64url(compact({"alg": "ES256", "typ": "JWT"}))
        body = b64url(compact(claims))
        der = self.signer.sign((head + "." + body).encode("ascii"),
                               ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return head + "." + body + "." + b64url(sig)

    def check_token(self, token):
        """Verify one of our JWTs; return the tee-pubkey it carries."""
        try:
            head, body, sig = token.split(".")
            raw = b64url_decode(sig)
            if len(raw) != 64:
                raise ValueError("bad signature length")
            der = encode_dss_signature(int.from_bytes(raw[:32], "big"),
                                       int.from_bytes(raw[32:], "big"))
            self.signer.public_key().verify(
                der, (head + "." + body).encode("ascii"),
                ec.ECDSA(hashes.SHA256()))
            claims = json.loads(b64url_decode(body))
            if claims["exp"] <= time.time():
                raise ValueError("token expired")
            return (claims["submods"]["cpu0"]
                    ["ear.veraison.annotated-evidence"]
                    ["runtime_data_claims"]["tee-pubkey"])
        except (ValueError, KeyError, TypeError, InvalidSignature) as exc:
            raise KbsError("TokenVerifierError", "invalid token: %s"
                           % (str(exc) or "bad signature")) from None


def resource_path_ok(segs):
    return len(segs) == 3 and all(SEGMENT.match(s) and s not in (".", "..")
                                  for s in segs)


def parse_json(body):
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError as exc:
        raise KbsError("SerdeError", "invalid JSON: %s" % exc) from None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: without TCP_NODELAY the
    # body waits for the client's delayed ACK (40 ms) on a kept-alive
    # connection, which a real KBS does not do
    disable_nagle_algorithm = True
    server_version = "coco-attest-test-kbs/0.1"
    timeout = 60                     # idle keep-alive connections

    # ---- HTTP plumbing -------------------------------------------------

    def __getattr__(self, name):
        # Every method (HEAD, PUT, OPTIONS, ...) is dispatched; route()
        # answers 404 to all but the three protocol requests.
        if name.startswith("do_"):
            return self.dispatch
        raise AttributeError(name)

    def log_request(self, code="-", size="-"):
        pass                         # requests go to --log, not stderr

    def handle(self):
        try:
            super().handle()
        except (ssl.SSLError, ConnectionError, socket.timeout) as exc:
            self.log_message("connection: %s", exc)

    def reply(self, status, body, ctype=None, headers=(), rlog=None):
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        self.record(status, rlog if rlog is not None else body)

    def record(self, status, sent):
        if isinstance(sent, bytes):
            try:
                sent = sent.decode("utf-8")
            except UnicodeDecodeError:
                sent = {"base64": base64.b64encode(sent).decode()}
        try:
            req = self.req_body.decode("utf-8")
        except UnicodeDecodeError:
            req = {"base64": base64.b64encode(self.req_body).decode()}
        self.server.kbs.log({"method": self.command, "path": self.path,
                             "status": status, "request_body": req,
                             "response_body": sent})

    def fail(self, err):
        if err.status != 404:
            self.log_message("%s %s -> %d %s: %s", self.command, self.path,
                             err.status, err.etype, err.detail)
        self.reply(err.status, error_body(err.etype, err.detail))

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise KbsError("InvalidRequest", "chunked bodies unsupported",
                           411)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            raise KbsError("InvalidRequest", "bad Content-Length", 400)
        if length > MAX_BODY:
            # Drain a moderately large body so that the client reads the
            # 413 rather than a reset; the connection is closed anyway.
            left = length if length <= 8 * MAX_BODY else 0
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
            raise KbsError("PayloadTooLarge", "Payload too large", 413)
        return self.rfile.read(length)

    def dispatch(self):
        self.req_body = b""
        path = urllib.parse.urlsplit(self.path).path
        try:
            self.req_body = self.read_body()
        except KbsError as err:
            self.close_connection = True     # the body was not consumed
            self.fail(err)
            return
        if self.fault(self.server.kbs.faults(path)):
            return
        try:
            self.route(path)
        except KbsError as err:
            self.fail(err)
        except Exception:                    # a bug in this server
            traceback.print_exc()
            self.reply(500, error_body("InternalError", "test KBS bug"))

    def fault(self, ctl):
        """Apply fault injection; True if the response has been sent.

        "delay": seconds to sleep first, then one of (checked in order)
        "drop": announce 1000 bytes, send 100, shut the socket down;
        "status": that status with an ErrorInformation body;
        "garbage": 200 application/json with a non-JSON body;
        "oversize": 200 with N bytes of 'x'."""
        if not ctl:
            return False
        if isinstance(ctl.get("delay"), (int, float)):
            time.sleep(max(0.0, ctl["delay"]))
        if ctl.get("drop"):
            part = b'{"token":"' + b"x" * 90
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(part)
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.record(200, part)
        elif isinstance(ctl.get("status"), int):
            self.reply(ctl["status"],
                       error_body("InjectedFault", "injected fault"))
        elif ctl.get("garbage"):
            self.reply(200, b"<html>garbage</html>", "application/json")
        elif isinstance(ctl.get("oversize"), int):
            size = max(0, ctl["oversize"])
            self.reply(200, b"x" * size, "application/json",
                       rlog={"oversize": size})
        else:
            return False
        return True

    # ---- protocol -------------------------------------------------------

    def route(self, path):
        segs = path.split("/")
        if self.command == "POST" and path == PREFIX + "/auth":
            self.auth()
        elif self.command == "POST" and path == PREFIX + "/attest":
            self.attest()
        elif self.command == "GET" and path.startswith(PREFIX + "/resource/") \
                and resource_path_ok(segs[4:]):
            self.resource("/".join(segs[4:]))
        else:
            raise KbsError("InvalidRequestPath",
                           "Request path %s is invalid" % path, 404)

    def auth(self):
        req = parse_json(self.req_body)
        version = want(req, "version", str, "Request")
        tee = want(req, "tee", str, "Request")
        if "extra-params" not in req:
            raise KbsError("SerdeError", "Request: missing 'extra-params'")
        if tee not in TEES:
            raise KbsError("SerdeError", "unknown tee %r" % tee)
        # semver "=0.4.0": build metadata is ignored, pre-releases are not.
        if version.partition("+")[0] != VERSION:
            raise KbsError("AttestationError",
                           "protocol version %r unsupported, expected %s"
                           % (version, VERSION))
        sess = self.server.kbs.new_session(tee)
        cookie = "%s=%s; Path=%s; Expires=%s" % (
            COOKIE, sess.id, PREFIX,
            email.utils.formatdate(sess.expires, usegmt=True))
        self.reply(200, compact({"nonce": sess.nonce, "extra-params": ""}),
                   "application/json", [("Set-Cookie", cookie)])

    def attest(self):
        kbs = self.server.kbs
        sess = kbs.session(self.headers.get("Cookie"))
        if sess is None:
            raise KbsError("AttestationError",
                           "session cookie missing, unknown or expired")
        if sess.token:               # Trustee: no re-appraisal
            self.reply(200, compact({"token": sess.token}),
                       "application/json")
            return
        att = parse_json(self.req_body)
        rtd = want(att, "runtime-data", dict, "Attestation")
        ev = want(att, "tee-evidence", dict, "Attestation")
        nonce = want(rtd, "nonce", str, "runtime-data")
        jwk = want(rtd, "tee-pubkey", dict, "runtime-data")
        primary = want(ev, "primary_evidence", object, "tee-evidence")
        additional = want(ev, "additional_evidence", str, "tee-evidence")
        init = att.get("init-data")
        if init is not None:
            want(init, "body", str, "init-data")
            if want(init, "format", str, "init-data") != "toml":
                raise KbsError("AttestationError",
                               "init-data format must be toml")
        canon, _ = parse_tee_pubkey(jwk)
        if nonce != sess.nonce:
            raise KbsError("AttestationError", "nonce mismatch")
        if sess.tee != "sample":
            raise KbsError("AttestationError",
                           "no verifier for tee %r in the test KBS"
                           % sess.tee)
        binding = {"additional-evidence": additional, "nonce": nonce,
                   "tee-pubkey": canon}
        digest = hashlib.sha384(jcs(binding)).digest()
        if not isinstance(primary, dict) \
                or not isinstance(primary.get("svn"), str) \
                or not isinstance(primary.get("report_data"), str):
            raise KbsError("AttestationError",
                           "sample evidence needs string svn, report_data")
        try:
            report = base64.b64decode(primary["report_data"], validate=True)
        except ValueError:
            raise KbsError("AttestationError",
                           "report_data is not base64") from None
        if report != digest:
            raise KbsError("AttestationError",
                           "report_data does not bind the runtime data")
        with kbs.lock:
            if sess.token is None:
                sess.pubkey = canon
                sess.token = kbs.make_token(sess, primary, binding)
        self.reply(200, compact({"token": sess.token}), "application/json")

    def resource(self, name):
        kbs = self.server.kbs
        sess = kbs.session(self.headers.get("Cookie"))
        auth = self.headers.get("Authorization", "")
        if sess is not None and sess.token:
            jwk = sess.pubkey
        elif auth.startswith("Bearer "):
            jwk = kbs.check_token(auth[len("Bearer "):])
        else:
            raise KbsError("TokenNotFound", "Attestation Token not found")
        if name not in kbs.resources:
            raise KbsError("PluginInternalError",
                           "resource not found: %s" % name)
        try:
            jwe = jwe_encrypt(jwk, kbs.resources[name])
        except KbsError as err:
            raise KbsError("JweError", err.detail) from None
        self.reply(200, compact(jwe), "application/json")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port-file", required=True,
                    help="write the listening port here (atomically)")
    ap.add_argument("--port", type=int, default=0, help="0: pick one")
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM cert")
    ap.add_argument("--tls-key", help="private key for --tls-cert")
    ap.add_argument("--client-ca", help="require client certs from CA")
    ap.add_argument("--resource", action="append", default=[],
                    metavar="REPO/TYPE/TAG=FILE")
    ap.add_argument("--log", help="append a JSON line per request")
    ap.add_argument("--control", help="fault injection JSON file")
    ap.add_argument("--session-timeout", type=float, default=300.0,
                    metavar="SECONDS")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.client_ca and not args.tls_cert:
        ap.error("--client-ca needs --tls-cert")

    server = Server(("127.0.0.1", args.port), Handler)
    server.kbs = Kbs(args)
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        # Handshake lazily in the handler thread, not in accept().
        server.socket = ctx.wrap_socket(server.socket, server_side=True,
                                        do_handshake_on_connect=False)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    tmp = "%s.%d.tmp" % (args.port_file, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % server.server_address[1])
    os.replace(tmp, args.port_file)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
