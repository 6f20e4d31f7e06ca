#!/usr/bin/perl
# Net::SIP (libnet-sip-perl) UAS for the Osprey registrar interop tests.
#
# Registers USER@DOMAIN with digest credentials through the proxy, prints
# "registered expires=N", then answers every INVITE (200 with SDP) and
# BYE until SECS have passed. Prints "call established" / "call closed".
#
# usage: netsip_reg_uas.pl PROXY:PORT LOCAL_PORT USER PASSWORD DOMAIN [SECS]
use strict;
use warnings;
use Net::SIP;

$| = 1;
my ($proxy, $port, $user, $pass, $domain, $secs) = @ARGV;
die "usage: $0 proxy:port local_port user password domain [secs]\n"
    unless $proxy && $port && $user && defined $pass && $domain;
$secs ||= 15;

my $ua = Net::SIP::Simple->new(
    from           => "sip:$user\@$domain",
    leg            => "127.0.0.1:$port",
    registrar      => "sip:$domain",
    outgoing_proxy => $proxy,
    domain         => $domain,
    auth           => [ $user, $pass ],
);
my $exp = $ua->register(expires => 600);
if (!$exp) {
    print "register failed: ", ($ua->error // 'no answer'), "\n";
    exit 1;
}
print "registered expires=$exp\n";
$ua->listen(
    cb_established => sub { print "call established\n" },
    cb_cleanup     => sub { print "call closed\n" },
);
my $stop;
$ua->add_timer($secs, sub { $stop = 1 });
$ua->loop(\$stop);
exit 0;
