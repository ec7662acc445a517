#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# Tests of the libvirt qemu hook (TAP), fed domain XML as libvirt does.
#
#   test-hook.sh PATH-TO-coco-attest-hook PATH-TO-coco-attest-provision
set -uo pipefail
H=$(realpath "$1")
P=$(realpath "$2")
SCHEMA=$(realpath "$(dirname "$0")/../../docs/schemas/coco-attest-domain.rng")
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
. "$(dirname "$0")/../lib/tap.sh"
cd "$T"

"$P" init-ca --ca-dir ca > /dev/null
cat > hook.conf <<CONF
[ca]
dir=$T/ca
[hook]
state-dir=$T/state
group=nogroup
CONF
export COCO_ATTEST_HOOK_CONF=$T/hook.conf
UUID=6d1f0a52-8b1c-4a77-9d0e-3f0b6e8c2a11
OTHER=7e2f1b63-9c2d-4b88-ae1f-4a1c7f9d3b22

# the <qemu:commandline> for instance directory $1
cmdline() {
    cat <<XML
  <qemu:commandline>
    <qemu:arg value='-object'/>
    <qemu:arg value='coco-attest-ca,id=ca0,dir=$1'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='coco-attest,ca=ca0'/>
  </qemu:commandline>
XML
}

# domain NAME METADATA [SECLABEL [CMDLINE]]: with metadata, the
# command line defaults to this domain's own instance directory
domain() {
    local c=${4-}
    [ -n "$2" ] && [ $# -lt 4 ] && c=$(cmdline "$T/state/$UUID")
    cat <<XML
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>$1</name>
  <uuid>$UUID</uuid>
  <metadata>$2</metadata>
  <memory unit='MiB'>256</memory>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  ${3:-}
$c
</domain>
XML
}

META="<coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'>
  <coca:project id='demo-project' number='123456789'/>
  <coca:zone>europe-west4-a</coca:zone>
</coca:instance>"

# --- prepare begin --------------------------------------------------
domain vm1 "$META" > vm1.xml
printf '%s\n' "$META" > meta.xml
xmllint --noout --relaxng "$SCHEMA" meta.xml 2> /dev/null
ok $? "the example metadata validates against the RelaxNG schema"
"$H" vm1 prepare begin - < vm1.xml
ok $? "prepare begin provisions the instance"
D=state/$UUID
[ "$(stat -c '%a %U %G' "$D")" = "750 root nogroup" ] &&
    [ "$(stat -c '%a %U %G' "$D/issuer.key")" = "640 root nogroup" ]
ok $? "state directory root:GROUP 0750, files 0640"
grep -q '^instance-name=vm1$' "$D/identity.conf" &&
    grep -q "^instance-id=$UUID$" "$D/identity.conf" &&
    grep -q '^project-number=123456789$' "$D/identity.conf"
ok $? "instance name and id default to the domain's name and UUID"
grep -q "^vm-uuid=$UUID$" "$D/identity.conf"
ok $? "the directory records the domain UUID, which QEMU checks against -uuid"
"$P" verify --instance-dir "$D" > /dev/null &&
    openssl verify -CAfile ca/ca.crt "$D/issuer.crt" > /dev/null
ok $? "the provisioned directory verifies against the host CA"

# explicit name/id, profile, EK policy, DAC seclabel group
META2="<coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'>
  <coca:project id='p2' number='42'/>
  <coca:zone>z2</coca:zone>
  <coca:name>web-1</coca:name>
  <coca:id>3560342035431930290</coca:id>
  <coca:profile gce='yes'/>
  <coca:ek rekey='yes'/>
</coca:instance>"
printf '%s\n' "$META2" > meta2.xml
xmllint --noout --relaxng "$SCHEMA" meta2.xml 2> /dev/null
ok $? "the full metadata validates against the RelaxNG schema"
printf '%s\n' "<coca:instance xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'><coca:zone>z</coca:zone></coca:instance>" > meta3.xml
! xmllint --noout --relaxng "$SCHEMA" meta3.xml 2> /dev/null
ok $? "the schema rejects metadata without a project"
domain vm2 "$META2" "<seclabel type='dynamic' model='dac' relabel='yes'><label>+0:+65534</label></seclabel>" > vm2.xml
"$H" vm2 prepare begin - < vm2.xml &&
    grep -q '^instance-name=web-1$' "$D/identity.conf" &&
    grep -q '^gce=true$' "$D/identity.conf" &&
    grep -q '^rekey=true$' "$D/identity.conf" &&
    [ "$(stat -c %g "$D")" = 65534 ]
ok $? "explicit claims, GCE profile, EK policy, group from the DAC seclabel"

# --- domains without metadata, and bad metadata -----------------------
domain plain "" > plain.xml
rm -rf state2
sed "s|state-dir=.*|state-dir=$T/state2|" hook.conf > hook2.conf
COCO_ATTEST_HOOK_CONF=$T/hook2.conf "$H" plain prepare begin - < plain.xml &&
    [ ! -e state2 ]
ok $? "domains without coco-attest metadata are ignored"

refused() {   # refused WHAT MESSAGE FILE [CONF]: exit 1, one line, nothing made
    local out rc
    rm -rf state2
    out=$(COCO_ATTEST_HOOK_CONF=${4:-$T/hook2.conf} "$H" bad prepare begin - \
          < "$3" 2>&1)
    rc=$?
    if [ $rc -eq 1 ] && grep -qF -- "$2" <<< "$out" &&
       [ "$(wc -l <<< "$out")" = 1 ] && [ ! -e "state2/$UUID" ] &&
       [ ! -e "state/$OTHER" ]; then
        ok 0 "$1"
    else
        echo "# exit $rc: $out"
        ok 1 "$1"
    fi
}
bad() {   # bad WHAT MESSAGE METADATA
    domain bad "$3" > bad.xml
    refused "$1" "$2" bad.xml
}
NS="xmlns:coca='https://coco-attest.invalid/xmlns/domain/1'"
bad "refused: project number not a number" "decimal number" \
    "<coca:instance $NS><coca:project id='p' number='x1'/><coca:zone>z</coca:zone></coca:instance>"
bad "refused: missing zone" "zone must be" \
    "<coca:instance $NS><coca:project id='p' number='1'/></coca:instance>"
bad "refused: bad characters in the project" "project-id must be" \
    "<coca:instance $NS><coca:project id='a/b' number='1'/><coca:zone>z</coca:zone></coca:instance>"
bad "refused: bad boolean" "yes or no" \
    "<coca:instance $NS><coca:project id='p' number='1'/><coca:zone>z</coca:zone><coca:ek rekey='maybe'/></coca:instance>"
bad "refused: two instances" "more than one" \
    "<coca:instance $NS><coca:project id='p' number='1'/><coca:zone>z</coca:zone></coca:instance><coca:instance $NS/>"
# a DTD (libvirt never writes one): refused before anything in it is
# read, whatever it declares; the metadata itself is valid
dtd() {   # dtd WHAT PROLOG [ZONE]
    { printf '%s\n' "$2"
      domain bad "<coca:instance $NS><coca:project id='p' number='1'/><coca:zone>${3:-z}</coca:zone></coca:instance>"
    } > dtd.xml
    refused "refused: $1" "document type declaration" dtd.xml
}
printf 'leaked-zone' > secret
printf '<!ENTITY zone "leaked-zone">' > pe.dtd
dtd "internal DTD with an entity" \
    '<!DOCTYPE domain [<!ENTITY zone "z">]>' '&zone;'
dtd "billion laughs" \
    "<!DOCTYPE domain [<!ENTITY l0 'lol'>
$(for i in 1 2 3 4 5 6 7 8 9; do
      printf '<!ENTITY l%d "%s">\n' $i \
          "$(for j in 1 2 3 4 5 6 7 8 9 10; do printf '&l%d;' $((i - 1)); done)"
  done)]>" '&l9;'
