# Run by test-service as a oneshot unit inside a systemd-nspawn container
# (systemd as PID 1, a throwaway overlay of the host's /): installs the
# .deb and drives osprey.service the way an administrator would.  Writes
# ok:/FAIL: lines to /results/log, then DONE, then powers the container off.
exec >/results/log 2>&1
deb=/results/osprey.deb
conf=/etc/osprey/osprey.conf

t() {
	desc=$1
	shift
	if "$@"; then echo "ok: $desc"; else echo "FAIL: $desc"; fi
}
show() {
	systemctl show -p "$1" --value osprey.service
}
wait_state() {	# ACTIVESTATE SECONDS
	i=0
	while [ "$i" -lt $(($2 * 5)) ]; do
		[ "$(show ActiveState)" = "$1" ] && return 0
		sleep 0.2
		i=$((i + 1))
	done
	echo "    ActiveState=$(show ActiveState), wanted $1"
	return 1
}
journal() {	# the messages of osprey.service
	journalctl --no-pager -o cat -u osprey.service
}
status_of() {	# /proc/PID/status FIELD
	awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}
sip_options() {
	python3 - <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
msg = ("OPTIONS sip:example.test SIP/2.0\r\n"
       "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-pkg-1\r\n"
       "Max-Forwards: 70\r\n"
       "From: <sip:test@127.0.0.1>;tag=pkg1\r\n"
       "To: <sip:example.test>\r\n"
       "Call-ID: pkg-1@127.0.0.1\r\n"
       "CSeq: 1 OPTIONS\r\n"
       "Content-Length: 0\r\n\r\n" % port)
s.sendto(msg.encode(), ("127.0.0.1", 5060))
try:
    data = s.recv(65535).decode(errors="replace")
except socket.timeout:
    print("    no answer within 3 s")
    sys.exit(1)
print("    " + data.split("\r\n")[0])
sys.exit(0 if data.startswith("SIP/2.0 ") else 1)
EOF
}

sip_register() {	# a REGISTER for alice with digest MD5, answered 200
	python3 - <<'EOF'
import hashlib, re, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
md5 = lambda t: hashlib.md5(t.encode()).hexdigest()

def register(cseq, auth=""):
    msg = ("REGISTER sip:example.test SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK-pkg-r%d\r\n"
           "Max-Forwards: 70\r\n"
           "From: <sip:alice@example.test>;tag=pkgr\r\n"
           "To: <sip:alice@example.test>\r\n"
           "Call-ID: pkg-reg@127.0.0.1\r\n"
           "CSeq: %d REGISTER\r\n"
           "Contact: <sip:alice@127.0.0.1:%d>\r\n"
           "Expires: 3600\r\n%s"
           "Content-Length: 0\r\n\r\n" % (port, cseq, cseq, port, auth))
    s.sendto(msg.encode(), ("127.0.0.1", 5060))
    return s.recv(65535).decode(errors="replace")

r = register(1)
nonce = re.search(r'nonce="([^"]+)"', r).group(1)
ha1 = md5("alice:example.test:pkg-secret")
ha2 = md5("REGISTER:sip:example.test")
resp = md5("%s:%s:00000001:c0ffee:auth:%s" % (ha1, nonce, ha2))
r = register(2, 'Authorization: Digest username="alice", '
             'realm="example.test", nonce="%s", uri="sip:example.test", '
             'response="%s", algorithm=MD5, qop=auth, nc=00000001, '
             'cnonce="c0ffee"\r\n' % (nonce, resp))
print("    " + r.split("\r\n")[0])
sys.exit(0 if r.startswith("SIP/2.0 200 ") else 1)
EOF
}

quiet() {	# COMMAND...: its output only when it fails
	qout=$("$@" 2>&1)
	qrc=$?
	[ "$qrc" -eq 0 ] || printf '%s\n' "$qout" | sed 's/^/    /'
	return "$qrc"
}
indented() {	# COMMAND...: its output indented
	iout=$("$@" 2>&1)
	irc=$?
	printf '%s\n' "$iout" | sed 's/^/    /'
	return "$irc"
}

export DEBIAN_FRONTEND=noninteractive
t "dpkg -i" quiet dpkg -i "$deb"
t "postinst enabled osprey.service" \
    [ "$(systemctl is-enabled osprey.service)" = enabled ]
t "postinst started osprey.service" wait_state active 10
t "systemctl restart osprey (Type=notify: returns after READY=1)" \
    timeout 30 systemctl restart osprey.service
