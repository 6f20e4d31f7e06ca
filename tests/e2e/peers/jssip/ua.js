#!/usr/bin/env node
/*
 * JsSIP (an SIP-over-WebSocket stack, RFC 7118) in node, as a browser
 * phone for Osprey's end-to-end tests (tests/e2e/test_jssip.py).
 *
 * Driven by command-line options; prints one JSON object per line on
 * stdout, one per event: {"event": NAME, "t": ms since start, ...}.
 * Closing its standard input stops the UA (unregistering first when it
 * registered) and exits 0; --timeout bounds the whole run.
 *
 *   node ua.js --ws ws://127.0.0.1:PORT --user alice [--domain D]
 *       [--password PW] [--register] [--expires S] [--ca FILE]
 *       [--invite-reply CODE] [--message-to URI --message-body TEXT]
 *       [--timeout S] [--trace]
 *
 * --invite-reply CODE  an incoming INVITE (newRTCSession) is rejected
 *                      with CODE by session.terminate().
 * --message-to URI     after registering (or, without --register, once
 *                      connected) send one MESSAGE (text/plain) to URI.
 * --trace              also a sip_in / sip_out event for every SIP
 *                      message on the WebSocket, with its whole text.
 * Incoming MESSAGEs are answered 200 by JsSIP and reported (newMessage).
 */
'use strict';

const fs = require('fs');

const args = parseArgs(process.argv.slice(2));
const T0 = Date.now();

function emit(event, fields) {
	process.stdout.write(JSON.stringify(
	    Object.assign({ event: event, t: Date.now() - T0 }, fields || {})) +
	    '\n');
}

function parseArgs(argv) {
	const flags = new Set([ 'register', 'trace' ]);
	const out = { domain: 'example.test', expires: '300', timeout: '30' };

	for (let i = 0; i < argv.length; i++) {
		const a = argv[i];

		if (!a.startsWith('--'))
			usage('unexpected argument ' + a);
		const k = a.slice(2);

		if (flags.has(k)) {
			out[k] = true;
			continue;
		}
		if (i + 1 >= argv.length)
			usage('--' + k + ' needs a value');
		out[k.replace(/-/g, '_')] = argv[++i];
	}
	if (!out.ws || !out.user)
		usage('--ws and --user are required');
	return out;
}

function usage(msg) {
	process.stderr.write('ua.js: ' + msg + '\n');
	process.exit(2);
}

function fatal(what, err) {
	emit('error', { what: what, error: String(err && err.stack || err) });
	process.exit(1);
}

process.on('uncaughtException', (e) => fatal('uncaughtException', e));
process.on('unhandledRejection', (e) => fatal('unhandledRejection', e));

/*
 * JsSIP is written for browsers: it looks for window.RTCPeerConnection
 * before it lets an INVITE through to newRTCSession (without one it
 * answers 488 itself).  Rejecting a call never builds a peer connection,
 * so the constructor below only throws: node has no media, and a test
 * that reaches it fails loudly (an "error" event, exit 1).
 */
if (typeof globalThis.window === 'undefined')
	globalThis.window = globalThis;
if (args.invite_reply && typeof globalThis.RTCPeerConnection ===
    'undefined') {
	globalThis.RTCPeerConnection = class {
		constructor() {
			throw new Error('ua.js: no RTCPeerConnection in node');
		}
	};
}

const JsSIP = require('jssip');
const NodeWebSocket = require('jssip-node-websocket');

/* The WebSocket, with every SIP message reported when --trace. */
class TracedSocket extends NodeWebSocket {
	send(message) {
		if (args.trace)
			emit('sip_out', { text: String(message) });
		return super.send(message);
	}

	get ondata() {
		return this._ondata;
	}

	set ondata(fn) {
		this._ondata = (data) => {
			if (args.trace) {
				const text = typeof data === 'string' ? data :
				    Buffer.from(data).toString('utf8');

				if (text.replace(/[\r\n]/g, '') !== '')
					emit('sip_in', { text: text });
			}
			fn(data);
		};
	}

