#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Self-test for tests/kbs/kbs-server.py, written as an independent
reference client of Trustee's KBS protocol (RCAR 0.4.0).  Prints TAP.

It starts three server instances in a temporary directory (HTTP with log
and control file; HTTPS requiring a client certificate; HTTP with a one
second session timeout), runs auth -> attest -> resource with P-256 and
P-521 keys, decrypts the JWE on its own, and checks refusals, fault
injection, session expiry and the request log.
"""

import base64
import datetime
import hashlib
import http.client
import http.cookiejar
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "kbs-server.py")
ERR = "https://github.com/confidential-containers/kbs/errors/"
CURVES = {"P-256": (ec.SECP256R1(), 32), "P-521": (ec.SECP521R1(), 66)}

# ---- TAP ------------------------------------------------------------------

results = []


def ok(cond, name, diag=None):
    results.append(bool(cond))
    print("%s %d - %s" % ("ok" if cond else "not ok", len(results), name))
    if not cond and diag is not None:
        for line in str(diag).splitlines():
            print("#   " + line)
    sys.stdout.flush()
    return cond


def b64u(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text):
    assert "=" not in text
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---- server processes ---------------------------------------------------


class Instance:
    def __init__(self, tmp, name, args, scheme="http", ctx=None):
        self.dir = os.path.join(tmp, name)
        os.mkdir(self.dir)
        self.port_file = os.path.join(self.dir, "port")
        self.stderr = open(os.path.join(self.dir, "stderr"), "w+")
        self.scheme, self.ctx, self.port = scheme, ctx, None
        self.proc = subprocess.Popen(
            [sys.executable, SERVER, "--port-file", self.port_file] + args,
            stdout=subprocess.DEVNULL, stderr=self.stderr)

    def wait_port(self):
        deadline = time.time() + 10
        while time.time() < deadline and self.proc.poll() is None:
            if os.path.exists(self.port_file):
                self.port = int(open(self.port_file).read())
                return True
            time.sleep(0.02)
        return False

    def conn(self, **kw):
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                "127.0.0.1", self.port, context=self.ctx, timeout=10, **kw)
        return http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=10, **kw)

    def url(self, path):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        return self.proc.returncode


class Client:
    """A keep-alive http.client session with a one-cookie jar."""

    def __init__(self, inst, **kw):
        self.conn = inst.conn(**kw)
        self.cookie = None

    def call(self, method, path, body=None, headers=None):
        hdrs = dict(headers or {})
        if self.cookie:
            hdrs["Cookie"] = self.cookie
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        self.conn.request(method, path, body=body, headers=hdrs)
        resp = self.conn.getresponse()
        data = resp.read()
        setc = resp.getheader("Set-Cookie")
        if setc:
            self.cookie = setc.split(";")[0]
        return resp, data


def is_error(resp, data, status, etype=None):
    try:
        info = json.loads(data)
    except ValueError:
        return False
    return (resp.status == status and set(info) == {"type", "detail"}
            and info["type"].startswith(ERR)
            and (etype is None or info["type"] == ERR + etype))


# ---- the guest side of the protocol -------------------------------------


def new_key(crv):
    priv = ec.generate_private_key(CURVES[crv][0])
    size = CURVES[crv][1]
    nums = priv.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": crv, "alg": "ECDH-ES+A256KW",
           "x": b64u(nums.x.to_bytes(size, "big")),
           "y": b64u(nums.y.to_bytes(size, "big"))}
    return priv, jwk


def canonical_binding(nonce, jwk, additional=""):
    """RFC 8785 form of the runtime data, spelled out by hand (all members
    are ASCII strings without characters that need escaping)."""
    return ('{"additional-evidence":"%s","nonce":"%s","tee-pubkey":'
            '{"alg":"%s","crv":"%s","kty":"EC","x":"%s","y":"%s"}}'
            % (additional, nonce, jwk["alg"], jwk["crv"], jwk["x"],
               jwk["y"])).encode()


def attestation(nonce, jwk, additional="", report=None, bind_nonce=None):
    if report is None:
        report = hashlib.sha384(canonical_binding(
            bind_nonce or nonce, jwk, additional)).digest()
    return {"runtime-data": {"nonce": nonce, "tee-pubkey": jwk},
            "tee-evidence": {
                "primary_evidence": {
                    "svn": "1",
                    "report_data": base64.b64encode(report).decode()},
                "additional_evidence": additional}}


def auth_body(version="0.4.0", tee="sample"):
    return {"version": version, "tee": tee, "extra-params": ""}


def decrypt_jwe(priv, crv, jwe):
    """Independent RFC 7516/7518 ECDH-ES+A256KW + A256GCM decryption."""
    assert set(jwe) == {"protected", "encrypted_key", "iv", "ciphertext",
                        "tag"}, sorted(jwe)
    hdr_raw = unb64u(jwe["protected"])
    hdr = json.loads(hdr_raw)
    epk = hdr["epk"]
    size = CURVES[crv][1]
    expect = ('{"alg":"ECDH-ES+A256KW","enc":"A256GCM","epk":{"crv":"%s",'
              '"kty":"EC","x":"%s","y":"%s"}}' % (crv, epk["x"], epk["y"]))
    assert hdr_raw.decode() == expect, hdr_raw
    xb, yb = unb64u(epk["x"]), unb64u(epk["y"])
    assert len(xb) == size and len(yb) == size
    peer = ec.EllipticCurvePublicNumbers(
        int.from_bytes(xb, "big"), int.from_bytes(yb, "big"),
        CURVES[crv][0]).public_key()
    z = priv.exchange(ec.ECDH(), peer)
    alg = b"ECDH-ES+A256KW"
    info = (len(alg).to_bytes(4, "big") + alg + (0).to_bytes(4, "big")
            + (0).to_bytes(4, "big") + (256).to_bytes(4, "big"))
    kek = ConcatKDFHash(hashes.SHA256(), 32, info).derive(z)
    wrapped = unb64u(jwe["encrypted_key"])
    assert len(wrapped) == 40
    cek = aes_key_unwrap(kek, wrapped)
    iv, tag = unb64u(jwe["iv"]), unb64u(jwe["tag"])
    assert len(iv) == 12 and len(tag) == 16
    return AESGCM(cek).decrypt(iv, unb64u(jwe["ciphertext"]) + tag,
                               jwe["protected"].encode("ascii"))


def token_claims(token):
    parts = token.split(".")
    assert len(parts) == 3
    assert json.loads(unb64u(parts[0]))["alg"] == "ES256"
    assert len(unb64u(parts[2])) == 64
    return json.loads(unb64u(parts[1]))


# ---- certificates --------------------------------------------------------


def write_pem(path, data):
    with open(path, "wb") as f:
        f.write(data)


def make_pki(d):
    now = datetime.datetime.utcnow()
    later = now + datetime.timedelta(days=1)
    before = now - datetime.timedelta(minutes=5)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject, key, issuer, ikey, ca, san=None, eku=None):
        b = (x509.CertificateBuilder().subject_name(name(subject))
             .issuer_name(name(issuer)).public_key(key.public_key())
             .serial_number(x509.random_serial_number())
             .not_valid_before(before).not_valid_after(later)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None),
                            critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                 key.public_key()), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier
                            .from_issuer_public_key(ikey.public_key()),
                            critical=False))
        if ca:
            b = b.add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san),
                                critical=False)
        if eku:
            b = b.add_extension(x509.ExtendedKeyUsage([eku]),
                                critical=False)
        return b.sign(ikey, hashes.SHA256())

    def save(stem, cert, key):
        write_pem(os.path.join(d, stem + ".crt"),
                  cert.public_bytes(serialization.Encoding.PEM))
        write_pem(os.path.join(d, stem + ".key"), key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = build("coco-attest test CA", ca_key, "coco-attest test CA",
               ca_key, True)
    save("ca", ca, ca_key)
    for stem, san, eku in (
            ("server", [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
             ExtendedKeyUsageOID.SERVER_AUTH),
            ("client", None, ExtendedKeyUsageOID.CLIENT_AUTH)):
        key = ec.generate_private_key(ec.SECP256R1())
        save(stem, build("test " + stem, key, "coco-attest test CA",
                         ca_key, False, san, eku), key)
    return {k: os.path.join(d, k) for k in
            ("ca.crt", "server.crt", "server.key", "client.crt",
             "client.key")}


# ---- test groups ---------------------------------------------------------


def flow_urllib(inst, secret):
    """P-256 flow through urllib and a standard cookie jar."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(jar))

    def post(path, obj):
        req = urllib.request.Request(
            inst.url(path), data=json.dumps(obj).encode(),
            headers={"Content-Type": "application/json"})
        with opener.open(req, timeout=10) as r:
            return r, json.loads(r.read())

    r, chal = post("/kbs/v0/auth", auth_body())
    ok(r.status == 200 and set(chal) == {"nonce", "extra-params"}
       and len(base64.b64decode(chal["nonce"], validate=True)) == 32
       and chal["extra-params"] == "", "P-256: auth returns a Challenge",
       chal)
    cookies = {c.name: c for c in jar}
    sid = cookies.get("kbs-session-id")
    ok(sid is not None and len(sid.value) == 32
       and int(sid.value, 16) >= 0 and sid.expires
       and sid.expires > time.time(),
       "P-256: kbs-session-id cookie (uuid simple form, Expires)", cookies)
    priv, jwk = new_key("P-256")
    r, tok = post("/kbs/v0/attest", attestation(chal["nonce"], jwk))
    claims = token_claims(tok["token"])
    ear = claims["submods"]["cpu0"]
    ok(r.status == 200 and claims["exp"] > claims["iat"]
       and ear["ear.status"] == "affirming"
       and ear["ear.veraison.annotated-evidence"]["runtime_data_claims"]
       ["tee-pubkey"] == jwk, "P-256: attest returns an EAR-like JWT",
       claims)
    with opener.open(inst.url("/kbs/v0/resource/default/sample/test"),
                     timeout=10) as r:
        ctype = r.headers.get("Content-Type")
        jwe = json.loads(r.read())
    plain = decrypt_jwe(priv, "P-256", jwe)
    ok(ctype == "application/json" and plain == secret,
       "P-256: resource JWE decrypts to the secret")
    return tok["token"], priv, jwe


