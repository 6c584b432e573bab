'use strict';
// Raw MQTT 3.1.1 over TLS: build packets byte by byte, send anything (including
// garbage), read the server's packets and see whether (and when) it closed the
// connection.
const tls = require('node:tls');
const { sleep } = require('./wait');

const TYPE = Object.freeze({
	CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7,
	SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13,
	DISCONNECT: 14,
});

/** MQTT "remaining length": 7 bits per byte, high bit = more. */
function encodeLength(n) {
	const out = [];
	do {
		let b = n % 128;
		n = Math.floor(n / 128);
		if (n > 0) b |= 0x80;
		out.push(b);
	} while (n > 0);
	return Buffer.from(out);
}

function str(s) {
	const b = Buffer.from(s, 'utf8');
	const len = Buffer.alloc(2);
	len.writeUInt16BE(b.length);
	return Buffer.concat([len, b]);
}

function u16(n) {
	const b = Buffer.alloc(2);
	b.writeUInt16BE(n);
	return b;
}

function packet(firstByte, body) {
	return Buffer.concat([Buffer.from([firstByte]), encodeLength(body.length), body]);
}

/** CONNECT (level 4). opts: clientId, username, password, keepalive (s), clean (default true). */
function connectPacket({ clientId, username, password, keepalive = 60, clean = true }) {
	let flags = clean ? 0x02 : 0;
	const tail = [str(clientId)];
	if (username !== undefined) {
		flags |= 0x80;
		tail.push(str(username));
	}
	if (password !== undefined) {
		flags |= 0x40;
		tail.push(str(password));
	}
	return packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, flags]), u16(keepalive), ...tail]));
}

/** PUBLISH. opts: topic, payload (string/Buffer), qos (0..3, not checked), pid. */
function publishPacket({ topic, payload = '', qos = 0, pid = 1, dup = false, retain = false }) {
	const first = 0x30 | (dup ? 0x08 : 0) | ((qos & 3) << 1) | (retain ? 1 : 0);
	const parts = [str(topic)];
	if (qos > 0) parts.push(u16(pid));
	parts.push(Buffer.isBuffer(payload) ? payload : Buffer.from(payload));
	return packet(first, Buffer.concat(parts));
}

function subscribePacket({ pid = 1, topic, qos = 1 }) {
	return packet(0x82, Buffer.concat([u16(pid), str(topic), Buffer.from([qos])]));
}

function pubackPacket(pid) {
	return packet(0x40, u16(pid));
}

const PINGREQ = Buffer.from([0xc0, 0x00]);
const DISCONNECT = Buffer.from([0xe0, 0x00]);

/** Decodes the fields the suites look at from one received packet. */
function decode(type, flags, body) {
	const p = { type, flags, body };
	if (type === TYPE.CONNACK && body.length >= 2) {
		p.sessionPresent = body[0] & 1;
		p.returnCode = body[1];
	} else if (type === TYPE.PUBLISH) {
		const tlen = body.readUInt16BE(0);
		p.topic = body.subarray(2, 2 + tlen).toString('utf8');
		p.qos = (flags >> 1) & 3;
		let off = 2 + tlen;
		if (p.qos > 0) {
			p.pid = body.readUInt16BE(off);
			off += 2;
		}
		p.payload = body.subarray(off);
	} else if ((type === TYPE.PUBACK || type === TYPE.SUBACK) && body.length >= 2) {
		p.pid = body.readUInt16BE(0);
		if (type === TYPE.SUBACK) p.granted = [...body.subarray(2)];
	}
	return p;
}

class RawMqtt {
	/**
	 * Opens TLS to 127.0.0.1:port (server name localhost). opts: ca, cert, key.
	 * Resolves once the handshake completes.
	 */
	static connect(port, opts) {
		return new Promise((resolve, reject) => {
			const sock = tls.connect({
				host: '127.0.0.1',
				port,
				servername: 'localhost',
				ca: opts.ca,
				cert: opts.cert,
				key: opts.key,
			});
			const fail = (err) => reject(err);
			sock.once('error', fail);
			sock.once('secureConnect', () => {
				sock.off('error', fail);
				resolve(new RawMqtt(sock));
			});
		});
	}

