# Run by test-deb inside a throwaway copy-on-write view of / (never on the
# real system): installs, reinstalls, removes and purges the package and
# checks what the maintainer scripts and dpkg did.  Prints ok:/FAIL: lines.
#
#   sh maint-scripts.sh DEB
deb=$1
export DEBIAN_FRONTEND=noninteractive
conf=/etc/osprey/osprey.conf
wants=/etc/systemd/system/multi-user.target.wants/osprey.service

t() {
	desc=$1
	shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fi
}
dpkgq() {
	out=$("$@" 2>&1)
	rc=$?
	[ "$rc" -eq 0 ] || printf '%s\n' "$out" | sed 's/^/    /'
	return "$rc"
}
system_user() {
	ent=$(getent passwd osprey) || return 1
	uid=$(echo "$ent" | cut -d: -f3)
	gid=$(echo "$ent" | cut -d: -f4)
	home=$(echo "$ent" | cut -d: -f6)
	shell=$(echo "$ent" | cut -d: -f7)
	echo "    $ent"
	[ "$uid" -lt 1000 ] && [ "$gid" = "$(getent group osprey | cut -d: -f3)" ] &&
	    [ "$home" = /var/lib/osprey ] && [ "$shell" = /usr/sbin/nologin ] &&
	    [ ! -e /var/lib/osprey ]	# --no-create-home: systemd makes it
}
is_conffile() {
	dpkg-query -W -f='${Conffiles}\n' osprey | grep -q " $conf "
}
installed() {
	[ "$(dpkg-query -W -f='${Status}' osprey 2>/dev/null)" = "$1" ]
}

if getent passwd osprey >/dev/null; then
	echo "FAIL: a user osprey exists before the package is installed"
fi
t "dpkg -i" dpkgq dpkg -i "$deb"
t "installed" installed "install ok installed"
t "system user and group osprey, home /var/lib/osprey, nologin" system_user
t "osprey.service enabled (multi-user.target.wants)" [ -L "$wants" ]
t "$conf registered as a conffile" is_conffile
t "/etc/osprey/users: root:osprey, mode 0640 (password hashes)" \
    [ "$(stat -c '%U:%G %a' /etc/osprey/users 2>/dev/null)" = "root:osprey 640" ]

# An edited config survives an upgrade (here: the same version again).
echo "# local edit" >>"$conf"
mkdir -p /var/lib/osprey /run/osprey
echo state >/var/lib/osprey/state
t "dpkg -i again (upgrade path)" dpkgq dpkg -i "$deb"
t "the edited $conf is kept" grep -qx "# local edit" "$conf"
t "postinst is idempotent: one user osprey" \
    [ "$(getent passwd | grep -c '^osprey:')" -eq 1 ]

t "dpkg -r" dpkgq dpkg -r osprey
t "removed: ospreyd gone" [ ! -e /usr/sbin/ospreyd ]
t "removed: $conf kept (conffile)" grep -qx "# local edit" "$conf"
t "removed: state kept" [ -f /var/lib/osprey/state ]

t "dpkg --purge" dpkgq dpkg --purge osprey
t "purged: $conf gone" [ ! -e "$conf" ]
t "purged: /etc/osprey gone" [ ! -e /etc/osprey ]
t "purged: /var/lib/osprey gone" [ ! -e /var/lib/osprey ]
t "purged: /run/osprey gone" [ ! -e /run/osprey ]
t "purged: not enabled any more" \
    sh -c '[ ! -e "$1" ] && [ ! -L "$1" ]' sh "$wants"
t "purged: the user osprey stays (Debian practice)" \
    sh -c "getent passwd osprey >/dev/null"

t "dpkg -i after purge (the user reused)" dpkgq dpkg -i "$deb"
t "fresh $conf after purge" sh -c "! grep -q '# local edit' $conf"
