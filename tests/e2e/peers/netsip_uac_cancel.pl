#!/usr/bin/perl
# Net::SIP (libnet-sip-perl) UAC for the Osprey interop tests.
#
# Sends an INVITE through the proxy, CANCELs it on the first 18x and waits
# for the final response. Prints "UAC final: CODE" and exits 0 only if the
# final response was 487 Request Terminated; 1 otherwise (or on timeout).
#
# usage: netsip_uac_cancel.pl PROXY_ADDR:PORT LOCAL_PORT TARGET_URI [SECS]
use strict;
use warnings;
use Net::SIP;

my ($proxy, $port, $target, $secs) = @ARGV;
die "usage: $0 proxy:port local_port target_uri [secs]\n"
    unless $proxy && $port && $target;
$secs ||= 10;

my $ua = Net::SIP::Simple->new(
    from           => "sip:alice\@127.0.0.1",
    leg            => "127.0.0.1:$port",
    outgoing_proxy => $proxy,
    domain         => '127.0.0.1',
);
my ($final, $stop, $cancelled, $provisional);
# Callbacks must not die (Net::SIP swallows it) nor store keys on $call
# (a fields-restricted object).
my $call = $ua->invite($target,
    cb_preliminary => sub {
        my ($c, $code) = @_;
        $provisional = $code;
        if ($code =~ /^18/ && !$cancelled++) {
            print "UAC got $code, sending CANCEL\n";
            $c->cancel;
        }
    },
    cb_final => sub {
        my ($status, $c, %info) = @_;
        $final = $info{code} || $status;
        $stop = 1;
    },
    ring_time => $secs,
) or do { print "UAC final: invite failed\n"; exit 1 };
$ua->add_timer($secs, sub { $stop = 1 });
$ua->loop(\$stop);
# let the ACK for the 487 leave
$ua->loop(0.3);
print "UAC provisional: ", ($provisional // 'none'), "\n";
print "UAC final: ", ($final // 'timeout'), "\n";
exit(($final // '') =~ /487/ ? 0 : 1);