	localPort() {
		const c = this._ws && this._ws._connection;

		return c && c.socket ? c.socket.localPort : null;
	}
}

const sockOpts = {};

if (args.ca) {
	sockOpts.clientConfig = {
		tlsOptions: { ca: fs.readFileSync(args.ca) }
	};
}
const socket = new TracedSocket(args.ws, sockOpts);
const config = {
	sockets: [ socket ],
	uri: 'sip:' + args.user + '@' + args.domain,
	register: !!args.register,
	register_expires: parseInt(args.expires, 10),
	session_timers: false,
	user_agent: 'osprey-e2e JsSIP/' + JsSIP.version,
	connection_recovery_min_interval: 30,
	connection_recovery_max_interval: 60,
	no_answer_timeout: 30
};

if (args.password)
	config.password = args.password;

const ua = new JsSIP.UA(config);
let stopping = false;

ua.on('connected', () => emit('connected', {
	url: args.ws, local_port: socket.localPort()
}));
ua.on('disconnected', (e) => emit('disconnected', {
	error: !!e.error, code: e.code != null ? e.code : null
}));
ua.on('registered', (e) => {
	emit('registered', {
		status: e.response.status_code,
		contact: ua.contact.toString(),
		expires: e.response.getHeader('Expires') || null
	});
	sendMessage();
});
ua.on('unregistered', (e) => emit('unregistered', {
	status: e && e.response ? e.response.status_code : null
}));
ua.on('registrationFailed', (e) => emit('registrationFailed', {
	cause: e.cause,
	status: e.response ? e.response.status_code : null
}));

ua.on('newRTCSession', (e) => {
	const s = e.session;
	const req = e.request;

	emit('newRTCSession', {
		originator: e.originator,
		from: s.remote_identity.uri.toString(),
		ruri: req.ruri.toString(),
		call_id: req.call_id,
		record_route: req.getHeaders('Record-Route')
	});
	s.on('failed', (f) => emit('session_failed', {
		originator: f.originator, cause: f.cause
	}));
	s.on('ended', (f) => emit('session_ended', {
		originator: f.originator, cause: f.cause
	}));
	if (e.originator === 'remote' && args.invite_reply) {
		s.terminate({ status_code: parseInt(args.invite_reply, 10) });
		emit('session_rejected', {
		    status: parseInt(args.invite_reply, 10) });
	}
});

ua.on('newMessage', (e) => {
	if (e.originator !== 'remote')
		return;
	const req = e.request;

	emit('newMessage', {
		from: e.message.remote_identity.uri.toString(),
		ruri: req.ruri.toString(),
		content_type: req.getHeader('Content-Type') || null,
		body: req.body
	});
});

let messageSent = false;

function sendMessage() {
	if (!args.message_to || messageSent)
		return;
	messageSent = true;
	ua.sendMessage(args.message_to, args.message_body || '', {
		contentType: 'text/plain',
		eventHandlers: {
			succeeded: (e) => emit('message_succeeded', {
				status: e.response.status_code,
				reason: e.response.reason_phrase
			}),
			failed: (e) => emit('message_failed', {
				cause: e.cause,
				status: e.response ? e.response.status_code : null
			})
		}
	});
}

if (!args.register)
	ua.on('connected', sendMessage);

function stop(why) {
	if (stopping)
		return;
	stopping = true;
	emit('stopping', { why: why });
	const done = () => {
		emit('stopped');
		process.exit(0);
	};

	if (ua.isRegistered()) {
		ua.once('unregistered', () => setTimeout(done, 50));
		setTimeout(done, 3000);
	} else {
		setTimeout(done, 50);
	}
	ua.stop();
}

process.stdin.on('end', () => stop('stdin closed'));
process.stdin.resume();
process.on('SIGTERM', () => stop('SIGTERM'));
setTimeout(() => {
	emit('timeout', { seconds: parseFloat(args.timeout) });
	process.exit(3);
}, parseFloat(args.timeout) * 1000).unref();

emit('start', { jssip: JsSIP.version, node: process.version });
ua.start();