t "active (running)" [ "$(show SubState)" = running ]
pid=$(show MainPID)
echo "    MainPID=$pid StatusText=$(show StatusText)"
t "ospreyd runs as the user osprey" [ "$(stat -c %U "/proc/$pid")" = osprey ]
t "effective capabilities: CAP_NET_BIND_SERVICE only" \
    [ "$(status_of "$pid" CapEff)" = 0000000000000400 ]
nnp_seccomp() {
	[ "$(status_of "$pid" NoNewPrivs)" = 1 ] &&
	    [ "$(status_of "$pid" Seccomp)" = 2 ]
}
t "no_new_privs set, seccomp filter on" nnp_seccomp
echo "    net.ipv4.ip_unprivileged_port_start=$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"
t "bound to udp 127.0.0.1:5060" grep -q ' 0100007F:13C4 ' /proc/net/udp
t "answers a SIP OPTIONS inside the sandbox" sip_options
t "journal: the ready line, at priority notice" \
    sh -c 'journalctl --no-pager -o cat -u osprey.service -p notice |
	grep -q ": ready,"'
t "journal: priorities are ospreyd's own (ready is not a warning)" \
    sh -c '! journalctl --no-pager -o cat -u osprey.service -p warning |
	grep -q ": ready,"'
t "StateDirectory /var/lib/osprey: osprey, 0750" \
    [ "$(stat -c '%U %a' /var/lib/osprey)" = "osprey 750" ]
t "RuntimeDirectory /run/osprey: osprey, 0750" \
    [ "$(stat -c '%U %a' /run/osprey)" = "osprey 750" ]
if [ -x /usr/sbin/ospreyctl ]; then
	t "ospreyctl status (as root, through /run/osprey)" \
	    indented timeout 10 /usr/sbin/ospreyctl status
fi

t "systemctl reload" timeout 30 systemctl reload osprey.service
sleep 0.5
same_running() {
	[ "$(show MainPID)" = "$pid" ] && [ "$(show SubState)" = running ]
}
t "reloaded: same process, still running" same_running

# Registrations outlive a restart (SQLite in the state directory).
if [ -x /usr/sbin/osprey-passwd ] && [ -x /usr/sbin/ospreyctl ]; then
	t "osprey-passwd adds alice to /etc/osprey/users" \
	    sh -c 'echo pkg-secret | /usr/sbin/osprey-passwd alice \
	    example.test /etc/osprey/users 2>/dev/null'
	t "... and a reload reads it" timeout 30 systemctl reload \
	    osprey.service
	t "alice registers with digest authentication" sip_register
	t "systemctl restart" timeout 30 systemctl restart osprey.service
	sleep 0.5
	t "after the restart the binding is still there" sh -c \
	    '/usr/sbin/ospreyctl registrations alice | grep -q "sip:alice@"'
	t "the location database is in /var/lib/osprey" \
	    [ -s /var/lib/osprey/location.db ]
	pid=$(show MainPID)
fi

cp "$conf" /root/osprey.conf.good
printf 'broken =\n' >>"$conf"
t "systemctl reload with a broken config fails" \
    sh -c '! timeout 30 systemctl reload osprey.service 2>/dev/null'
t "... and the proxy keeps running, same process" same_running
t "... the error is in the journal as FILE:LINE:" \
    sh -c "journalctl --no-pager -o cat -u osprey.service |
	grep -q '^$conf:[0-9][0-9]*: '"
cp /root/osprey.conf.good "$conf"

kill -KILL "$pid"
sleep 1
t "killed with SIGKILL: restarted (Restart=on-failure)" wait_state active 10
restarted() {
	[ "$(show MainPID)" != "$pid" ] && [ "$(show NRestarts)" = 1 ]
}
t "... as a new process, NRestarts=1" restarted

t "systemctl stop" timeout 30 systemctl stop osprey.service
stopped_clean() {
	[ "$(show ActiveState)" = inactive ] && [ "$(show Result)" = success ]
}
t "stopped cleanly (Result=success)" stopped_clean
t "journal: STOPPING path taken (\"stopped\")" \
    sh -c 'journalctl --no-pager -o cat -u osprey.service | grep -q "stopped"'

printf 'broken =\n' >>"$conf"
t "systemctl start with a broken config fails (ExecStartPre=)" \
    sh -c '! timeout 30 systemctl start osprey.service 2>/dev/null'
systemctl stop osprey.service 2>/dev/null
systemctl reset-failed osprey.service 2>/dev/null
cp /root/osprey.conf.good "$conf"

t "dpkg --purge" quiet dpkg --purge osprey
t "purged: /var/lib/osprey gone" [ ! -e /var/lib/osprey ]
echo "--- journal"
journal | sed 's/^/    /'
echo DONE
systemctl poweroff --no-block
