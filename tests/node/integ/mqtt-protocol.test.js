'use strict';
// The MQTT server at the byte level: the DPS exchange as Azure shapes it (PUBACK first,
// $rid echoed first in the response topic), and every malformed or forbidden packet
// closes the connection. Keep-alive is enforced at 1.5 x the CONNECT value.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const {
	TYPE, RawMqtt, mqttConnect, dpsUsername, connectPacket, publishPacket, subscribePacket,
	pubackPacket, PINGREQ,
} = require('../lib/mqtt-raw');
const { x509Enrollment } = require('../lib/service');
const { sleep } = require('../lib/wait');

const REG_ID = 'raw-dev';
const CLOSE_TIMEOUT_MS = 3000;
let dev;

const fx = useDaemon({
	async setup() {
		dev = await fx.certs.device(REG_ID, { selfSigned: true });
		await fx.svc.createEnrollment(x509Enrollment(REG_ID, dev.pem));
	},
});

function tlsOpts() {
	return { ca: fx.daemon.ca, cert: dev.chainPem, key: dev.key };
}

/** An accepted DPS connection (CONNACK 0 checked). */
async function connectDevice(extra = {}) {
	const { conn, connack } = await mqttConnect(fx.daemon.mqttPort, {
		...tlsOpts(),
		clientId: REG_ID,
		username: dpsUsername(fx.daemon.scope, REG_ID),
		...extra,
	});
	assert.equal(connack.returnCode, 0, 'CONNACK accepted');
	assert.equal(connack.sessionPresent, 0, 'no session present (clean sessions only)');
	return conn;
}

async function assertClosedAfter(conn, bytes, what) {
	conn.send(bytes);
	try {
		await conn.waitClosed(CLOSE_TIMEOUT_MS);
	} catch (err) {
		conn.close();
		throw new Error(`${what}: ${err.message}`);
	}
}

test('register over raw MQTT: SUBACK qos 1, PUBACK before the response, $rid echoed first', async () => {
	const conn = await connectDevice();
	try {
		conn.send(subscribePacket({ pid: 1, topic: '$dps/registrations/res/#', qos: 1 }));
		const suback = await conn.nextOfType(TYPE.SUBACK);
		assert.equal(suback.pid, 1);
		assert.deepEqual(suback.granted, [1]);

		const rid = 'a1b2-Rid.7';
		conn.send(publishPacket({
			topic: `$dps/registrations/PUT/iotdps-register/?$rid=${rid}`,
			payload: JSON.stringify({ registrationId: REG_ID }),
			qos: 1,
			pid: 7,
		}));
		const first = await conn.next((p) => p.type === TYPE.PUBACK || p.type === TYPE.PUBLISH);
		assert.equal(first.type, TYPE.PUBACK, 'PUBACK comes before the response PUBLISH');
		assert.equal(first.pid, 7);
		const res = await conn.nextOfType(TYPE.PUBLISH);
		assert.equal(res.topic, `$dps/registrations/res/202/?$rid=${rid}&retry-after=0`);
		assert.equal(res.qos, 1, 'response at the granted QoS');
		conn.send(pubackPacket(res.pid));
		const op = JSON.parse(res.payload.toString());
		assert.equal(op.status, 'assigning');

		// Poll (Node sends a single space as the payload) until assigned.
		let done;
		for (let i = 0; i < 50 && !done; i++) {
			const pollRid = `poll-${i}`;
			conn.send(publishPacket({
				topic: `$dps/registrations/GET/iotdps-get-operationstatus/?$rid=${pollRid}&operationId=${op.operationId}`,
				payload: ' ',
				qos: 1,
				pid: 100 + i,
			}));
			const r = await conn.nextOfType(TYPE.PUBLISH);
			conn.send(pubackPacket(r.pid));
			const m = /^\$dps\/registrations\/res\/(\d+)\/\?\$rid=([^&]+)(&retry-after=(\d+))?$/.exec(r.topic);
			assert.ok(m, `response topic shape: ${r.topic}`);
			assert.equal(m[2], pollRid, 'the poll\'s $rid is echoed');
			if (m[1] === '200') done = JSON.parse(r.payload.toString());
			else assert.equal(m[1], '202');
		}
		assert.ok(done, 'assigned within 50 polls');
		assert.equal(done.status, 'assigned');
		assert.equal(done.registrationState.deviceId, REG_ID);
		assert.equal(conn.closed, false, 'the connection stays open after a good exchange');
	} finally {
		conn.close();
	}
});

test('a QoS 0 subscription gets its responses at QoS 0', async () => {
	const conn = await connectDevice();
	try {
		conn.send(subscribePacket({ pid: 2, topic: '$dps/registrations/res/#', qos: 0 }));
		assert.deepEqual((await conn.nextOfType(TYPE.SUBACK)).granted, [0]);
		conn.send(publishPacket({ topic: '$dps/registrations/PUT/iotdps-register/?$rid=1', payload: '' }));
		const res = await conn.nextOfType(TYPE.PUBLISH);
		assert.equal(res.qos, 0);
		assert.match(res.topic, /^\$dps\/registrations\/res\/202\/\?\$rid=1&retry-after=0$/);
	} finally {
		conn.close();
	}
});