dtd "external entity" \
    "<!DOCTYPE domain [<!ENTITY zone SYSTEM 'file://$T/secret'>]>" '&zone;'
dtd "external parameter entity" \
    "<!DOCTYPE domain [<!ENTITY % pe SYSTEM 'file://$T/pe.dtd'> %pe;]>" \
    '&zone;'
dtd "DOCTYPE without entities" '<!DOCTYPE domain>'
dtd "DOCTYPE with an external subset" \
    "<!DOCTYPE domain SYSTEM 'file://$T/pe.dtd'>"
printf '<domain><name>x' > broken.xml
out=$(COCO_ATTEST_HOOK_CONF=$T/hook2.conf "$H" x prepare begin - < broken.xml 2>&1)
[ $? -ne 0 ] && grep -q "does not parse" <<< "$out"
ok $? "refused: XML that does not parse"
out=$(COCO_ATTEST_HOOK_CONF=$T/missing.conf "$H" vm1 prepare begin - < vm1.xml 2>&1)
[ $? -ne 0 ] && grep -q "missing.conf" <<< "$out"
ok $? "refused: missing configuration, named"

bad "refused: a misspelt element, by the schema" \
    "does not follow the schema" \
    "<coca:instance $NS><coca:project id='p' number='1'/><coca:zone>z</coca:zone><coca:nmae>x</coca:nmae></coca:instance>"
