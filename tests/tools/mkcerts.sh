#!/bin/bash
# mkcerts.sh DIR: the TLS material of the federation tests
# (tests/integration/federation.test.tcl), made with the openssl CLI.
#
#   ca.crt ca.key                 the test CA (EC P-256), signs everything below
#   gw1.crt/.key ... gw6.crt/.key gwN.test: SAN DNS:gwN.test, IP:127.0.0.N,
#                                 extendedKeyUsage serverAuth, clientAuth
#   rogue-ca.crt rogue-ca.key     a second, unrelated CA
#   rogue.crt rogue.key           gw9.test (DNS:gw9.test, IP:127.0.0.9), signed
#                                 by the rogue CA
#   expired.crt expired.key       gw7.test (DNS:gw7.test, IP:127.0.0.7), signed
#                                 by the test CA, valid 2020-01-01..2020-01-02
#   wrongname.crt wrongname.key   other.test (DNS:other.test, IP:127.0.0.5),
#                                 signed by the test CA: used where gw5.test
#                                 is expected
#
# Keys are mode 0600, certificates 0644, DIR is made if missing.  Prints
# nothing on success; on any failure says what failed (with openssl's
# output) on stderr and exits 1.
set -euo pipefail
umask 077

die() { echo "mkcerts.sh: $*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: mkcerts.sh DIR"
command -v openssl >/dev/null 2>&1 || die "openssl is not on PATH"
dir=$1
mkdir -p -m 0755 -- "$dir" || die "cannot make $dir"
dir=$(cd -- "$dir" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mkcerts.XXXXXX") || die "mktemp failed"
trap 'rm -rf -- "$work"' EXIT

# ossl WHAT ARG...: run openssl quietly; on failure show its output and die.
ossl() {
	local what=$1; shift
	if ! openssl "$@" >"$work/out" 2>&1; then
		echo "mkcerts.sh: $what failed: openssl $*" >&2
		sed 's/^/  | /' "$work/out" >&2
		exit 1
	fi
}

# newkey FILE: an EC P-256 private key, mode 0600.
newkey() {
	ossl "key $1" genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
		-out "$1"
	chmod 0600 "$1"
}

# mkca NAME CN: a self-signed CA NAME.crt/NAME.key, 10 years.
mkca() {
	newkey "$dir/$1.key"
	ossl "CA $1" req -x509 -new -key "$dir/$1.key" -out "$dir/$1.crt" \
		-subj "/O=commreg tests/CN=$2" -days 3650 -sha256 \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash"
	chmod 0644 "$dir/$1.crt"
}

# extfile FILE DNS IP: the leaf extensions.
extfile() {
	cat >"$1" <<EXT
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:$2,IP:$3
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
EXT
}

# leaf OUT CN DNS IP CA: OUT.crt/OUT.key signed by CA (a base name in DIR),
# valid for 2 years from now.
leaf() {
	local out=$1 cn=$2 dns=$3 ip=$4 ca=$5
	newkey "$dir/$out.key"
	ossl "request $out" req -new -key "$dir/$out.key" -out "$work/$out.csr" \
		-subj "/O=commreg tests/CN=$cn"
	extfile "$work/$out.ext" "$dns" "$ip"
	ossl "certificate $out" x509 -req -in "$work/$out.csr" \
		-CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days 730 -sha256 \
		-extfile "$work/$out.ext" -extensions leaf -out "$dir/$out.crt"
	chmod 0644 "$dir/$out.crt"
}

# expired OUT CN DNS IP: signed by the test CA with a validity wholly in
# the past, through `openssl ca` (-startdate/-enddate; `x509 -req` has
# no way to set dates before OpenSSL 3.4's -not_before/-not_after).
expired() {
	local out=$1 cn=$2 dns=$3 ip=$4
	newkey "$dir/$out.key"
	ossl "request $out" req -new -key "$dir/$out.key" -out "$work/$out.csr" \
		-subj "/O=commreg tests/CN=$cn"
	mkdir -p "$work/ca/new"
	: >"$work/ca/index.txt"
	openssl rand -hex 16 >"$work/ca/serial"
	extfile "$work/$out.ext" "$dns" "$ip"
	cat >"$work/ca.cnf" <<CNF
[ ca ]
default_ca = testca
[ testca ]
database = $work/ca/index.txt
new_certs_dir = $work/ca/new
serial = $work/ca/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
email_in_dn = no
[ anything ]
organizationName = optional
commonName = supplied
CNF
	ossl "certificate $out" ca -batch -notext -config "$work/ca.cnf" \
		-cert "$dir/ca.crt" -keyfile "$dir/ca.key" -in "$work/$out.csr" \
		-startdate 20200101000000Z -enddate 20200102000000Z \
		-extfile "$work/$out.ext" -extensions leaf -out "$dir/$out.crt"
	chmod 0644 "$dir/$out.crt"
}

mkca ca "commreg test CA"
mkca rogue-ca "commreg rogue CA"
for n in 1 2 3 4 5 6; do
	leaf "gw$n" "gw$n.test" "gw$n.test" "127.0.0.$n" ca
done
leaf rogue gw9.test gw9.test 127.0.0.9 rogue-ca
leaf wrongname other.test other.test 127.0.0.5 ca
# A name that is no host name: entries' names (NAME@USER@GATEWAY) and
# paths would break on its space, so a gateway refuses to be called so.
leaf spacename "gw 8.test" "gw 8.test" 127.0.0.8 ca
expired expired gw7.test gw7.test 127.0.0.7

# What the tests rely on, checked here so that a broken openssl shows up
# as a failure of this script, not as a puzzling test.
for n in 1 2 3 4 5 6; do
	ossl "verify gw$n" verify -purpose sslserver -CAfile "$dir/ca.crt" "$dir/gw$n.crt"
	ossl "verify gw$n (client)" verify -purpose sslclient -CAfile "$dir/ca.crt" "$dir/gw$n.crt"
	ossl "name of gw$n" verify -CAfile "$dir/ca.crt" -verify_hostname "gw$n.test" "$dir/gw$n.crt"
done
ossl "verify wrongname" verify -CAfile "$dir/ca.crt" "$dir/wrongname.crt"
if openssl verify -CAfile "$dir/ca.crt" -verify_hostname gw5.test "$dir/wrongname.crt" >/dev/null 2>&1; then
	die "wrongname.crt verifies as gw5.test"
fi
if openssl verify -CAfile "$dir/ca.crt" "$dir/rogue.crt" >/dev/null 2>&1; then
	die "rogue.crt verifies against ca.crt"
fi
ossl "verify rogue against its own CA" verify -CAfile "$dir/rogue-ca.crt" "$dir/rogue.crt"
openssl verify -CAfile "$dir/ca.crt" "$dir/expired.crt" >"$work/out" 2>&1 || true
grep -q "certificate has expired" "$work/out" || {
	echo "mkcerts.sh: expired.crt is not reported as expired:" >&2
	sed 's/^/  | /' "$work/out" >&2
	exit 1
}
ossl "expired.crt otherwise valid" verify -no_check_time -CAfile "$dir/ca.crt" "$dir/expired.crt"
for k in "$dir"/*.key; do
	[ "$(stat -c %a "$k")" = 600 ] || die "$k is not mode 0600"
done
exit 0