test('garbage instead of CONNECT closes the connection', async () => {
	// An HTTP request: its first bytes read as a packet whose length it also supplies,
	// so even a server that reads whole packets before judging them sees all of it.
	const conn = await RawMqtt.connect(fx.daemon.mqttPort, tlsOpts());
	const http = `GET / HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${'a'.repeat(120)}\r\n\r\n`;
	await assertClosedAfter(conn, Buffer.from(http), 'HTTP request');
});

test('a packet other than CONNECT first closes the connection', async () => {
	const conn = await RawMqtt.connect(fx.daemon.mqttPort, tlsOpts());
	await assertClosedAfter(conn, PINGREQ, 'PINGREQ before CONNECT');
});

test('a CONNECT with a wrong protocol name is never accepted and the connection closes', async () => {
	const conn = await RawMqtt.connect(fx.daemon.mqttPort, tlsOpts());
	const pkt = connectPacket({ clientId: REG_ID, username: dpsUsername(fx.daemon.scope, REG_ID) });
	pkt.write('MQTX', 4, 'latin1'); // after the fixed header (2 bytes) and the name's length (2)
	conn.send(pkt);
	try {
		await conn.waitClosed(CLOSE_TIMEOUT_MS);
	} finally {
		conn.close();
	}
	const connack = conn.packets.find((p) => p.type === TYPE.CONNACK);
	assert.ok(!connack || connack.returnCode !== 0, 'no CONNACK 0');
});

test('garbage after CONNECT closes the connection', async () => {
	const conn = await connectDevice();
	await assertClosedAfter(conn, Buffer.from([0x00, 0x03, 0xde, 0xad, 0xbe]), 'reserved packet type 0');
});

test('a packet of reserved type 15 closes the connection', async () => {
	const conn = await connectDevice();
	await assertClosedAfter(conn, Buffer.from([0xf0, 0x00]), 'reserved packet type 15');
});

test('a remaining length longer than 4 bytes closes the connection', async () => {
	const conn = await connectDevice();
	await assertClosedAfter(conn, Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]), '5-byte remaining length');
});

test('a QoS 2 PUBLISH closes the connection', async () => {
	const conn = await connectDevice();
	const pkt = publishPacket({ topic: '$dps/registrations/PUT/iotdps-register/?$rid=1', payload: '{}', qos: 2, pid: 3 });
	await assertClosedAfter(conn, pkt, 'QoS 2 publish');
});

test('a PUBLISH outside $dps/registrations/ closes the connection', async () => {
	const conn = await connectDevice();
	const pkt = publishPacket({ topic: `devices/${REG_ID}/messages/events/`, payload: 'hello', qos: 1, pid: 4 });
	await assertClosedAfter(conn, pkt, 'publish to the hub telemetry topic');
});

test('a SUBSCRIBE to # closes the connection', async () => {
	const conn = await connectDevice();
	await assertClosedAfter(conn, subscribePacket({ pid: 5, topic: '#', qos: 0 }), 'subscribe to #');
});

test('an oversized packet closes the connection before it is all sent', async () => {
	const conn = await connectDevice();
	// Declares the largest MQTT length (256 MiB - 1), then streams up to 4 MiB of it.
	conn.send(Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x05]));
	conn.send(Buffer.from('$dps/'));
	const chunk = Buffer.alloc(64 * 1024, 0x61);
	for (let sent = 0; sent < 4 * 1024 * 1024 && !conn.closed; sent += chunk.length) {
		conn.send(chunk);
		await sleep(1);
	}
	await conn.waitClosed(CLOSE_TIMEOUT_MS).catch((err) => {
		conn.close();
		throw err;
	});
});

test('keep-alive: CONNECT with keepalive 1 and silence -> closed after about 1.5 s', async () => {
	const conn = await connectDevice({ keepalive: 1 });
	const start = Date.now();
	const took = await conn.waitClosed(4000, start).catch((err) => {
		conn.close();
		throw err;
	});
	assert.ok(took >= 1000, `closed after ${took} ms: not before the keep-alive ran out`);
	assert.ok(took <= 3000, `closed after ${took} ms: within 2 x keep-alive`);
});

test('keep-alive: PINGREQ every 0.5 s keeps a keepalive-1 connection open', async () => {
	const conn = await connectDevice({ keepalive: 1 });
	try {
		for (let i = 0; i < 8; i++) {
			conn.send(PINGREQ);
			await conn.nextOfType(TYPE.PINGRESP, 1000);
			await sleep(500);
		}
		assert.equal(conn.closed, false, 'still open after 4 s of pings');
	} finally {
		conn.close();
	}
});