bad "refused: an unknown attribute, by the schema" \
    "does not follow the schema" \
    "<coca:instance $NS><coca:project id='p' number='1' nubmer='2'/><coca:zone>z</coca:zone></coca:instance>"

# --- <qemu:commandline> against the metadata ----------------------------
M1="<coca:instance $NS><coca:project id='p' number='1'/><coca:zone>z</coca:zone></coca:instance>"
domain bad "$M1" "" "$(cmdline "$T/state/$OTHER")" > copied.xml
refused "refused: a command line naming another domain's directory" \
    "copied from another domain" copied.xml hook.conf
domain bad "$M1" "" "" > nodevice.xml
refused "refused: metadata without -object coco-attest-ca" \
    "no -object coco-attest-ca" nodevice.xml hook.conf
domain bad "$M1" "" "$(cmdline "$T/state/$UUID" | grep -v 'coco-attest,ca=ca0\|-device')" > noobj.xml
refused "refused: -object coco-attest-ca without -device coco-attest" \
    "no -device coco-attest" noobj.xml hook.conf
domain bad "" "" "$(cmdline "$T/state/$UUID")" > nometa.xml
refused "refused: no metadata, but a directory the hook owns" \
    "nothing provisions it" nometa.xml hook.conf
domain plain "" "" "$(cmdline /srv/own-dir)" > owndir.xml
"$H" plain prepare begin - < owndir.xml
ok $? "no metadata and a directory outside the state directory: ignored"
domain bad "$M1" "" "  <qemu:commandline><qemu:arg value='-object'/><qemu:arg value='{\"qom-type\":\"coco-attest-ca\",\"id\":\"ca0\",\"dir\":\"$T/state/$UUID\"}'/></qemu:commandline>" > json.xml
refused "refused: -object coco-attest-ca as JSON" "form the hook does not read" \
    json.xml hook.conf
# what QEMU would read differently from a naive parser (it takes the
# last of two keys), and paths that reach another directory
carg() {   # carg VALUE: metadata and a command line with that -object
    domain bad "$M1" "" "  <qemu:commandline><qemu:arg value='-object'/><qemu:arg value='$1'/><qemu:arg value='-device'/><qemu:arg value='coco-attest,ca=c'/></qemu:commandline>"
}
carg "coco-attest-ca,id=c,dir=$T/state/$UUID,dir=$T/state/$OTHER" > dup.xml
refused "refused: dir= given twice (QEMU takes the last)" \
    "form the hook does not read" dup.xml hook.conf
