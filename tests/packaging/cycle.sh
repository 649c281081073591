#!/usr/bin/env bash
# The Debian packages' whole life on this machine, as root:
#
#   1. build them (scripts/package.sh: dpkg-buildpackage, the unit tests,
#      lintian with no error) into dist/;
#   2. install them as a user would: apt-get install ./dist/*.deb;
#   3. run what they installed, from the installed paths only: the
#      commands' --help and --version, the manual pages, the gateway
#      (its user, its configuration, serving as tclcomm), a user registry
#      started by commregd --detach, the Tcl package from a plain tclsh
#      (registering with scope host through that gateway), and a C
#      program built with pkg-config against libcommreg-dev;
#   4. remove them (the edited configuration and the user stay), purge
#      them, and check that nothing is left: no file any package
#      installed, nothing new under /usr, /etc or systemd's and dpkg's
#      state, no tclcomm user or group (unless it was there before), no
#      /run/tcl-comm; and that a tclcomm account the administrator made
#      before is used and kept.
#
#   bash tests/packaging/cycle.sh [--no-build]
#
# Build dependencies are expected (scripts/deps.sh installs them).
# Packages of a previous run are purged first.  Every wait is bounded;
# every process started is stopped by its PID.  Exits 0 when all checks
# pass, 1 otherwise, 77 when not root.
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
  echo "cycle: needs root (apt-get install, purge)"
  exit 77
fi

pkgs=(commreg commreg-gateway libcommreg0 libcommreg-dev tcl-commreg)
export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d /tmp/commreg-cycle.XXXXXX)
pids=()
npass=0
nfail=0

ok() { echo "  ok   $1"; npass=$((npass + 1)); }
bad() { echo "  FAIL $1"; nfail=$((nfail + 1)); }
# check DESCRIPTION COMMAND...: the command's status is the verdict.
check() {
  local what=$1
  shift
  if "$@" >>"$work/checks.log" 2>&1; then ok "$what"; else bad "$what"; fi
}

cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

# wait_for SECONDS COMMAND...: poll until the command succeeds.
wait_for() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# stop PID: SIGTERM, then wait at most 5 s for it to go.
stop() {
  kill "$1" 2>/dev/null || return 0
  wait_for 5 sh -c "! kill -0 $1" || kill -9 "$1" 2>/dev/null || true
}

installed() {
  dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null |
    grep -qv '^not-installed$'
}

# What the packages may leave or take: every name under these trees.
# (/lib is /usr/lib on Debian 12; scanned when it is not.)
snapshot() {
  local trees=(/usr /etc /var/lib/systemd /var/lib/dpkg/info)
  [ -L /lib ] || trees+=(/lib)
  find "${trees[@]}" -xdev 2>/dev/null | sort
}

echo "== packaging cycle"
for p in "${pkgs[@]}"; do
  if installed "$p"; then
    echo "cycle: purging $p left from before"
    apt-get purge -y -q "${pkgs[@]}" >"$work/prepurge.log" 2>&1 || {
      cat "$work/prepurge.log"
      exit 1
    }
    break
  fi
done

if [ "${1:-}" != --no-build ]; then
  echo "== build (scripts/package.sh)"
  if ! bash scripts/package.sh --no-deps; then
    echo "cycle: the packages did not build (or lintian found errors)"
    exit 1
  fi
