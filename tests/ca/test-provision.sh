#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Tests of coco-attest-provision (TAP): the host CA, instance directories,
# the certificates they hold (checked with openssl verify, GnuTLS certtool
# and openssl asn1parse), the TCG EK profile, persistence of the EK state,
# and every refusal.
#
#   test-provision.sh PATH-TO-coco-attest-provision
set -uo pipefail
P=$(realpath "$1")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib/tap.sh"
cd "$T"

# expect_fail "what" "message fragment" cmd...: must exit non-zero and say
expect_fail() {
    local what=$1 msg=$2 out
    shift 2
    out=$("$@" 2>&1)
    local rc=$?
    if [ $rc -ne 0 ] && grep -qF -- "$msg" <<< "$out"; then
        ok 0 "$what"
    else
        echo "# rc=$rc output: $out"
        ok 1 "$what"
    fi
}

claims=(--project-id demo-project --project-number 123456789
        --zone europe-west4-a --instance-name vm1
        --instance-id 6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11)

mode() { stat -c %a "$1"; }

# the value of a custom extension of a certificate, parsed with asn1parse
ext_strings() {
    local crt=$1 oid=$2 off
    off=$(openssl asn1parse -in "$crt" |
          awk -v oid="$oid" '$0 ~ ":"oid"$" { getline; sub(/:.*/, "");
                                                print $1; exit }')
    [ -n "$off" ] || return 1
    openssl asn1parse -in "$crt" -strparse "$off" |
        sed -nE 's/.*(UTF8STRING|INTEGER) *:(.*)$/\2/p'
}

# --- host CA ---------------------------------------------------------
"$P" init-ca --ca-dir ca > /dev/null
ok $? "init-ca creates a CA"
[ "$(mode ca/ca.key)" = 600 ] && [ "$(mode ca)" = 700 ]
ok $? "the CA key is 0600 in a 0700 directory"
openssl x509 -in ca/ca.crt -noout -ext basicConstraints,keyUsage |
    grep -q 'CA:TRUE'
ok $? "the CA certificate is a CA"
expect_fail "init-ca refuses to overwrite a CA key" "refusing to overwrite" \
    "$P" init-ca --ca-dir ca

# --- provisioning ----------------------------------------------------
"$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" > /dev/null
ok $? "provision an instance directory"
for f in identity.conf issuer.key issuer.crt chain.pem root.crt \
         ek-template.crt; do
    [ -f "inst/$f" ] || { echo "# missing $f"; false; }
done
ok $? "the directory holds identity, key, certificate, chain and root"
[ "$(mode inst)" = 700 ] && [ "$(mode inst/issuer.key)" = 600 ]
ok $? "without --group: 0700 directory, 0600 files"
! grep -rq "PRIVATE" inst/root.crt inst/chain.pem inst/issuer.crt &&
    ! cmp -s ca/ca.key inst/issuer.key
ok $? "the host CA key never enters the instance directory"
"$P" verify --instance-dir inst > /dev/null
ok $? "verify accepts a fresh directory"
openssl verify -CAfile ca/ca.crt inst/issuer.crt > /dev/null
ok $? "openssl verify: issuing certificate chains to the host CA"
certtool --verify --load-ca-certificate ca/ca.crt \
    --infile inst/chain.pem > certtool.out 2>&1 &&
    grep -q "Chain verification output: Verified" certtool.out
ok $? "GnuTLS certtool --verify: chain.pem verifies against the host CA"
openssl x509 -in inst/issuer.crt -noout -ext basicConstraints |
    grep -q 'CA:TRUE, pathlen:0'
ok $? "issuing certificate: CA:TRUE, pathlen 0"
end=$(date -d "$(openssl x509 -in inst/issuer.crt -noout -enddate |
                 cut -d= -f2)" +%s)
now=$(date +%s)
[ $((end - now)) -le $((24 * 3600 + 60)) ] && [ $((end - now)) -gt 3600 ]
ok $? "issuing certificate: short validity (24 h by default)"
ext_strings inst/issuer.crt \
    2.25.2183219139539840134.1 > id.txt
printf '%s\n' 01 demo-project 075BCD15 europe-west4-a vm1 \
    6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11 | diff - id.txt
ok $? "identity extension decodes to exactly the claims"
openssl x509 -in inst/issuer.crt -noout -ext subjectAltName |
    grep -q 'URI:spiffe://demo-project/coco-attest/europe-west4-a/vm1/6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11'