carg "coco-attest-ca,id=c,dir=$T/state/$UUID,qom-type=tls-creds-anon" > qt.xml
refused "refused: a second type key" "form the hook does not read" qt.xml \
    hook.conf
carg "x,qom-type=coco-attest-ca,id=c,dir=$T/state/$UUID" > qt2.xml
refused "refused: the type given by qom-type=" "form the hook does not read" \
    qt2.xml hook.conf
carg '{"qom-type":"coco-attest\u002dca","id":"c","dir":"x"}' > esc.xml
refused "refused: JSON with an escape hiding the type" \
    "form the hook does not read" esc.xml hook.conf
carg "coco-attest-ca,id=c,dir=$T/state/$UUID/ek/.." > dots.xml
refused "refused: a path that only resolves to the directory" \
    "copied from another domain" dots.xml hook.conf
domain bad "$M1" "" "$(cmdline "$T/state/$UUID" | sed "s|</qemu:commandline>|<qemu:arg value='-uuid'/><qemu:arg value='$OTHER'/></qemu:commandline>|")" > uuid.xml
refused "refused: a second -uuid in the command line" "-uuid" uuid.xml \
    hook.conf
domain bad "" "" "$(cmdline "/proc/self/root$T/state/$UUID")" > proc.xml
refused "refused: no metadata, the state directory through /proc" \
    "nothing provisions it" proc.xml hook.conf

# --- the state directory: the hook's own, no planted symlinks ---------------
mkdir -p victim sd4
echo keep > victim/chain.pem
printf '%s\n' "[ca]" "dir=$T/ca" "[hook]" "group=nogroup" \
    "state-dir=$T/sd4" > hook4.conf
ln -s "$T/victim" "sd4/$UUID"
domain vm1 "$META" "" "$(cmdline "$T/sd4/$UUID")" > sym.xml
refused "refused: an instance directory that is a symlink" "not a directory the hook made" \
    sym.xml hook4.conf
out=$(COCO_ATTEST_HOOK_CONF=$T/hook4.conf "$H" vm1 release end - < sym.xml 2>&1)
[ $? -eq 1 ] && grep -q "not a directory the hook made" <<< "$out" &&
    [ "$(cat victim/chain.pem)" = keep ] && [ "$(stat -c %a victim)" != 750 ]
ok $? "release end does not follow it either: the target is untouched"
rm "sd4/$UUID"
chmod 1777 sd4
refused "refused: a state directory others can write" "writable by it alone" \
    sym.xml hook4.conf
chmod 755 sd4

# --- oversized XML: only prepare refuses it -------------------------------
{ head -c 4200000 /dev/zero | tr '\0' ' '; cat vm1.xml; } > big.xml
"$H" vm1 reconnect begin - < big.xml && "$H" vm1 release end - < big.xml &&
    "$H" vm1 migrate begin - < big.xml | cmp -s - big.xml
ok $? "XML over 4 MiB: reconnect and release pass, migrate passes it through"
! "$H" vm1 prepare begin - < big.xml 2> /dev/null
ok $? "XML over 4 MiB: prepare refuses it"

# --- hook.conf ---------------------------------------------------------------
TOP=$(cd "$(dirname "$SCHEMA")/../.." && pwd)
EX=$TOP/libvirt-hooks/hook.conf.example
out=$("$H" --check-config "$EX" 2> /dev/null)
grep -qx 'state-dir=/var/lib/coco-attest' <<< "$out" &&
    grep -qx 'group=libvirt-qemu' <<< "$out" &&
    grep -qx 'ca-cert=/etc/coco-attest/ca/ca.crt' <<< "$out" &&
    grep -qx 'ca-key=/etc/coco-attest/ca/ca.key' <<< "$out" &&
    grep -qx 'validity-hours=24' <<< "$out"