def flow_keepalive(inst, secret, label, **kw):
    """P-521 flow on one keep-alive connection; tee-pubkey carries an
    extra "use" member that the binding must ignore."""
    c = Client(inst, **kw)
    r, data = c.call("POST", "/kbs/v0/auth", auth_body())
    nonce = json.loads(data)["nonce"]
    sock = c.conn.sock
    priv, jwk = new_key("P-521")
    body = attestation(nonce, jwk)
    body["runtime-data"]["tee-pubkey"]["use"] = "enc"
    r, data = c.call("POST", "/kbs/v0/attest", body)
    ok(r.status == 200 and "token" in json.loads(data),
       "%s: P-521 attest (extra 'use' member not bound)" % label, data)
    r, data = c.call("GET", "/kbs/v0/resource/default/sample/test")
    plain = decrypt_jwe(priv, "P-521", json.loads(data))
    ok(r.status == 200 and plain == secret and c.conn.sock is sock,
       "%s: P-521 resource decrypts, connection kept alive" % label)
    return c


def refusals(inst):
    c = Client(inst)
    r, d = c.call("POST", "/kbs/v0/auth", auth_body(version="0.1.0"))
    ok(is_error(r, d, 401), "wrong version -> 401 ErrorInformation", d)
    r, d = c.call("POST", "/kbs/v0/auth", auth_body(version="0.4.0-rc.1"))
    ok(is_error(r, d, 401), "pre-release version -> 401", d)
    r, d = c.call("POST", "/kbs/v0/auth", auth_body(tee="nonsense"))
    ok(is_error(r, d, 401), "unknown tee -> 401", d)
    r, d = c.call("POST", "/kbs/v0/auth", b"{not json")
    ok(is_error(r, d, 401, "SerdeError"), "malformed JSON -> 401 SerdeError")
    r, d = c.call("POST", "/kbs/v0/attest", {"x": 1})
    ok(is_error(r, d, 401), "attest without cookie -> 401", d)
    r, d = c.call("POST", "/kbs/v0/auth", auth_body())
    nonce = json.loads(d)["nonce"]
    priv, jwk = new_key("P-256")
    r, d = c.call("GET", "/kbs/v0/resource/default/sample/test")
    ok(is_error(r, d, 401), "resource before attest -> 401", d)
    wrong = base64.b64encode(os.urandom(32)).decode()
    r, d = c.call("POST", "/kbs/v0/attest",
                  attestation(wrong, jwk, bind_nonce=wrong))
    ok(is_error(r, d, 401), "wrong nonce -> 401", d)
    r, d = c.call("POST", "/kbs/v0/attest",
                  attestation(nonce, jwk, report=os.urandom(48)))
    ok(is_error(r, d, 401), "wrong report_data -> 401", d)
    r, d = c.call("POST", "/kbs/v0/attest",
                  attestation(nonce, jwk, report=hashlib.sha384(
                      canonical_binding(nonce, jwk)).digest() + bytes(16)))
    ok(is_error(r, d, 401), "report_data padded to 64 -> 401 (sample)", d)
    bad = dict(jwk, y=b64u((int.from_bytes(unb64u(jwk["y"]), "big") ^ 1)
                           .to_bytes(32, "big")))
    r, d = c.call("POST", "/kbs/v0/attest", attestation(nonce, bad))
    ok(is_error(r, d, 401), "point not on the curve -> 401", d)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    n = p384.public_numbers()
    k384 = dict(jwk, crv="P-384", x=b64u(n.x.to_bytes(48, "big")),
                y=b64u(n.y.to_bytes(48, "big")))
    r, d = c.call("POST", "/kbs/v0/attest", attestation(nonce, k384))
    ok(is_error(r, d, 401), "P-384 tee-pubkey -> 401", d)
    r, d = c.call("POST", "/kbs/v0/attest",
                  attestation(nonce, jwk, additional="extra"))
    ok(r.status == 200, "additional_evidence is bound and accepted", d)
    r2, d2 = c.call("POST", "/kbs/v0/attest", {})
    ok(r2.status == 200 and d2 == d,
       "re-attest of an attested session returns the same token")
    r, d = c.call("GET", "/kbs/v0/resource/default/sample/missing")
    ok(is_error(r, d, 401), "missing resource -> 401", d)
    r, d = c.call("GET", "/kbs/v0/resource/default/sample")
    ok(is_error(r, d, 404, "InvalidRequestPath"), "short path -> 404", d)
    r, d = c.call("GET", "/kbs/v0/resource/default/../test")
    ok(is_error(r, d, 404), "'..' in path -> 404", d)
    r, d = c.call("GET", "/kbs/v0/nothing")
    ok(is_error(r, d, 404, "InvalidRequestPath"), "unknown path -> 404", d)
    r, d = c.call("GET", "/kbs/v0/auth")
    ok(is_error(r, d, 404), "GET /auth -> 404", d)
    r, d = c.call("HEAD", "/kbs/v0/auth")
    ok(r.status == 404 and d == b"", "HEAD /auth -> 404 without body")
    r, d = c.call("POST", "/kbs/v0/attest", b"x" * ((1 << 20) + 1))
    ok(r.status in (400, 413), "body over 1 MiB -> %d" % r.status)


