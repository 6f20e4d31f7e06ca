#!/usr/bin/perl
# Net::SIP (libnet-sip-perl) UAC for the Osprey registrar interop tests.
#
# Registers USER@DOMAIN with digest credentials, calls TARGET through the
# proxy (answering the 407 with the same credentials), holds the call for
# a second and hangs up. Prints "UAC register: N", "UAC final: CODE" and
# "UAC bye: done"; exits 0 only if the call was answered (200).
#
# usage: netsip_reg_uac.pl PROXY:PORT LOCAL_PORT USER PASSWORD DOMAIN TARGET
use strict;
use warnings;
use Net::SIP;

$| = 1;
my ($proxy, $port, $user, $pass, $domain, $target) = @ARGV;
die "usage: $0 proxy:port local_port user password domain target\n"
    unless $proxy && $port && $user && defined $pass && $domain && $target;

my $ua = Net::SIP::Simple->new(
    from           => "sip:$user\@$domain",
    leg            => "127.0.0.1:$port",
    registrar      => "sip:$domain",
    outgoing_proxy => $proxy,
    domain         => $domain,
    auth           => [ $user, $pass ],
);
my $exp = $ua->register(expires => 600);
print "UAC register: ", ($exp // ('failed ' . ($ua->error // ''))), "\n";
exit 1 unless $exp;

my ($final, $stop);
my $call = $ua->invite($target,
    cb_final => sub {
        my ($status, $c, %info) = @_;
        $final = $info{code} || $status;
        $stop = 1;
    },
    ring_time => 8,
);
if (!$call) {
    print "UAC final: invite failed ", ($ua->error // ''), "\n";
    exit 1;
}
$ua->add_timer(10, sub { $stop = 1 });
$ua->loop(\$stop) unless $final;
print "UAC final: ", ($final // 'timeout'), "\n";
exit 1 unless ($final // '') =~ /^(200|OK)$/;
$ua->loop(1);
my $byed;
$call->bye(cb_final => sub { $byed = 1 });
$ua->loop(3, \$byed);
print "UAC bye: ", ($byed ? "done" : "no answer"), "\n";
exit($byed ? 0 : 1);