ok $? "SPIFFE-style SAN URI carries the identity"
grep -q '^project-number=123456789$' inst/identity.conf &&
    grep -q '^rekey=false$' inst/identity.conf
ok $? "identity.conf records the claims and the EK policy"

# a custom OID
"$P" provision --ca-dir ca --instance-dir inst-oid "${claims[@]}" \
    --oid 1.3.6.1.4.1.99999.1 > /dev/null &&
    ext_strings inst-oid/issuer.crt 1.3.6.1.4.1.99999.1 | grep -q '^vm1$'
ok $? "the identity extension OID is configurable"

# the GCE-compatible profile (go-tpm-tools' GCEInstanceInfo)
"$P" provision --ca-dir ca --instance-dir inst-gce --project-id \
    jiankun-vm-test --project-number 620438545889 --zone us-west1-b \
    --instance-name jkltest42102 --instance-id 3560342035431930290 \
    --gce > /dev/null &&
    ext_strings inst-gce/issuer.crt 1.3.6.1.4.1.11129.2.1.21 > gce.txt &&
    printf '%s\n' us-west1-b 907504E5E1 jiankun-vm-test 3168E037BCCFB9B2 \
        jkltest42102 | diff - gce.txt &&
    openssl asn1parse -in inst-gce/issuer.crt -strparse "$(
        openssl asn1parse -in inst-gce/issuer.crt |
        awk '/:1.3.6.1.4.1.11129.2.1.21$/ { getline; sub(/:.*/, "");
                                            print $1 }')" |
        grep -q 'BOOLEAN *:255'
ok $? "--gce adds GCEInstanceInfo, as go-tpm-tools decodes it"
expect_fail "--gce needs a numeric instance id" "numeric instance-id" \
    "$P" provision --ca-dir ca --instance-dir inst-gce2 "${claims[@]}" --gce

# the CA key through an OpenSSL store URI
"$P" provision --ca-cert ca/ca.crt --ca-key "file://$T/ca/ca.key" \
    --instance-dir inst-uri "${claims[@]}" > /dev/null
ok $? "the CA key can be given as an OpenSSL store URI"

# group ownership for QEMU
if getent group nogroup > /dev/null; then
    "$P" provision --ca-dir ca --instance-dir inst-grp --group nogroup \
        "${claims[@]}" > /dev/null &&
        [ "$(stat -c '%a %U %G' inst-grp)" = "750 root nogroup" ] &&
        [ "$(stat -c '%a %U %G' inst-grp/issuer.key)" = "640 root nogroup" ] &&
        [ "$(stat -c '%a %U %G' inst-grp/ek)" = "2770 root nogroup" ]
    ok $? "--group: root:GROUP 0750 directory, 0640 files, 2770 ek/"
fi

# --- EK certificates -------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out ek.key
openssl ec -in ek.key -pubout -outform DER -out ek.der 2> /dev/null
"$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" \
    --ek-pub ek.der > /dev/null
ok $? "provision with --ek-pub issues the EK certificate"
openssl x509 -inform DER -in inst/ek/ek-01c0000a.crt -out ek.pem
openssl verify -CAfile ca/ca.crt -untrusted inst/issuer.crt ek.pem \
    > /dev/null
ok $? "openssl verify: EK certificate chains to the host CA"
cat ek.pem inst/chain.pem > ek-chain.pem
certtool --verify --load-ca-certificate ca/ca.crt \
    --infile ek-chain.pem 2>&1 | grep -q "Chain verification output: Verified"
ok $? "GnuTLS certtool --verify: EK certificate verifies"
openssl x509 -in ek.pem -noout -subject | grep -q '^subject=$'
ok $? "EK profile: empty subject"
openssl x509 -in ek.pem -noout -text > ek.txt
grep -A1 'Subject Alternative Name: critical' ek.txt |
    grep -q 'DirName:/2.23.133.2.1=id:434F4341/2.23.133.2.2=.*/2.23.133.2.3='
ok $? "EK profile: critical SAN with TPM manufacturer, model, version"
off=$(openssl asn1parse -in ek.pem |
      awk '/Subject Directory Attributes/ { getline; sub(/:.*/, "");
                                             print $1; exit }')
openssl asn1parse -in ek.pem -strparse "$off" > sda.txt &&
    grep -q 'OBJECT *:2.23.133.2.16' sda.txt &&
    grep -q 'UTF8STRING *:2.0' sda.txt