def bearer(inst, token, priv, secret):
    c = Client(inst)
    r, d = c.call("GET", "/kbs/v0/resource/default/sample/test",
                  headers={"Authorization": "Bearer " + token})
    ok(r.status == 200 and decrypt_jwe(priv, "P-256", json.loads(d))
       == secret, "Bearer token without cookie fetches the resource")
    r, d = c.call("GET", "/kbs/v0/resource/default/sample/test",
                  headers={"Authorization": "Bearer " + token[:-4] +
                           "AAAA"})
    ok(is_error(r, d, 401), "forged Bearer token -> 401", d)


def set_control(inst, obj):
    path = os.path.join(inst.dir, "control")
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.replace(path + ".tmp", path)


def faults(inst):
    control = os.path.join(inst.dir, "control")
    try:
        c = Client(inst)
        set_control(inst, {"delay": 0.4})
        t0 = time.monotonic()
        r, d = c.call("POST", "/kbs/v0/auth", auth_body())
        took = time.monotonic() - t0
        ok(r.status == 200 and took >= 0.4 and "nonce" in json.loads(d),
           "fault delay: answered normally after %.2fs" % took)
        set_control(inst, {"status": 503})
        r, d = c.call("POST", "/kbs/v0/auth", auth_body())
        ok(is_error(r, d, 503), "fault status: 503 ErrorInformation", d)
        set_control(inst, {"garbage": True})
        r, d = c.call("POST", "/kbs/v0/auth", auth_body())
        try:
            json.loads(d)
            parsed = True
        except ValueError:
            parsed = False
        ok(r.status == 200 and not parsed
           and r.getheader("Content-Type") == "application/json",
           "fault garbage: 200 application/json, not JSON", d)
        set_control(inst, {"oversize": 70000})
        r, d = c.call("GET", "/kbs/v0/resource/default/sample/test")
        ok(r.status == 200 and len(d) == 70000 and d == b"x" * 70000
           and r.getheader("Content-Length") == "70000",
           "fault oversize: 70000 bytes with matching Content-Length")
        set_control(inst, {"drop": True})
        try:
            r, d = c.call("POST", "/kbs/v0/auth", auth_body())
            ok(False, "fault drop: incomplete read", d)
        except http.client.IncompleteRead as exc:
            ok(len(exc.partial) < 1000, "fault drop: incomplete read (%d "
               "of 1000 bytes)" % len(exc.partial))
        c = Client(inst)
        set_control(inst, {"status": 503, "paths": ["/kbs/v0/attest"]})
        r1, d = c.call("POST", "/kbs/v0/auth", auth_body())
        r2, d = c.call("POST", "/kbs/v0/attest", {})
        ok(r1.status == 200 and r2.status == 503,
           "fault paths: only the listed path is affected")
        with open(control, "w"):
            pass
        r, d = c.call("POST", "/kbs/v0/auth", auth_body())
        ok(r.status == 200, "empty control file: no faults")
    finally:
        if os.path.exists(control):
            os.unlink(control)


