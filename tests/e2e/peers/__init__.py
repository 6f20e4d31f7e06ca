"""Helpers that drive real SIP peers (SIPp, baresip, Net::SIP) in e2e tests."""
