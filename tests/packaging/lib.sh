# Shared by test-unit and test-deb (sourced, POSIX sh).

pass=0
fail=0

ok() {
	pass=$((pass + 1))
	echo "ok: $*"
}

not_ok() {
	fail=$((fail + 1))
	echo "FAIL: $*"
}

# check DESCRIPTION COMMAND...: one test, passed when COMMAND succeeds.
check() {
	desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

indent() {
	sed 's/^/    /'
}

# verify_root ROOT: add to ROOT what `systemd-analyze verify --root=ROOT`
# needs besides our files: the host's units (the targets osprey.service
# depends on, sysinit.target...), minus any osprey unit the host may have
# installed, and /bin/kill (ExecReload=).  Nothing of ours is replaced.
verify_root() {
	mkdir -p "$1/usr/lib/systemd/system" "$1/bin"
	for d in /lib/systemd/system /usr/lib/systemd/system; do
		[ -d "$d" ] || continue
		find "$d" -mindepth 1 -maxdepth 1 ! -name 'osprey*' \
		    -exec cp -an -t "$1/usr/lib/systemd/system" {} +
	done
	[ -e "$1/bin/kill" ] || cp /bin/kill "$1/bin/kill"
}

# verify_unit ROOT MANPATH UNIT: `systemd-analyze verify` of UNIT inside
# ROOT (the Exec*= binaries are looked up in ROOT, the man pages of
# Documentation= in MANPATH).  Clean means exit status 0 *and* no output:
# verify exits 0 on unknown keys and unparsable values, it only warns.
verify_unit() {
	if command -v man >/dev/null; then
		vout=$(MANPATH=$2 systemd-analyze verify --root="$1" "$3" 2>&1)
	else
		vout=$(systemd-analyze verify --man=no --root="$1" "$3" 2>&1)
	fi
	vrc=$?
	[ -z "$vout" ] || printf '%s\n' "$vout" | indent
	[ "$vrc" -eq 0 ] && [ -z "$vout" ]
}

# not_clean ...: verify_unit must complain (the negative controls).
not_clean() {
	! verify_unit "$@" >/dev/null
}

# has_offline_security: systemd-analyze security --offline (systemd 250+).
has_offline_security() {
	systemd-analyze --help 2>&1 | grep -q -- '--offline'
}

# exposure ROOT UNIT MAX: `systemd-analyze security` exposure of UNIT is
# at most MAX (tenths: 20 is 2.0, "OK").
exposure() {
	sout=$(systemd-analyze security --offline=yes --root="$1" \
	    --threshold="$3" "$2" 2>&1)
	src=$?
	printf '%s\n' "$sout" | grep 'Overall exposure' | indent
	[ "$src" -eq 0 ] || printf '%s\n' "$sout" | grep '✗' | indent
	[ "$src" -eq 0 ]
}

# unit_settings UNIT: the settings the packaging promises are in UNIT.
unit_settings() {
	missing=
	while IFS= read -r re; do
		[ -n "$re" ] || continue
		grep -Eq "^$re\$" "$1" || missing="$missing
$re"
	done <<'EOF'
Type=notify
ExecStartPre=/usr/sbin/ospreyd -t -c /etc/osprey/osprey\.conf
ExecStart=/usr/sbin/ospreyd (-f )?-c /etc/osprey/osprey\.conf
ExecReload=/bin/kill -HUP \$MAINPID
Restart=on-failure
User=osprey
Group=osprey
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
StateDirectory=osprey
LogsDirectory=osprey
RuntimeDirectory=osprey
ConfigurationDirectory=osprey
WantedBy=multi-user\.target
EOF
	[ -z "$missing" ] || printf 'missing:%s\n' "$missing" | indent
	[ -z "$missing" ]
}

# summary NAME: the last line, and the exit status.
summary() {
	echo "$1: $pass passed, $fail failed"
	[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
	exit $?
}