ok $? "the shipped hook.conf example parses to exactly its values"
sed -n '/^<!-- hook.conf -->/,/^```$/p' "$TOP/docs/libvirt.md" |
    sed '1,2d;$d' > docs-conf.txt
cmp -s docs-conf.txt "$EX"
ok $? "docs/libvirt.md shows the shipped hook.conf, verbatim"
conf_refused() {   # conf_refused WHAT MESSAGE LINE...
    local what=$1 msg=$2 out
    shift 2
    printf '%s\n' "[ca]" "dir=$T/ca" "[hook]" "$@" > bad.conf
    out=$("$H" --check-config bad.conf 2>&1)
    if [ $? -ne 0 ] && grep -qF -- "$msg" <<< "$out" &&
       grep -qF bad.conf <<< "$out"; then
        ok 0 "$what"
    else
        echo "# $out"
        ok 1 "$what"
    fi
}
conf_refused "hook.conf: a trailing comment is refused, not read as a value" \
    "put comments on their own lines" \
    "group=libvirt-qemu               # default"
conf_refused "hook.conf: an unknown key is refused" "unknown key 'stat-dir'" \
    "stat-dir=/srv"
conf_refused "hook.conf: validity-hours must be a number of hours" \
    "validity-hours='24h'" "validity-hours=24h"
conf_refused "hook.conf: a relative state-dir is refused" "absolute path" \
    "state-dir=var/lib"
conf_refused "hook.conf: a state-dir of / is refused" "other than /" \
    "state-dir=/"
conf_refused "hook.conf: a key given twice is refused" "given twice" \
    "state-dir=/srv/a" "state-dir=/srv/b"
conf_refused "hook.conf: a localised key is refused" "localised key" \
    "state-dir[fr]=/srv/a"
conf_refused "hook.conf: escapes are refused" "escape sequences" \
    'state-dir=/srv/a\s'
conf_refused "hook.conf: an empty value is refused" "has no value" \
    "group="
printf '%s\n' "[ca]" "dir=$T/ca" "[hook]" "group=nogroup" \
    "state-dir=$T/state3" > hook3.conf
refused "refused at start: a broken hook.conf, named" "has no value" \
    copied.xml bad.conf

# --- print-xml ---------------------------------------------------------------
domain vm3 "$M1" "" "" | sed '/<uuid>/d' > nouuid.xml
! "$P" print-xml --domain nouuid.xml > /dev/null 2> nouuid.err &&
    grep -q "define the domain first" nouuid.err
ok $? "print-xml --domain: a domain without a UUID (not defined yet)"
COCO_ATTEST_HOOK_CONF=$T/hook3.conf "$P" print-xml --domain - \
    < copied.xml > fixed.xml &&
    grep -q "dir=$T/state3/$UUID\"" fixed.xml &&
    ! grep -q "$OTHER" fixed.xml &&
    [ "$(grep -c 'coco-attest-ca' fixed.xml)" = 1 ] &&
    COCO_ATTEST_HOOK_CONF=$T/hook3.conf "$H" vm3 prepare begin - \
        < fixed.xml && [ -f "$T/state3/$UUID/issuer.crt" ]
ok $? "print-xml --domain replaces a copied command line; the hook takes it"
COCO_ATTEST_HOOK_CONF=$T/hook3.conf "$P" print-xml --domain nodevice.xml |
    xmllint --xpath "string(//*[local-name()='arg'][2]/@value)" - \
    > arg.txt 2> /dev/null && grep -q "state3/$UUID" arg.txt
ok $? "print-xml --domain adds the command line and the qemu namespace"
COCO_ATTEST_HOOK_CONF=$T/hook3.conf "$P" print-xml --uuid "$UUID" |
    grep -q "dir=$T/state3/$UUID'"