def expiry(inst, secret):
    c = Client(inst)
    r, d = c.call("POST", "/kbs/v0/auth", auth_body())
    nonce = json.loads(d)["nonce"]
    priv, jwk = new_key("P-256")
    r1, _ = c.call("POST", "/kbs/v0/attest", attestation(nonce, jwk))
    r2, d = c.call("GET", "/kbs/v0/resource/default/sample/test")
    good = r1.status == 200 and r2.status == 200 and \
        decrypt_jwe(priv, "P-256", json.loads(d)) == secret
    time.sleep(1.3)
    r, d = c.call("GET", "/kbs/v0/resource/default/sample/test")
    ok(good and is_error(r, d, 401),
       "session timeout 1s: works, then 401 after expiry", d)
    c2 = Client(inst)
    r, d = c2.call("POST", "/kbs/v0/auth", auth_body())
    nonce = json.loads(d)["nonce"]
    time.sleep(1.3)
    r, d = c2.call("POST", "/kbs/v0/attest", attestation(nonce, jwk))
    ok(is_error(r, d, 401), "attest on an expired session -> 401", d)


def check_log(path, jwe, secret):
    text = open(path, encoding="utf-8").read()
    entries = [json.loads(line) for line in text.splitlines()]
    keys = {"method", "path", "status", "request_body", "response_body"}
    ok(entries and all(keys <= set(e) for e in entries),
       "log: %d JSON lines with the required keys" % len(entries))
    leaks = [s for s in (secret.decode(), base64.b64encode(secret).decode(),
                         b64u(secret)) if s in text]
    ok(jwe["ciphertext"] in text and jwe["encrypted_key"] in text
       and not leaks, "log: holds the JWE, never the secret", leaks)