	constructor(sock) {
		this.sock = sock;
		this.buf = Buffer.alloc(0);
		this.packets = []; // received, not yet taken
		this.closedAt = null;
		this.error = null;
		sock.on('data', (d) => this.onData(d));
		sock.on('error', (err) => {
			this.error = err;
		});
		sock.on('close', () => {
			this.closedAt = Date.now();
		});
	}

	get closed() {
		return this.closedAt !== null;
	}

	onData(d) {
		this.buf = Buffer.concat([this.buf, d]);
		for (;;) {
			if (this.buf.length < 2) return;
			let len = 0;
			let mult = 1;
			let i = 1;
			for (;;) {
				if (i >= this.buf.length) return;
				const b = this.buf[i++];
				len += (b & 0x7f) * mult;
				mult *= 128;
				if (!(b & 0x80)) break;
				if (i > 4) {
					this.error = new Error('server sent a malformed remaining length');
					this.sock.destroy();
					return;
				}
			}
			if (this.buf.length < i + len) return;
			const first = this.buf[0];
			this.packets.push(decode(first >> 4, first & 0x0f, this.buf.subarray(i, i + len)));
			this.buf = this.buf.subarray(i + len);
		}
	}

	/** Writes bytes; ignores write errors (the server may already have closed). */
	send(bytes) {
		if (this.closed || this.sock.destroyed) return;
		this.sock.write(bytes, () => {});
	}

	/** Resolves with the next packet matching pred (default any); rejects on close/timeout. */
	async next(pred = () => true, timeoutMs = 5000, what = 'a packet') {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const idx = this.packets.findIndex(pred);
			if (idx >= 0) return this.packets.splice(idx, 1)[0];
			if (this.closed) throw new Error(`connection closed while waiting for ${what}`);
			if (Date.now() >= deadline) throw new Error(`no ${what} within ${timeoutMs} ms`);
			await sleep(10);
		}
	}

	nextOfType(type, timeoutMs = 5000) {
		const name = Object.keys(TYPE).find((k) => TYPE[k] === type);
		return this.next((p) => p.type === type, timeoutMs, name);
	}

	/**
	 * Waits until the server closes the connection. Resolves with the time it took
	 * (ms, from the call or from `since`), or rejects after timeoutMs.
	 */
	async waitClosed(timeoutMs = 5000, since = Date.now()) {
		const deadline = Date.now() + timeoutMs;
		while (!this.closed) {
			if (Date.now() >= deadline) throw new Error(`server kept the connection open for ${timeoutMs} ms`);
			await sleep(10);
		}
		return this.closedAt - since;
	}

	close() {
		this.sock.destroy();
	}
}

/**
 * Connects, sends CONNECT and returns the connection once CONNACK arrives.
 * opts: ca, cert, key, clientId, username, password, keepalive. Resolves { conn, connack }.
 */
async function mqttConnect(port, opts) {
	const conn = await RawMqtt.connect(port, opts);
	conn.send(connectPacket(opts));
	try {
		const connack = await conn.nextOfType(TYPE.CONNACK);
		return { conn, connack };
	} catch (err) {
		conn.close();
		throw err;
	}
}

/** The DPS CONNECT username. */
function dpsUsername(scope, registrationId, apiVersion = '2019-03-31') {
	return `${scope}/registrations/${registrationId}/api-version=${apiVersion}`;
}

module.exports = {
	TYPE,
	RawMqtt,
	mqttConnect,
	dpsUsername,
	encodeLength,
	connectPacket,
	publishPacket,
	subscribePacket,
	pubackPacket,
	PINGREQ,
	DISCONNECT,
};