ok $? "print-xml --uuid follows hook.conf's state-dir"
U_UP=$(tr a-f A-F <<< "$UUID")
"$P" print-xml --uuid "$U_UP" --state-dir /srv/coca | grep -q "dir=/srv/coca/$UUID'" &&
    ! "$P" print-xml --uuid "------------------------------------" \
        > /dev/null 2>&1
ok $? "print-xml --uuid: lowercase like the hook, malformed UUIDs refused"
! "$P" print-xml --domain uuid.xml > /dev/null 2> hz.err &&
    grep -q -- "-uuid" hz.err
ok $? "print-xml --domain refuses a command line with what the hook refuses"
mkdir ca5 && cp ca/ca.crt ca5/ &&
    ! "$P" init-ca --ca-dir ca5 > /dev/null 2>&1 && cmp -s ca/ca.crt ca5/ca.crt
ok $? "init-ca never replaces a ca.crt (its key may be in an HSM)"

# --- release, reconnect, restore ---------------------------------------
"$H" vm1 release end - < vm1.xml && [ "$(ls "$D")" = ek ]
ok $? "release end keeps only the persistent EK state"
"$H" vm1 reconnect begin - < vm1.xml 2> reconnect.err
ok $? "reconnect begin does not fail, even with the instance gone"
"$H" vm1 restore begin - < vm1.xml > restored.xml && cmp -s vm1.xml restored.xml
ok $? "restore begin passes the XML through unchanged"
"$H" vm1 migrate begin - < vm1.xml > migrated.xml && cmp -s vm1.xml migrated.xml
ok $? "migrate begin passes the XML through unchanged"
"$H" vm1 started begin - < vm1.xml
ok $? "other operations are no-ops"

# --- the install command --------------------------------------------------
if DESTDIR=$T/root "$TOP/coco-attest.sh" install > /dev/null 2>&1; then
    [ -x root/usr/local/bin/coco-attest-provision ] &&
        [ "$(readlink root/etc/libvirt/hooks/qemu.d/50-coco-attest)" = \
          /usr/local/libexec/coco-attest/coco-attest-hook ] &&
        grep -q '^dir=/etc/coco-attest/ca' root/etc/coco-attest/hook.conf &&
        [ "$(stat -c %a root/etc/coco-attest/ca/ca.key)" = 600 ]
    ok $? "install puts the CLI, the hook and a default configuration"
    [ ! -e root/usr/local/bin/qemu-bundle ] &&
        echo quit | root/usr/local/bin/qemu-system-x86_64 -M q35 -S \
            -display none -nodefaults -monitor stdio > qemu.out 2>&1 &&
        ! grep -qi "could not\|error" qemu.out &&
        root/usr/local/bin/qemu-system-x86_64 -device coco-attest,help |
            grep -q iobase &&
        grep -q "<emulator>/usr/local/bin/qemu-system-x86_64" \
            root/usr/local/share/coco-attest/coco-vm1.xml
    ok $? "install puts QEMU, which finds its firmware without qemu-bundle/"
    cmp -s root/etc/coco-attest/hook.conf "$EX" &&
        "$H" --check-config root/etc/coco-attest/hook.conf | grep -qx 'group=libvirt-qemu'
    ok $? "the installed hook.conf is the shipped example"
else
    ok 1 "install puts the CLI, the hook and a default configuration"
    skip "install puts QEMU (install failed)"
    skip "the installed hook.conf is the shipped example (install failed)"
fi
"$P" print-xml --uuid "$UUID" --state-dir /srv/coca > snippet.xml &&
    printf '%s\n' "<domain xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>" \
        "$(cat snippet.xml)" "</domain>" | xmllint --noout - &&
    grep -q "dir=/srv/coca/$UUID'" snippet.xml
ok $? "print-xml gives the qemu:commandline for a domain UUID"

tap_end