fi
debs=(dist/*.deb)
if [ "${#debs[@]}" -ne "${#pkgs[@]}" ]; then
  echo "cycle: dist/ has ${#debs[@]} packages, expected ${#pkgs[@]}"
  exit 1
fi

# Every path the packages hold, and those of them already there (the
# directories they share with the system).
for d in "${debs[@]}"; do
  dpkg-deb --fsys-tarfile "$d" | tar -t
done | sed 's,^\./,/,; s,/$,,' | grep -v '^/\?$' | sort -u >"$work/files"
while read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
done <"$work/files" >"$work/files.before"
user_before=$(getent passwd tclcomm || true)
group_before=$(getent group tclcomm || true)
snapshot >"$work/before"

echo "== install (apt-get install ./dist/*.deb)"
if apt-get install -y -q "${debs[@]/#/./}" >"$work/install.log" 2>&1; then
  ok "apt-get install ./dist/*.deb"
else
  tail -n 30 "$work/install.log"
  bad "apt-get install ./dist/*.deb"
fi
version=$(dpkg-query -W -f='${Version}' commreg 2>/dev/null)

echo "== run"
check "commreg --help" sh -c '/usr/bin/commreg --help | grep -q "^usage: commreg"'
check "commregd --help" sh -c '/usr/bin/commregd --help | grep -q "^usage: commregd"'
check "commgwd --help" sh -c '/usr/sbin/commgwd --help | grep -q "^usage: commgwd"'
check "commregd --version says $version" \
  sh -c "/usr/bin/commregd --version | grep -qF ' ${version%%-*}'"
check "commgwd --version says $version" \
  sh -c "/usr/sbin/commgwd --version | grep -qF ' ${version%%-*}'"
for page in commreg.1 commregd.1 commgwd.8 tcl-comm.ini.5 libcommreg.3 \
    comm::registry.3tcl; do
  check "man finds ${page%.*}(${page##*.})" sh -c \
    "man -w ${page##*.} ${page%.*} | grep -q '^/usr/share/man/'"
done
check "the documents are under /usr/share/doc/commreg" \
  test -f /usr/share/doc/commreg/gateway.md -a -f /usr/share/doc/commreg/README.md

# The gateway: the user postinst made, the sample configuration as the
# package installed it, and a gateway that serves as that user.
check "postinst made the system user tclcomm" \
  sh -c 'getent passwd tclcomm | cut -d: -f7 | grep -q nologin'
check "/etc/tcl/comm/*.ini are conffiles" \
  sh -c 'dpkg-query -W -f="\${Conffiles}\n" commreg-gateway | grep -q /etc/tcl/comm/00-gateway.ini'
check "commgwd --check-config accepts the installed configuration" \
  /usr/sbin/commgwd --check-config
check "the unit runs the installed commgwd" \
  grep -q '^ExecStart=/usr/sbin/commgwd' /lib/systemd/system/commgwd.service
check "the user unit runs the installed commregd" \
  grep -q '^ExecStart=/usr/bin/commregd ' /usr/lib/systemd/user/commregd.service
# Under systemd the package has enabled and started the unit; without
# it (a container, a chroot) the gateway is started here as the unit
# would, and stopped by its PID.
gw_systemd=0
if [ -d /run/systemd/system ]; then
  gw_systemd=1
  check "the unit is enabled" systemctl is-enabled --quiet commgwd
  if wait_for 10 systemctl is-active --quiet commgwd; then
    ok "systemd started commgwd.service"
  else
    systemctl status commgwd --no-pager | tail -n 20
    bad "systemd started commgwd.service"
  fi
  gwpid=$(systemctl show -p MainPID --value commgwd)
  wait_for 10 test -S /run/tcl-comm/gateway.sock
else
  /usr/sbin/commgwd >"$work/gw.out" 2>"$work/gw.err" &
  gwpid=$!
  pids+=("$gwpid")
  if wait_for 10 grep -q '^ready' "$work/gw.out"; then
    ok "commgwd serves (ready)"
  else
    cat "$work/gw.err"
    bad "commgwd serves (ready)"
  fi
fi
check "the serving gateway runs as tclcomm" \
  sh -c "ps -o user= --ppid $gwpid | grep -qx tclcomm"
check "the gateway's socket is /run/tcl-comm/gateway.sock" \
  test -S /run/tcl-comm/gateway.sock

# A user registry, then the Tcl package and the C library as its
# clients, with a home of their own.
home=$work/home
mkdir -m 700 "$home"
check "commregd --detach starts a registry" \
  env HOME="$home" /usr/bin/commregd --detach
env HOME="$home" /usr/bin/commreg status >"$work/status" 2>&1
regpid=$(awk '$1 == "pid" {print $2}' "$work/status")
[ -n "$regpid" ] && pids+=("$regpid")
check "commreg status shows it" test -n "$regpid"

cat >"$work/smoke.tcl" <<'EOF'
package require comm
set v [package require comm::registry]
set where [package ifneeded comm::registry $v]
if {![string match "*/usr/share/tcltk/*" $where]} {
    puts "comm::registry found at $where"; exit 1
}
# Its compiled helper, from Debian's place for compiled Tcl packages.
if {!$::comm::registry::kernel} { puts "comm::registry::kernel not loaded"; exit 1 }
set kwhere [package ifneeded comm::registry::kernel $v]
if {![string match "*/usr/lib/tcltk/*-linux-*/comm_registry_kernel*" $kwhere]} {
    puts "comm::registry::kernel found at $kwhere"; exit 1
}
set name [comm::registry::register -scope host cycle-tcl]
set id [comm::registry::lookup $name]
if {$id ne [list [comm::comm self] localhost]} {
    puts "lookup $name: $id"; exit 1
}
set e [lindex [comm::registry::list cycle-tcl] 0]
if {[dict get $e scope] ne "host"} { puts "entry $e"; exit 1 }
puts "registered $name with scope host at $id"
EOF
check "tclsh: package require comm::registry (and its helper), register -scope host" \
  env HOME="$home" timeout 30 tclsh8.6 "$work/smoke.tcl"

cat >"$work/smoke.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include <commreg.h>