def no_client_cert(inst, ctx):
    inst.ctx, saved = ctx, inst.ctx
    try:
        r, d = Client(inst).call("POST", "/kbs/v0/auth", auth_body())
        ok(False, "HTTPS without client cert refused", r.status)
    except (ssl.SSLError, http.client.HTTPException, OSError):
        ok(True, "HTTPS without client cert refused")
    finally:
        inst.ctx = saved


def group(fn, *args):
    """Run one test group; an exception is one failed test."""
    try:
        return fn(*args)
    except Exception as exc:
        ok(False, "%s: unexpected exception %r" % (fn.__name__, exc),
           traceback.format_exc())
        return None


def main():
    with tempfile.TemporaryDirectory(prefix="kbs-test-") as tmp:
        secret = ("s3cret-" + os.urandom(12).hex()).encode()
        sfile = os.path.join(tmp, "secret")
        write_pem(sfile, secret)
        pki = make_pki(tmp)
        res = ["--resource", "default/sample/test=" + sfile]
        plain_log = os.path.join(tmp, "requests.log")
        cctx = ssl.create_default_context(cafile=pki["ca.crt"])
        cctx.load_cert_chain(pki["client.crt"], pki["client.key"])
        nocert = ssl.create_default_context(cafile=pki["ca.crt"])
        insts = []
        try:
            plain = Instance(tmp, "plain", res + [
                "--log", plain_log,
                "--control", os.path.join(tmp, "plain", "control")])
            insts.append(plain)
            tls = Instance(tmp, "tls", res + [
                "--tls-cert", pki["server.crt"],
                "--tls-key", pki["server.key"],
                "--client-ca", pki["ca.crt"]], "https", cctx)
            insts.append(tls)
            short = Instance(tmp, "short",
                             res + ["--session-timeout", "1"])
            insts.append(short)
            ok(all(i.wait_port() for i in insts),
               "servers started and wrote their port files")
            first = group(flow_urllib, plain, secret)
            group(flow_keepalive, plain, secret, "HTTP")
            if first:
                group(bearer, plain, first[0], first[1], secret)
            group(refusals, plain)
            group(faults, plain)
            group(flow_keepalive, tls, secret, "HTTPS")
            group(no_client_cert, tls, nocert)
            group(expiry, short, secret)
            if first:
                group(check_log, plain_log, first[2], secret)
        finally:
            codes = [i.stop() for i in insts]
            ok(codes and all(c == 0 for c in codes),
               "servers exit 0 on SIGTERM", codes)
            if not all(results):
                for i in insts:
                    with open(os.path.join(i.dir, "stderr")) as f:
                        for line in f.read().splitlines()[-20:]:
                            print("# %s: %s" % (os.path.basename(i.dir),
                                                line))
    print("1..%d" % len(results))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