ok $? "EK profile: subjectDirectoryAttributes with tpmSpecification"
grep -A1 'Basic Constraints: critical' ek.txt | grep -q 'CA:FALSE' &&
    grep -A1 'Extended Key Usage' ek.txt | grep -q '2.23.133.8.1' &&
    grep -A1 'Key Usage: critical' ek.txt | grep -q 'Key Agreement'
ok $? "EK profile: CA:FALSE, EKU 2.23.133.8.1, keyAgreement for ECC"
ext_strings ek.pem 2.25.2183219139539840134.1 |
    grep -qx vm1
ok $? "EK certificate carries the instance identity"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
    -out rsa.key 2> /dev/null
openssl pkey -in rsa.key -pubout -out rsa.pub
"$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" \
    --ek-pub rsa.pub --ek-nv 0x01c00002 > /dev/null &&
    openssl x509 -inform DER -in inst/ek/ek-01c00002.crt -noout -text |
    grep -A1 'Key Usage: critical' | grep -q 'Key Encipherment'
ok $? "RSA-2048 EK (PEM SPKI): keyEncipherment, NV index 0x01c00002"

# --- re-provisioning keeps the EK state --------------------------------
sum_ek=$(cat inst/ek/* | sha256sum)
sum_key=$(sha256sum < inst/issuer.key)
"$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" > /dev/null
[ "$(cat inst/ek/* | sha256sum)" = "$sum_ek" ] &&
    [ "$(sha256sum < inst/issuer.key)" != "$sum_key" ]
ok $? "re-provisioning renews the issuing key and keeps the EK state"

# --- refusals: clear error, nothing lost ------------------------------
before=$(find inst -type f -exec sha256sum {} + | sort)
expect_fail "bad project number" "--project-number must be a decimal" \
    "$P" provision --ca-dir ca --instance-dir inst \
    --project-id p --project-number 12a --zone z --instance-name n \
    --instance-id 1
expect_fail "bad zone characters" "zone must be" \
    "$P" provision --ca-dir ca --instance-dir inst \
    --project-id p --project-number 1 --zone 'z/../x' --instance-name n \
    --instance-id 1
expect_fail "missing instance name" "instance-name must be" \
    "$P" provision --ca-dir ca --instance-dir inst \
    --project-id p --project-number 1 --zone z --instance-id 1
expect_fail "bad OID" "is not a dotted OID" \
    "$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" \
    --oid not.an.oid
expect_fail "bad --ek-pub" "not a public key" \
    "$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" \
    --ek-pub ca/ca.crt
expect_fail "unknown EK NV index" "--ek-nv must be" \
    "$P" provision --ca-dir ca --instance-dir inst "${claims[@]}" \
    --ek-pub ek.der --ek-nv 0x1234
"$P" init-ca --ca-dir ca2 > /dev/null
expect_fail "missing CA key" "nonexistent.key" \
    "$P" provision --ca-cert ca/ca.crt --ca-key ca/nonexistent.key \
    --instance-dir inst "${claims[@]}"
expect_fail "CA key that does not match the CA certificate" \
    "does not match" \
    "$P" provision --ca-cert ca/ca.crt --ca-key ca2/ca.key \
    --instance-dir inst "${claims[@]}"
expect_fail "missing CA" "ca-missing/ca.crt: No such file" \
    "$P" provision --ca-dir ca-missing --instance-dir inst "${claims[@]}"
[ "$(find inst -type f -exec sha256sum {} + | sort)" = "$before" ]
ok $? "failed provisioning leaves the directory untouched"

expect_fail "verify against another CA" "unable to get local issuer" \
    "$P" verify --instance-dir inst --ca-cert ca2/ca.crt
cp -a inst inst-bad
openssl ecparam -name prime256v1 -genkey -noout 2> /dev/null |
    openssl pkey -out inst-bad/issuer.key
expect_fail "verify catches a key that does not match" "does not match" \
    "$P" verify --instance-dir inst-bad
sed -i 's/^project-number=.*/project-number=x/' inst-bad/identity.conf
expect_fail "verify catches corrupt claims" "project-number" \
    "$P" verify --instance-dir inst-bad

# --- renewal: a new issuing certificate under a running VM -------------
end_of() { date -d "$(openssl x509 -in "$1" -noout -enddate | cut -d= -f2)" +%s; }
keep() { sha256sum inst/identity.conf inst/issuer.key inst/ek-template.crt \
         inst/ek/*; }
kept=$(keep)
old_end=$(end_of inst/issuer.crt)
old_crt=$(sha256sum < inst/issuer.crt)
old_ino=$(stat -c %i inst/issuer.crt)
# libfaketime is preloaded: an ASan build (the sanitizer suite) must
# accept a runtime that does not come first
fake() {
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        faketime "$@"
}
out=$(fake -f '+20h' "$P" renew --instance-dir inst --ca-dir ca)
ok $? "renew an instance directory"
grep -qx "renewed inst" <<< "$out"
ok $? "renew says what it renewed"
[ "$(keep)" = "$kept" ]
ok $? "renew keeps identity.conf, issuer.key, the EK profile and ek/"
[ "$(sha256sum < inst/issuer.crt)" != "$old_crt" ] &&
    [ "$(stat -c %i inst/issuer.crt)" != "$old_ino" ] &&
    [ -z "$(find inst -name '.renew-*')" ]
ok $? "renew replaces issuer.crt by a rename, leaves no staging directory"
new_end=$(end_of inst/issuer.crt)
[ $((new_end - old_end)) -ge $((20 * 3600 - 120)) ] &&
    [ $((new_end - old_end)) -le $((20 * 3600 + 120)) ]
ok $? "the renewed certificate lives validity-hours from the renewal"
fake -f '+20h' "$P" verify --instance-dir inst > /dev/null &&
    openssl x509 -in inst/chain.pem | cmp -s - <(openssl x509 -in inst/issuer.crt)
ok $? "the renewed directory verifies, chain.pem starts with issuer.crt"
[ "$(openssl x509 -in inst/issuer.crt -noout -pubkey)" = \
  "$(openssl pkey -in inst/issuer.key -pubout)" ]
ok $? "the renewed certificate certifies the same issuing key"
ext_strings inst/issuer.crt 2.25.2183219139539840134.1 | diff - id.txt
ok $? "the renewed certificate carries the same identity"
"$P" renew --instance-dir inst --ca-dir ca --validity-hours 2 > /dev/null &&
    end=$(end_of inst/issuer.crt) && now=$(date +%s) &&
    [ $((end - now)) -le $((2 * 3600 + 60)) ] &&
    [ $((end - now)) -gt 3600 ] &&
    grep -q '^validity-hours=24$' inst/identity.conf &&
    "$P" verify --instance-dir inst > /dev/null
ok $? "renew --validity-hours sets this certificate's lifetime only"
"$P" renew --instance-dir inst --ca-cert ca/ca.crt \
    --ca-key "file://$T/ca/ca.key" > /dev/null
ok $? "renew takes the CA key as an OpenSSL store URI"
if [ -d inst-grp ]; then
    "$P" renew --instance-dir inst-grp --ca-dir ca > /dev/null &&
        [ "$(stat -c '%a %U %G' inst-grp/issuer.crt)" = "640 root nogroup" ] &&
        [ "$(stat -c '%a %U %G' inst-grp/chain.pem)" = "640 root nogroup" ]
    ok $? "renew keeps the files' mode and group"
fi
flock inst sleep 2 &
locker=$!
sleep 0.5
t0=$(date +%s%N)
"$P" renew --instance-dir inst --ca-dir ca > /dev/null &&
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -ge 1000 ] &&
    "$P" verify --instance-dir inst > /dev/null
ok $? "renew waits for a provision or purge holding the directory's lock"
wait $locker
"$P" provision --ca-dir ca --instance-dir inst-uuid "${claims[@]}" \
    --uuid 0B9C7E36-1F0E-4C55-A1C3-5E1D2F6A7B80 > /dev/null &&
    grep -qx 'vm-uuid=0b9c7e36-1f0e-4c55-a1c3-5e1d2f6a7b80' \
        inst-uuid/identity.conf &&
    id_before=$(sha256sum < inst-uuid/identity.conf) &&
    "$P" renew --instance-dir inst-uuid --ca-dir ca > /dev/null &&
    [ "$(sha256sum < inst-uuid/identity.conf)" = "$id_before" ]
ok $? "--uuid records the VM's UUID in identity.conf; renew keeps it"
expect_fail "--uuid must be a UUID" "is not a UUID" \
    "$P" provision --ca-dir ca --instance-dir inst-uuid2 "${claims[@]}" \
    --uuid 6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a1
[ ! -e inst-uuid2 ]
ok $? "a refused --uuid creates nothing"

before=$(find inst -type f -exec sha256sum {} + | sort)
expect_fail "renew needs --instance-dir" "renew needs --instance-dir" \
    "$P" renew --ca-dir ca
expect_fail "renew needs the host CA" "give --ca-dir, or --ca-cert" \
    "$P" renew --instance-dir inst
expect_fail "renew: --validity-hours out of range" \
    "--validity-hours must be between" \
    "$P" renew --instance-dir inst --ca-dir ca --validity-hours 0
expect_fail "renew: unknown option" "Unknown option" \
    "$P" renew --instance-dir inst --ca-dir ca --project-id other
expect_fail "renew: stray argument" "unexpected argument 'extra'" \
    "$P" renew --instance-dir inst --ca-dir ca extra
expect_fail "renew a missing directory" \
    "missing-inst: no such instance directory (provision it first)" \
    "$P" renew --instance-dir missing-inst --ca-dir ca
[ ! -e missing-inst ]
ok $? "renewing a missing directory creates nothing"
expect_fail "renew with a CA key that does not match" "does not match" \
    "$P" renew --instance-dir inst --ca-cert ca/ca.crt --ca-key ca2/ca.key
expect_fail "renew with a missing CA" "ca-missing/ca.crt: No such file" \
    "$P" renew --instance-dir inst --ca-dir ca-missing
[ "$(find inst -type f -exec sha256sum {} + | sort)" = "$before" ]
ok $? "a refused renewal leaves the directory untouched"
cp -a inst inst-purged
"$P" purge --instance-dir inst-purged --keep-ek
expect_fail "renew a purged directory" \
    "inst-purged/identity.conf: No such file or directory" \
    "$P" renew --instance-dir inst-purged --ca-dir ca
cp -a inst inst-nokey
rm inst-nokey/issuer.key
expect_fail "renew without the issuing key" \
    "issuer.key: No such file or directory (the directory is purged" \
    "$P" renew --instance-dir inst-nokey --ca-dir ca
cp -a inst inst-mismatch
openssl ecparam -name prime256v1 -genkey -noout 2> /dev/null |
    openssl pkey -out inst-mismatch/issuer.key
expect_fail "renew refuses a key that does not match issuer.crt" \
    "provision the directory again" \
    "$P" renew --instance-dir inst-mismatch --ca-dir ca
cp -a inst inst-badclaims
sed -i 's/^zone=.*/zone=bad\/zone/' inst-badclaims/identity.conf
expect_fail "renew refuses corrupt claims" "zone must be" \
    "$P" renew --instance-dir inst-badclaims --ca-dir ca

# --- a full disk: nothing half-written, the previous instance intact ----
mkdir -p full
if mount -t tmpfs -o size=64k tmpfs full 2> /dev/null; then
    "$P" provision --ca-dir ca --instance-dir full/inst "${claims[@]}" \
        > /dev/null
    before=$(find full/inst -type f -exec sha256sum {} + | sort)
    dd if=/dev/zero of=full/filler bs=4k 2> /dev/null
    out=$("$P" provision --ca-dir ca --instance-dir full/inst \
          "${claims[@]}" 2>&1)
    rc=$?
    [ $rc -ne 0 ] && grep -q "No space left" <<< "$out" &&
        [ "$(find full/inst -type f -exec sha256sum {} + | sort)" = "$before" ] &&
        [ -z "$(find full/inst -name '.provision-*')" ]
    ok $? "full disk: refused, the previous instance untouched"
    out=$("$P" provision --ca-dir ca --instance-dir full/new \
          "${claims[@]}" 2>&1)
    [ $? -ne 0 ] && [ ! -e full/new ]
    ok $? "full disk: a new instance leaves nothing behind"
    umount full
else
    skip "full disk: refused (cannot mount a tmpfs here)"
    skip "full disk: a new instance (cannot mount a tmpfs here)"
fi

# --- purge ------------------------------------------------------------
"$P" purge --instance-dir inst --keep-ek &&
    [ "$(ls inst)" = ek ] && [ -n "$(ls inst/ek)" ]
ok $? "purge --keep-ek leaves only the EK state"
"$P" purge --instance-dir inst && [ ! -e inst ]
ok $? "purge removes the directory"

tap_end