int
main(void)
{
	struct commreg_client *c;
	char err[512], name[256], id[64];

	if ((c = commreg_open(NULL, err, sizeof err)) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (commreg_register(c, "cycle-c", 5555, NULL, name, sizeof name) ||
	    commreg_lookup_id(c, name, id, sizeof id) ||
	    strcmp(id, "5555 localhost") != 0) {
		fprintf(stderr, "%s\n", commreg_error(c));
		return 1;
	}
	printf("libcommreg %s: %s is at %s\n", commreg_version(), name, id);
	commreg_close(c);
	return 0;
}
EOF
check "cc \$(pkg-config --cflags --libs commreg): a C client builds" \
  sh -c "cc -o '$work/smoke' '$work/smoke.c' \$(pkg-config --cflags --libs commreg)"
check "the C client registers and looks up through libcommreg.so.0" \
  sh -c "ldd '$work/smoke' | grep -Eq 'libcommreg.so.0 => (/usr)?/lib/' &&
         HOME='$home' timeout 30 '$work/smoke'"

[ -n "$regpid" ] && stop "$regpid"
if [ "$gw_systemd" = 0 ]; then
  stop "$gwpid"
  check "the gateway removed its socket" test ! -e /run/tcl-comm/gateway.sock
fi

echo "== remove (the configuration and the user stay)"
echo "# an administrator's edit" >>/etc/tcl/comm/20-quota.ini
if apt-get remove -y -q "${pkgs[@]}" >"$work/remove.log" 2>&1; then
  ok "apt-get remove"
else
  tail -n 30 "$work/remove.log"
  bad "apt-get remove"
fi
if [ "$gw_systemd" = 1 ]; then
  check "removing the package stopped the unit" \
    sh -c '! systemctl is-active --quiet commgwd'
fi
check "the programs are gone" sh -c \
  '! test -e /usr/bin/commreg && ! test -e /usr/bin/commregd && ! test -e /usr/sbin/commgwd'
check "the edited /etc/tcl/comm/20-quota.ini stays" \
  grep -q "an administrator's edit" /etc/tcl/comm/20-quota.ini
check "the tclcomm user stays" getent passwd tclcomm

# Removed packages that came from files and no archive are unknown to
# apt-get (\"Unable to locate package\"): dpkg purges them.
echo "== purge"
if dpkg --purge "${pkgs[@]}" >"$work/purge.log" 2>&1; then
  ok "dpkg --purge"
else
  tail -n 30 "$work/purge.log"
  bad "dpkg --purge"
fi
for p in "${pkgs[@]}"; do
  check "$p is gone from dpkg" sh -c "! dpkg-query -W -f='\${db:Status-Status}' $p 2>/dev/null | grep -qv '^not-installed\$'"
done
left=$(while read -r f; do
  if [ -e "$f" ] || [ -L "$f" ]; then echo "$f"; fi
done <"$work/files" | comm -23 - "$work/files.before")
if [ -z "$left" ]; then
  ok "no file of the packages is left"
else
  printf '       %s\n' $left
  bad "no file of the packages is left"
fi
snapshot >"$work/after"
new=$(comm -13 "$work/before" "$work/after")
if [ -z "$new" ]; then
  ok "nothing new under /usr, /etc, systemd's and dpkg's state"
else
  printf '       %s\n' $new | head -n 20
  bad "nothing new under /usr, /etc, systemd's and dpkg's state"
fi
check "/etc/tcl/comm is gone" test ! -e /etc/tcl/comm
check "/run/tcl-comm is gone" test ! -e /run/tcl-comm
if [ -z "$user_before" ]; then
  check "the tclcomm user is gone" sh -c '! getent passwd tclcomm'
else
  check "the tclcomm user made before the install is kept" \
    sh -c "[ \"\$(getent passwd tclcomm)\" = '$user_before' ]"
fi
if [ -z "$group_before" ]; then
  check "the tclcomm group is gone" sh -c '! getent group tclcomm'
fi

# An account tclcomm the administrator made before is used, and kept at
# purge (postrm removes only the one postinst made).
if [ -z "$user_before" ] && [ -z "$group_before" ]; then
  echo "== an administrator's tclcomm"
  useradd --system --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin --comment "made by hand" tclcomm
  admin=$(getent passwd tclcomm)
  apt-get install -y -q "${debs[@]/#/./}" >"$work/install2.log" 2>&1 &&
    apt-get purge -y -q "${pkgs[@]}" >"$work/purge2.log" 2>&1
  check "install and purge with it" test $? -eq 0
  check "it is kept as it was" sh -c "[ \"\$(getent passwd tclcomm)\" = '$admin' ]"
  userdel tclcomm >/dev/null 2>&1
  check "(removed again by this test)" sh -c '! getent passwd tclcomm && ! getent group tclcomm'
fi

echo "packaging cycle: $npass passed, $nfail failed"
if [ "$nfail" -gt 0 ]; then
  echo "(details of the failed checks)"
  tail -n 40 "$work/checks.log"
  exit 1
fi
exit 0
