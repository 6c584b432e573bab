'use strict';
// The hub's device protocol over raw MQTT, and the emulator routes tests read it with.
// Every refusal gets its protocol answer (CONNACK 5, the connection closed, a twin 400,
// an HTTP error in the hub's envelope) and changes nothing: no telemetry stored, no
// twin version bumped, no C2D queued or completed, the device still Disconnected.
// Then: telemetry observation (wait, since paging, binary bodies, property bags, the
// log bound), C2D delivery, redelivery, completion, expiry and the queue bound,
// duplicate connections, the registry's connection fields, direct methods (timeouts,
// offline devices, late connections) and a restart.
// Each refusal is checked against the reason the daemon logs, so a test cannot pass
// because the device was refused for some other reason.
const assert = require('node:assert/strict');
const path = require('node:path');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { Daemon } = require('../lib/daemon');
const { ServiceClient } = require('../lib/service');
const { describe } = require('../lib/https-client');
const { publishPacket, subscribePacket, pubackPacket, TYPE } = require('../lib/mqtt-raw');
const { DPS_KEY, DPS_KEY_NAME } = require('../lib/sas');
const { sleep, waitFor } = require('../lib/wait');
const {
	HubService,
	NEVER,
	hubToken,
	assertHubError,
	assertMethodError,
	devicePath,
	twinPath,
	connectHubDevice,
	openHubDevice,
	subscribe,
	publishAcked,
	eventsTopic,
	splitTopic,
	twinRequest,
	deviceSasToken,
} = require('../lib/hub');

const MAX_D2C = 262144; // Azure's device-to-cloud message limit
const C2D_QUEUE_MAX = 50; // DPSEMU_C2D_QUEUE_MAX's default
const TELEMETRY_KEEP = 20; // DPSEMU_TELEMETRY_KEEP for this file (no test sends more to one device)

let hub;
let verifiedRoot; // registered and verified under /certificates
let unverifiedRoot; // registered, never verified
let unknownRoot; // never registered

const fx = useDaemon({
	// Large enough for the MQTT codec to pass a message over the hub's limit along,
	// so the hub itself must refuse it.
	env: { DPSEMU_MAX_MQTT_PACKET: String(1024 * 1024), DPSEMU_TELEMETRY_KEEP: String(TELEMETRY_KEEP) },
	async setup() {
		hub = new HubService(fx.daemon);
		verifiedRoot = await fx.certs.root('hd-verified-root');
		unverifiedRoot = await fx.certs.root('hd-unverified-root');
		unknownRoot = await fx.certs.root('hd-unknown-root');
		await fx.svc.registerVerifiedCa('hd-verified', verifiedRoot, fx.certs);
		const res = await fx.svc.put('/certificates/hd-unverified', { certificate: unverifiedRoot.pem });
		assert.equal(res.status, 200, describe(res));
		assert.equal(res.json.properties.isVerified, false);
	},
});

/** Registers a selfSigned device for a new self-signed certificate; returns the Cert. */
async function thumbprintDevice(deviceId) {
	const cert = await fx.certs.device(deviceId, { selfSigned: true });
	await hub.createThumbprintDevice(deviceId, cert);
	return cert;
}

/** Connects a thumbprint device and returns the open connection. */
function open(deviceId, cert) {
	return openHubDevice(fx.daemon, { deviceId, cert });
}

/**
 * Connects with opts and asserts CONNACK 5, the connection closed by the server, the
 * reason in the log, and that nothing changed: the device (if registered) is as it was
 * and still Disconnected, its twin and telemetry untouched.
 */
async function assertRefused(opts, logRe) {
	const before = await snapshot(opts.deviceId);
	const mark = fx.daemon.mark();
	const { conn, connack } = await connectHubDevice(fx.daemon, opts);
	try {
		assert.equal(connack.returnCode, 5, `CONNACK for ${opts.deviceId}`);
		await conn.waitClosed(5000);
		assert.equal(conn.packets.length, 0, 'nothing after the CONNACK');
	} finally {
		conn.close();
	}
	const line = await fx.daemon.waitForLog(new RegExp(`device '${opts.deviceId}' from \\S+ refused: `), { since: mark });
	if (logRe) assert.match(line, logRe);
	const after = await snapshot(opts.deviceId);
	assert.deepEqual(after, before, `${opts.deviceId}: nothing changed`);
	if (typeof after.device === 'object') assert.equal(after.device.connectionState, 'Disconnected');
}

/** What a refusal must not change: the device, its twin and its telemetry. */
async function snapshot(deviceId) {
	const device = await hub.call('GET', devicePath(deviceId));
	const twin = await hub.call('GET', twinPath(deviceId));
	return {
		device: device.status === 200 ? device.json : device.status,
		twin: twin.status === 200 ? twin.json : twin.status,
		telemetry: await hub.telemetry(deviceId),
	};
}

/** Waits until the registry says deviceId is in state. */
function waitConnectionState(deviceId, state) {
	return waitFor(async () => (await hub.getDevice(deviceId)).connectionState === state, {
		timeoutMs: 5000,
		what: `${deviceId} ${state}`,
	});
}

// ---- authentication ---------------------------------------------------------

test('thumbprint device: its own certificate connects; telemetry is stored', async () => {
	const cert = await thumbprintDevice('hd-thumb-ok');
	const conn = await open('hd-thumb-ok', cert);
	try {
		assert.equal((await hub.getDevice('hd-thumb-ok')).connectionState, 'Connected');
		await publishAcked(conn, eventsTopic('hd-thumb-ok'), 'hi');
		const msgs = await hub.telemetry('hd-thumb-ok');
		assert.equal(msgs.length, 1);
		assert.equal(msgs[0].body, 'hi');
	} finally {
		conn.close();
	}
	await waitConnectionState('hd-thumb-ok', 'Disconnected');
});

test('thumbprint device presenting a certificate whose CN is not its id: refused', async () => {
	// The registered thumbprint matches: only the CN is wrong.
	const cert = await fx.certs.device('hd-cn-cert', { selfSigned: true, cn: 'hd-someone-else' });
	await hub.createThumbprintDevice('hd-cn-wrong', cert);
	await assertRefused({ deviceId: 'hd-cn-wrong', cert }, /CN 'hd-someone-else' is not the device id 'hd-cn-wrong'/);
});

test('thumbprint mismatch: another certificate with the right CN is refused', async () => {
	const registered = await thumbprintDevice('hd-thumb-mismatch');
	const other = await fx.certs.device('hd-thumb-mismatch-2', { selfSigned: true, cn: 'hd-thumb-mismatch' });
	assert.notEqual(other.sha256, registered.sha256);
	await assertRefused({ deviceId: 'hd-thumb-mismatch', cert: other }, /matches neither registered thumbprint/);
	// The registered one still works.
	const conn = await open('hd-thumb-mismatch', registered);
	conn.close();
});

test('an expired certificate is refused even though its thumbprint is registered', async () => {
	const cert = await fx.certs.device('hd-expired', { selfSigned: true, startOffsetDays: -10, days: 5 });
	assert.ok(new Date(cert.x509.validTo) < new Date(), 'the certificate has expired');
	await hub.createThumbprintDevice('hd-expired', cert);
	await assertRefused({ deviceId: 'hd-expired', cert }, /expired/i);
});

test('a certificate that is not valid yet is refused', async () => {
	const cert = await fx.certs.device('hd-future', { selfSigned: true, startOffsetDays: 5, days: 30 });
	await hub.createThumbprintDevice('hd-future', cert);
	await assertRefused({ deviceId: 'hd-future', cert }, /not yet valid|not valid yet|before/i);
});

test('a disabled device is refused', async () => {
	const cert = await fx.certs.device('hd-disabled', { selfSigned: true });
	await hub.createThumbprintDevice('hd-disabled', cert, { status: 'disabled' });
	await assertRefused({ deviceId: 'hd-disabled', cert }, /is disabled/);
});

test('an unknown device is refused', async () => {
	const cert = await fx.certs.device('hd-nobody', { selfSigned: true });
	await assertRefused({ deviceId: 'hd-nobody', cert }, /not registered in the hub/);
	assert.equal((await hub.call('GET', devicePath('hd-nobody'))).status, 404, 'and is not created');
});

test('an X.509 device connecting without a client certificate is refused', async () => {
	await thumbprintDevice('hd-no-cert');
	await assertRefused({ deviceId: 'hd-no-cert' }, /no client certificate/);
});

test('a client id other than the username\'s device is refused', async () => {
	const cert = await thumbprintDevice('hd-client-id');
	await assertRefused({ deviceId: 'hd-client-id', clientId: 'hd-client-id-2', cert }, /client id 'hd-client-id-2'/);
});

test('certificateAuthority device: a chain to a verified CA connects', async () => {
	await hub.createCaDevice('hd-ca-ok');
	const inter = await fx.certs.intermediate('hd-ca-ok-inter', { ca: verifiedRoot });
	const leaf = await fx.certs.device('hd-ca-ok', { ca: inter });
	const conn = await openHubDevice(fx.daemon, { deviceId: 'hd-ca-ok', cert: leaf });
	try {
		await publishAcked(conn, eventsTopic('hd-ca-ok'), 'via CA');
		assert.equal((await hub.telemetry('hd-ca-ok')).length, 1);
	} finally {
		conn.close();
	}
});

test('certificateAuthority device: a chain to an unknown CA is refused', async () => {
	await hub.createCaDevice('hd-ca-unknown');
	const leaf = await fx.certs.device('hd-ca-unknown', { ca: unknownRoot });
	await assertRefused({ deviceId: 'hd-ca-unknown', cert: leaf }, /does not reach a verified CA/);
});

test('certificateAuthority device: a chain to a registered but unverified CA is refused', async () => {
	await hub.createCaDevice('hd-ca-unverified');
	const leaf = await fx.certs.device('hd-ca-unverified', { ca: unverifiedRoot });
	await assertRefused({ deviceId: 'hd-ca-unverified', cert: leaf }, /does not reach a verified CA/);
});

test('certificateAuthority device: a verified chain with the wrong CN is refused', async () => {
	await hub.createCaDevice('hd-ca-cn');
	const leaf = await fx.certs.device('hd-ca-cn-cert', { ca: verifiedRoot, cn: 'hd-ca-other' });
	await assertRefused({ deviceId: 'hd-ca-cn', cert: leaf }, /CN 'hd-ca-other' is not the device id 'hd-ca-cn'/);
});

test('certificateAuthority device: an expired leaf under a verified CA is refused', async () => {
	await hub.createCaDevice('hd-ca-expired');
	const leaf = await fx.certs.device('hd-ca-expired', { ca: verifiedRoot, startOffsetDays: -10, days: 5 });
	await assertRefused({ deviceId: 'hd-ca-expired', cert: leaf }, /expired/i);
});

test('DPSEMU_HUB_REQUIRE_CN=0: thumbprint devices are matched by thumbprint alone; CA devices still need CN = id', async () => {
	const daemon = await Daemon.start({ dataDir: path.join(fx.dir, 'data-cn0'), env: { DPSEMU_HUB_REQUIRE_CN: '0' } });
	try {
		const svc = new HubService(daemon);
		const cert = await fx.certs.device('hd-cn0-cert', { selfSigned: true, cn: 'hd-cn0-other-name' });
		await svc.createThumbprintDevice('hd-cn0', cert);
		const conn = await openHubDevice(daemon, { deviceId: 'hd-cn0', cert });
		try {
			await publishAcked(conn, eventsTopic('hd-cn0'), 'accepted');
		} finally {
			conn.close();
		}
		assert.equal((await svc.telemetry('hd-cn0')).length, 1);
		// A wrong thumbprint is still refused.
		const other = await fx.certs.device('hd-cn0-other', { selfSigned: true, cn: 'hd-cn0' });
		const refused = await connectHubDevice(daemon, { deviceId: 'hd-cn0', cert: other });
		refused.conn.close();
		assert.equal(refused.connack.returnCode, 5);

		// CA-authenticated devices: CN = device id whatever the setting.
		const root = await fx.certs.root('hd-cn0-root');
		const dps = new ServiceClient(daemon);
		await dps.registerVerifiedCa('hd-cn0-ca', root, fx.certs);
		await svc.createCaDevice('hd-cn0-ca-dev');
		const wrong = await fx.certs.device('hd-cn0-ca-wrong', { ca: root, cn: 'hd-cn0-ca-someone' });
		const r = await connectHubDevice(daemon, { deviceId: 'hd-cn0-ca-dev', cert: wrong });
		r.conn.close();
		assert.equal(r.connack.returnCode, 5, 'a CA device with the wrong CN is refused');
		await daemon.waitForLog(/device 'hd-cn0-ca-dev' from \S+ refused: leaf certificate CN 'hd-cn0-ca-someone'/);
		const right = await fx.certs.device('hd-cn0-ca-dev', { ca: root });
		(await openHubDevice(daemon, { deviceId: 'hd-cn0-ca-dev', cert: right })).close();
	} catch (err) {
		daemon.printLog('the DPSEMU_HUB_REQUIRE_CN=0 daemon');
		throw err;
	} finally {
		await daemon.stop();
	}
});

test('SAS device: a good token connects; a wrong key, an expired token, another device\'s token are refused', async () => {
	const d = await hub.createDevice('hd-sas');
	const key = d.authentication.symmetricKey.primaryKey;
	const secondary = d.authentication.symmetricKey.secondaryKey;
	const conn = await openHubDevice(fx.daemon, { deviceId: 'hd-sas', password: deviceSasToken('hd-sas', key) });
	conn.close();
	// Both registered keys sign.
	const conn2 = await openHubDevice(fx.daemon, { deviceId: 'hd-sas', password: deviceSasToken('hd-sas', secondary) });
	conn2.close();
	await waitConnectionState('hd-sas', 'Disconnected');
	const before = await hub.getDevice('hd-sas');

	const other = await hub.createDevice('hd-sas-other');
	const wrongKey = Buffer.alloc(32, 7).toString('base64');
	const refusals = [
		['a wrong key', deviceSasToken('hd-sas', wrongKey), /not signed with a key/],
		['an expired token', deviceSasToken('hd-sas', key, { expiry: Math.floor(Date.now() / 1000) - 60 }), /expired/],
		['another device\'s token', deviceSasToken('hd-sas-other', other.authentication.symmetricKey.primaryKey),
			/does not cover/],
		['a token for another host', deviceSasToken('hd-sas', key, { host: 'elsewhere.example' }), /does not cover/],
		['not a token', 'password', /not a SharedAccessSignature/],
	];
	for (const [what, password, re] of refusals) {
		const mark = fx.daemon.mark();
		const { conn: c, connack } = await connectHubDevice(fx.daemon, { deviceId: 'hd-sas', password });
		try {
			assert.equal(connack.returnCode, 5, what);
			await c.waitClosed(5000);
		} finally {
			c.close();
		}
		assert.match(await fx.daemon.waitForLog(/device 'hd-sas' from \S+ refused: /, { since: mark }), re, what);
	}
	await assertRefused({ deviceId: 'hd-sas' }, /has no password/);
	const after = await hub.getDevice('hd-sas');
	assert.equal(after.connectionState, 'Disconnected');
	assert.equal(after.etag, before.etag);
	assert.deepEqual(await hub.telemetry('hd-sas'), []);
});

test('SAS device: the connection is closed when its token expires', async () => {
	const d = await hub.createDevice('hd-sas-expiry');
	const expiry = Math.floor(Date.now() / 1000) + 2;
	const conn = await openHubDevice(fx.daemon, {
		deviceId: 'hd-sas-expiry',
		password: deviceSasToken('hd-sas-expiry', d.authentication.symmetricKey.primaryKey, { expiry }),
	});
	try {
		await conn.waitClosed(6000);
		assert.ok(Date.now() >= expiry * 1000 - 1000, 'not closed long before the expiry');
	} finally {
		conn.close();
	}
	await waitConnectionState('hd-sas-expiry', 'Disconnected');
});

// ---- what a connected device may not do -------------------------------------

/**
 * Sends bytes on an open connection of deviceId and asserts the server closes it
 * without answering (no PUBACK / SUBACK), and the device ends Disconnected.
 */
async function assertClosedFor(conn, deviceId, bytes) {
	conn.send(bytes);
	await conn.waitClosed(5000);
	const answers = conn.packets.filter((p) => p.type === TYPE.PUBACK || p.type === TYPE.SUBACK);
	assert.deepEqual(answers, [], 'no acknowledgement');
	await waitConnectionState(deviceId, 'Disconnected');
}

test('publishing to another device\'s telemetry topic disconnects; nothing is stored', async () => {
	const cert = await thumbprintDevice('hd-pub-other');
	await hub.createDevice('hd-victim');
	const conn = await open('hd-pub-other', cert);
	try {
		await assertClosedFor(conn, 'hd-pub-other',
			publishPacket({ topic: eventsTopic('hd-victim'), payload: 'spoofed', qos: 1, pid: 3 }));
	} finally {
		conn.close();
	}
	assert.deepEqual(await hub.telemetry('hd-victim'), []);
	assert.deepEqual(await hub.telemetry('hd-pub-other'), []);
});

test('publishing to unknown topics disconnects', async () => {
	const cert = await thumbprintDevice('hd-pub-unknown');
	const topics = [
		'foo/bar',
		'devices/hd-pub-unknown/messages/devicebound/',
		'devices/hd-pub-unknown/messages/eventsX',
		'$iothub/twin/PATCH/properties/desired/?$rid=1',
		'$iothub/twin/GET/', // no $rid
		'$iothub/methods/res/abc/?$rid=1',
		'devices/hd-pub-unknown/messages/events/+',
	];
	for (const topic of topics) {
		const conn = await open('hd-pub-unknown', cert);
		try {
			await assertClosedFor(conn, 'hd-pub-unknown', publishPacket({ topic, payload: '{}', qos: 1, pid: 9 }));
		} catch (err) {
			err.message = `${topic}: ${err.message}`;
			throw err;
		} finally {
			conn.close();
		}
	}
	assert.deepEqual(await hub.telemetry('hd-pub-unknown'), []);
	const twin = await hub.getTwin('hd-pub-unknown');
	assert.equal(twin.properties.desired.$version, 1);
	assert.equal(twin.properties.reported.$version, 1);
});

test('subscribing to # or to another device\'s devicebound disconnects, with no SUBACK', async () => {
	const cert = await thumbprintDevice('hd-sub');
	await hub.createDevice('hd-sub-victim');
	for (const topic of ['#', 'devices/hd-sub-victim/messages/devicebound/#', 'devices/+/messages/devicebound/#',
		'$iothub/#', 'devices/hd-sub/messages/events/#']) {
		const conn = await open('hd-sub', cert);
		try {
			await assertClosedFor(conn, 'hd-sub', subscribePacket({ pid: 5, topic, qos: 1 }));
		} catch (err) {
			err.message = `${topic}: ${err.message}`;
			throw err;
		} finally {
			conn.close();
		}
	}
	// The other device's messages stay queued for it.
	await hub.sendC2d('hd-sub-victim', { body: 'private' });
	const conn = await open('hd-sub', cert);
	try {
		conn.send(subscribePacket({ pid: 6, topic: 'devices/hd-sub-victim/messages/devicebound/#', qos: 1 }));
		await conn.waitClosed(5000);
		assert.equal(conn.packets.filter((p) => p.type === TYPE.PUBLISH).length, 0, 'nothing delivered');
	} finally {
		conn.close();
	}
	assert.equal((await hub.c2dQueue('hd-sub-victim')).length, 1);
});

test('QoS 2 telemetry disconnects; nothing is stored', async () => {
	const cert = await thumbprintDevice('hd-qos2');
	const conn = await open('hd-qos2', cert);
	try {
		conn.send(publishPacket({ topic: eventsTopic('hd-qos2'), payload: 'x', qos: 2, pid: 4 }));
		await conn.waitClosed(5000);
		assert.deepEqual(conn.packets.filter((p) => p.type === TYPE.PUBREC || p.type === TYPE.PUBACK), []);
	} finally {
		conn.close();
	}
	assert.deepEqual(await hub.telemetry('hd-qos2'), []);
});

test('a 256 KB message is accepted; one byte more disconnects and is not stored', async () => {
	const cert = await thumbprintDevice('hd-big');
	let conn = await open('hd-big', cert);
	try {
		await publishAcked(conn, eventsTopic('hd-big'), Buffer.alloc(MAX_D2C, 'a'));
	} finally {
		conn.close();
	}
	const first = await hub.telemetry('hd-big');
	assert.equal(first.length, 1);
	assert.equal(first[0].body.length, MAX_D2C);

	for (const size of [MAX_D2C + 1, 300000]) {
		conn = await open('hd-big', cert);
		try {
			const big = publishPacket({ topic: eventsTopic('hd-big'), payload: Buffer.alloc(size, 'b'), qos: 1, pid: 8 });
			await assertClosedFor(conn, 'hd-big', big);
		} finally {
			conn.close();
		}
	}
	const msgs = await hub.telemetry('hd-big');
	assert.deepEqual(msgs.map((m) => m.sequenceNumber), [1], 'only the first message');
});

test('a malformed property bag disconnects; nothing is stored', async () => {
	const cert = await thumbprintDevice('hd-bag');
	for (const bag of ['a%zz=1', 'k=%', '%00=1', '=v', 'k=%ff%fe']) {
		const conn = await open('hd-bag', cert);
		try {
			await assertClosedFor(conn, 'hd-bag', publishPacket({ topic: eventsTopic('hd-bag', bag), payload: 'x', qos: 1, pid: 2 }));
		} catch (err) {
			err.message = `bag ${bag}: ${err.message}`;
			throw err;
		} finally {
			conn.close();
		}
	}
	assert.deepEqual(await hub.telemetry('hd-bag'), []);
});

test('a reported patch that is not a JSON object: res/400 with errorCode, nothing changes', async () => {
	const cert = await thumbprintDevice('hd-twin-bad');
	const conn = await open('hd-twin-bad', cert);
	try {
		await subscribe(conn, '$iothub/twin/res/#', 0);
		const ok = await twinRequest(conn, { method: 'PATCH', body: '{"fw":"1.0"}' });
		assert.equal(ok.status, 204, JSON.stringify(ok));
		assert.equal(ok.version, 2);
		assert.equal(ok.body, undefined, 'a 204 has no body');

		// Not an object, not JSON, or names the hub does not allow ('.', '$', space).
		for (const body of ['[1,2]', '5', '"text"', 'null', 'true', 'not json', '{"a":', '', '{"a.b":1}',
			'{"$x":1}', '{"a b":1}', '{"ok":{"in.ner":1}}']) {
			const res = await twinRequest(conn, { method: 'PATCH', body });
			assert.equal(res.status, 400, `${JSON.stringify(body)}: ${res.topic}`);
			assert.equal(res.version, undefined, 'no $version on an error');
			assert.equal(typeof res.body, 'object', `JSON error body for ${JSON.stringify(body)}: ${res.body}`);
			assert.ok(Number.isInteger(res.body.errorCode), `errorCode in ${JSON.stringify(res.body)}`);
			assert.equal(Math.floor(res.body.errorCode / 1000), 400);
			assert.equal(typeof res.body.message, 'string');
		}
		// Still connected, and the twin is as the good patch left it.
		const got = await twinRequest(conn);
		assert.equal(got.status, 200);
		assert.equal(got.body.reported.$version, 2);
		assert.equal(got.body.reported.fw, '1.0');
	} finally {
		conn.close();
	}
	const twin = await hub.getTwin('hd-twin-bad');
	assert.equal(twin.properties.reported.$version, 2);
	assert.equal(twin.properties.reported.fw, '1.0');
});

test('service routes without a valid token: 401 IotHubUnauthorizedAccess, nothing happens', async () => {
	const cert = await thumbprintDevice('hd-svc-auth');
	const conn = await open('hd-svc-auth', cert);
	try {
		await subscribe(conn, 'devices/hd-svc-auth/messages/devicebound/#', 1);
		await subscribe(conn, '$iothub/methods/POST/#', 0);
		await publishAcked(conn, eventsTopic('hd-svc-auth'), 'secret');
		const tokens = [
			['no Authorization header', null],
			['the wrong key', hubToken({ key: Buffer.alloc(32, 9).toString('base64') })],
			['an expired token', hubToken({ expiry: Math.floor(Date.now() / 1000) - 60 })],
			['the DPS key and name', hubToken({ key: DPS_KEY, keyName: DPS_KEY_NAME })],
			['a token for another host', hubToken({ host: 'otherhub.example' })],
		];
		for (const [what, auth] of tokens) {
			const calls = [
				['telemetry', hub.telemetryRaw('hd-svc-auth', { auth })],
				['C2D send', hub.sendC2dRaw('hd-svc-auth', { body: 'x' }, { auth })],
				['C2D list', hub.call('GET', '/_emulator/devices/hd-svc-auth/messages', { auth })],
				['method', hub.invokeMethod('hd-svc-auth', { methodName: 'm', payload: {}, responseTimeoutInSeconds: 5 }, { auth })],
				['device', hub.call('GET', devicePath('hd-svc-auth'), { auth })],
			];
			for (const [route, pending] of calls) {
				const res = await pending;
				assert.equal(res.status, 401, `${what}: ${route}: ${describe(res)}`);
				assertHubError(res, 401, 'IotHubUnauthorizedAccess');
				assert.doesNotMatch(res.text, /secret/, 'no telemetry leaks');
			}
		}
		await sleep(200);
		assert.deepEqual(conn.packets.filter((p) => p.type === TYPE.PUBLISH), [], 'no C2D and no method reached the device');
	} finally {
		conn.close();
	}
	assert.deepEqual(await hub.c2dQueue('hd-svc-auth'), []);
	assert.equal((await hub.telemetry('hd-svc-auth')).length, 1);
});

// ---- telemetry observation ----------------------------------------------------

test('telemetry wait: answers as soon as a message arrives, not for another device', async () => {
	const cert = await thumbprintDevice('hd-wait');
	await thumbprintDevice('hd-wait-other');
	const conn = await open('hd-wait', cert);
	try {
		const start = Date.now();
		const pending = hub.telemetryRaw('hd-wait', { wait: 20 });
		await sleep(300);
		// Traffic for another device does not answer the waiter, nor do other requests wait.
		assert.equal((await hub.getDevice('hd-wait-other')).deviceId, 'hd-wait-other');
		await publishAcked(conn, eventsTopic('hd-wait'), 'now');
		const res = await pending;
		const took = Date.now() - start;
		assert.equal(res.status, 200, describe(res));
		assert.deepEqual(res.json.messages.map((m) => m.body), ['now']);
		assert.ok(took < 5000, `answered ${took} ms after the request, not at the end of the wait`);

		// A message already there answers at once.
		const t1 = Date.now();
		const again = await hub.telemetry('hd-wait', { wait: 20 });
		assert.equal(again.length, 1);
		assert.ok(Date.now() - t1 < 2000, 'no wait when a message is there');
	} finally {
		conn.close();
	}
});

test('telemetry wait: times out with an empty list', async () => {
	await thumbprintDevice('hd-wait-empty');
	const other = await thumbprintDevice('hd-wait-empty-2');
	const conn = await open('hd-wait-empty-2', other);
	try {
		const start = Date.now();
		const pending = hub.telemetryRaw('hd-wait-empty', { wait: 2 });
		await sleep(200);
		await publishAcked(conn, eventsTopic('hd-wait-empty-2'), 'not for you');
		const res = await pending;
		const took = Date.now() - start;
		assert.equal(res.status, 200, describe(res));
		assert.deepEqual(res.json, { deviceId: 'hd-wait-empty', messages: [] });
		assert.ok(took >= 1900 && took < 6000, `waited ${took} ms for wait=2`);
	} finally {
		conn.close();
	}
	// Bad parameters: 400 in the hub's envelope.
	for (const q of ['since=abc', 'since=-1', 'wait=301', 'wait=x', 'max=-2']) {
		const res = await hub.call('GET', `/_emulator/telemetry?deviceId=hd-wait-empty&${q}`);
		assertHubError(res, 400, 'ArgumentInvalid');
	}
	assertHubError(await hub.call('GET', '/_emulator/telemetry'), 400, 'ArgumentInvalid');
});

test('telemetry since/max paging; QoS 0 and QoS 1 are both stored, in order', async () => {
	const cert = await thumbprintDevice('hd-page');
	const conn = await open('hd-page', cert);
	try {
		for (let i = 1; i <= 5; i++) {
			if (i % 2) await publishAcked(conn, eventsTopic('hd-page'), `m${i}`);
			else conn.send(publishPacket({ topic: eventsTopic('hd-page'), payload: `m${i}`, qos: 0 }));
		}
		await waitFor(async () => (await hub.telemetry('hd-page')).length === 5, { what: '5 messages' });
	} finally {
		conn.close();
	}
	const all = await hub.telemetry('hd-page');
	assert.deepEqual(all.map((m) => m.body), ['m1', 'm2', 'm3', 'm4', 'm5']);
	assert.deepEqual(all.map((m) => m.sequenceNumber), [1, 2, 3, 4, 5]);
	for (const m of all) {
		assert.match(m.enqueuedTimeUtc, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
		assert.equal(m.bodyEncoding, undefined);
		assert.deepEqual(m.properties, {});
	}
	const pages = [];
	let since = 0;
	for (let i = 0; i < 10; i++) {
		const page = await hub.telemetry('hd-page', { since, max: 2 });
		if (page.length === 0) break;
		assert.ok(page.length <= 2);
		pages.push(page.map((m) => m.sequenceNumber));
		since = page[page.length - 1].sequenceNumber;
	}
	assert.deepEqual(pages, [[1, 2], [3, 4], [5]]);
	assert.deepEqual(await hub.telemetry('hd-page', { since: 5 }), []);
	assert.deepEqual((await hub.telemetry('hd-page', { since: 3 })).map((m) => m.body), ['m4', 'm5']);
	// Another device's log is separate, and an id that is a prefix sees only its own.
	assert.deepEqual(await hub.telemetry('hd-pag'), []);
});

test('telemetry topic forms: with or without a trailing slash, a bag, a leading ?', async () => {
	const cert = await thumbprintDevice('hd-forms');
	const conn = await open('hd-forms', cert);
	try {
		for (const topic of ['devices/hd-forms/messages/events', 'devices/hd-forms/messages/events/',
			'devices/hd-forms/messages/events/k=1', 'devices/hd-forms/messages/events/k=2/',
			'devices/hd-forms/messages/events/?k=3']) {
			await publishAcked(conn, topic, topic);
		}
	} finally {
		conn.close();
	}
	const msgs = await hub.telemetry('hd-forms');
	assert.deepEqual(msgs.map((m) => m.properties), [{}, {}, { k: '1' }, { k: '2' }, { k: '3' }]);
});

test('telemetry log: the oldest messages beyond DPSEMU_TELEMETRY_KEEP are dropped', async () => {
	const cert = await thumbprintDevice('hd-keep');
	const conn = await open('hd-keep', cert);
	try {
		for (let i = 1; i <= TELEMETRY_KEEP + 5; i++) await publishAcked(conn, eventsTopic('hd-keep'), `k${i}`);
	} finally {
		conn.close();
	}
	const msgs = await hub.telemetry('hd-keep');
	assert.equal(msgs.length, TELEMETRY_KEEP);
	assert.equal(msgs[0].sequenceNumber, 6);
	assert.equal(msgs[msgs.length - 1].body, `k${TELEMETRY_KEEP + 5}`);
	assert.deepEqual((await hub.telemetry('hd-keep', { since: 0, max: 2 })).map((m) => m.sequenceNumber), [6, 7]);
});

test('telemetry bodies: UTF-8 as text, anything else as base64; property bags decoded', async () => {
	const cert = await thumbprintDevice('hd-body');
	const conn = await open('hd-body', cert);
	const binary = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
	try {
		await publishAcked(conn, eventsTopic('hd-body'), binary);
		await publishAcked(conn, eventsTopic('hd-body'), Buffer.from('grüße ✓', 'utf8'));
		await publishAcked(conn, eventsTopic('hd-body'), '');
		// Node's encoding (%24. for $.) and the raw form the docs show.
		await publishAcked(conn, eventsTopic('hd-body',
			'%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&temp=21.5&note=a%20b%26c%3Dd&flag&empty='),
		'{"t":1}');
		await publishAcked(conn, eventsTopic('hd-body', '$.ct=text%2Fplain&%C3%A9t%C3%A9=%E2%9C%93/'), 'raw form');
	} finally {
		conn.close();
	}
	const [bin, text, empty, props, raw] = await hub.telemetry('hd-body');
	assert.equal(bin.bodyEncoding, 'base64');
	assert.deepEqual(Buffer.from(bin.body, 'base64'), binary);
	assert.equal(text.body, 'grüße ✓');
	assert.equal(text.bodyEncoding, undefined);
	assert.equal(empty.body, '');
	assert.equal(props.body, '{"t":1}');
	assert.deepEqual(props.properties, { temp: '21.5', note: 'a b&c=d', flag: null, empty: '' });
	assert.equal(props.systemProperties.messageId, 'm-1');
	assert.equal(props.systemProperties.correlationId, 'c-1');
	assert.equal(props.systemProperties.contentType, 'application/json');
	assert.equal(props.systemProperties.contentEncoding, 'utf-8');
	assert.deepEqual(raw.properties, { 'été': '✓' });
	assert.equal(raw.systemProperties.contentType, 'text/plain');
});

// ---- cloud-to-device ------------------------------------------------------------

/** Waits for the next devicebound PUBLISH; returns it with its decoded properties. */
async function nextC2d(conn, deviceId, timeoutMs = 5000) {
	const p = await conn.next((x) => x.type === TYPE.PUBLISH && x.topic.startsWith(`devices/${deviceId}/messages/devicebound/`),
		timeoutMs, `a C2D message for ${deviceId}`);
	const bag = p.topic.slice(`devices/${deviceId}/messages/devicebound/`.length);
	const props = {};
	for (const pair of bag.split('&').filter(Boolean)) {
		const eq = pair.indexOf('=');
		const k = decodeURIComponent(eq < 0 ? pair : pair.slice(0, eq));
		props[k] = eq < 0 ? null : decodeURIComponent(pair.slice(eq + 1));
	}
	assert.doesNotMatch(bag, /\//, 'no raw / in the bag (Node splits the topic on /)');
	return { ...p, props, text: p.payload.toString('utf8') };
}

test('C2D: delivered at QoS 1 with its properties; not acknowledged -> redelivered after a reconnect; PUBACK completes', async () => {
	const cert = await thumbprintDevice('hd-c2d');
	// Queued while offline.
	const sent = await hub.sendC2d('hd-c2d', {
		body: 'hello',
		properties: { a: '1', 'b c': 'x/y&z' },
		messageId: 'c2d-1',
		correlationId: 'corr-1',
		contentType: 'text/plain',
	});
	assert.equal(sent.messageId, 'c2d-1');
	assert.equal(sent.deviceId, 'hd-c2d');
	assert.equal(typeof sent.sequenceNumber, 'number');
	const queue = await hub.c2dQueue('hd-c2d');
	assert.equal(queue.length, 1);
	assert.equal((await hub.getDevice('hd-c2d')).cloudToDeviceMessageCount, 1);

	let conn = await open('hd-c2d', cert);
	let first;
	try {
		assert.deepEqual(await subscribe(conn, 'devices/hd-c2d/messages/devicebound/#', 1), [1]);
		first = await nextC2d(conn, 'hd-c2d');
		assert.equal(first.qos, 1);
		assert.equal(first.text, 'hello');
		assert.equal(first.props.a, '1');
		assert.equal(first.props['b c'], 'x/y&z');
		assert.equal(first.props['$.mid'], 'c2d-1');
		assert.equal(first.props['$.cid'], 'corr-1');
		assert.equal(first.props['$.ct'], 'text/plain');
		assert.equal(first.props['$.to'], '/devices/hd-c2d/messages/devicebound');
		// No PUBACK: still queued.
	} finally {
		conn.close();
	}
	await waitConnectionState('hd-c2d', 'Disconnected');
	assert.equal((await hub.c2dQueue('hd-c2d')).length, 1, 'an unacknowledged message stays queued');

	conn = await open('hd-c2d', cert);
	try {
		await subscribe(conn, 'devices/hd-c2d/messages/devicebound/#', 1);
		const again = await nextC2d(conn, 'hd-c2d');
		assert.equal(again.text, 'hello');
		assert.equal(again.props['$.mid'], 'c2d-1');
		conn.send(pubackPacket(again.pid));
		await waitFor(async () => (await hub.c2dQueue('hd-c2d')).length === 0, { what: 'the queue to empty after PUBACK' });
		assert.equal((await hub.getDevice('hd-c2d')).cloudToDeviceMessageCount, 0);

		// While connected: delivered at once, in order.
		await hub.sendC2d('hd-c2d', { body: 'two' });
		await hub.sendC2d('hd-c2d', { body: 'three' });
		const two = await nextC2d(conn, 'hd-c2d');
		const three = await nextC2d(conn, 'hd-c2d');
		assert.deepEqual([two.text, three.text], ['two', 'three']);
		assert.match(two.props['$.mid'], /^[0-9a-f-]{36}$/, 'a generated messageId');
		conn.send(pubackPacket(two.pid));
		conn.send(pubackPacket(three.pid));
		await waitFor(async () => (await hub.c2dQueue('hd-c2d')).length === 0, { what: 'both completed' });
		// A PUBACK for an unknown packet id completes nothing and is harmless.
		await hub.sendC2d('hd-c2d', { body: 'four' });
		const four = await nextC2d(conn, 'hd-c2d');
		conn.send(pubackPacket((four.pid + 1000) % 65536 || 1));
		await sleep(200);
		assert.equal((await hub.c2dQueue('hd-c2d')).length, 1);
		conn.send(pubackPacket(four.pid));
		await waitFor(async () => (await hub.c2dQueue('hd-c2d')).length === 0, { what: 'four completed' });
	} finally {
		conn.close();
	}

	// Reconnected again: nothing left to deliver.
	conn = await open('hd-c2d', cert);
	try {
		await subscribe(conn, 'devices/hd-c2d/messages/devicebound/#', 1);
		await sleep(300);
		assert.deepEqual(conn.packets.filter((p) => p.type === TYPE.PUBLISH), []);
	} finally {
		conn.close();
	}
});

test('C2D: the queue holds 50 messages; the 51st gets 403 DeviceMaximumQueueDepthExceeded', async () => {
	await hub.createDevice('hd-c2d-full');
	for (let i = 0; i < C2D_QUEUE_MAX; i++) await hub.sendC2d('hd-c2d-full', { body: `m${i}` });
	const res = await hub.sendC2dRaw('hd-c2d-full', { body: 'one too many' });
	assertHubError(res, 403, 'DeviceMaximumQueueDepthExceeded');
	const queue = await hub.c2dQueue('hd-c2d-full');
	assert.equal(queue.length, C2D_QUEUE_MAX);
	assert.ok(!queue.some((m) => Buffer.from(m.body, 'base64').toString() === 'one too many'), 'the refused message is not queued');
	assert.equal((await hub.getDevice('hd-c2d-full')).cloudToDeviceMessageCount, C2D_QUEUE_MAX);
	// After a purge there is room again.
	const purge = await hub.call('DELETE', `${devicePath('hd-c2d-full')}/commands`);
	assert.equal(purge.status, 200, describe(purge));
	assert.equal(purge.json.totalMessagesPurged, C2D_QUEUE_MAX);
	await hub.sendC2d('hd-c2d-full', { body: 'fits' });
});

test('C2D: an expired message is not delivered; one that has not expired carries $.exp', async () => {
	const cert = await thumbprintDevice('hd-c2d-exp');
	const future = new Date(Date.now() + 3600 * 1000).toISOString();
	await hub.sendC2d('hd-c2d-exp', { body: 'stale', expiryTimeUtc: new Date(Date.now() - 60 * 1000).toISOString() });
	await hub.sendC2d('hd-c2d-exp', { body: 'fresh', expiryTimeUtc: future });
	const conn = await open('hd-c2d-exp', cert);
	try {
		await subscribe(conn, 'devices/hd-c2d-exp/messages/devicebound/#', 1);
		const m = await nextC2d(conn, 'hd-c2d-exp');
		assert.equal(m.text, 'fresh', 'the expired message is skipped');
		assert.equal(Date.parse(m.props['$.exp']), Date.parse(future));
		conn.send(pubackPacket(m.pid));
		await sleep(300);
		assert.deepEqual(conn.packets.filter((p) => p.type === TYPE.PUBLISH).map((p) => p.payload.toString()), []);
	} finally {
		conn.close();
	}
});

test('C2D: bad requests and unknown devices are refused; nothing is queued', async () => {
	await hub.createDevice('hd-c2d-bad');
	assertHubError(await hub.sendC2dRaw('hd-c2d-nobody', { body: 'x' }), 404, 'DeviceNotFound');
	assertHubError(await hub.sendC2dRaw('hd-c2d-bad', { body: 5 }), 400, 'ArgumentInvalid');
	assertHubError(await hub.sendC2dRaw('hd-c2d-bad', { body: 'x', properties: 'p' }), 400, 'ArgumentInvalid');
	assertHubError(await hub.sendC2dRaw('hd-c2d-bad', '[1]'), 400, 'ArgumentInvalid');
	assertHubError(await hub.sendC2dRaw('hd-c2d-bad', { body: 'a'.repeat(65537) }), 400, 'MessageTooLarge');
	assert.deepEqual(await hub.c2dQueue('hd-c2d-bad'), []);
	assert.deepEqual(await hub.c2dQueue('hd-c2d-nobody'), []);
});

test('C2D: at most 8 in flight; the rest goes out as the device acknowledges', async () => {
	const cert = await thumbprintDevice('hd-c2d-window');
	for (let i = 1; i <= 10; i++) await hub.sendC2d('hd-c2d-window', { body: `w${i}` });
	const conn = await open('hd-c2d-window', cert);
	try {
		// A QoS 2 subscription is granted QoS 1, and delivery is at QoS 1.
		assert.deepEqual(await subscribe(conn, 'devices/hd-c2d-window/messages/devicebound/#', 2), [1]);
		const got = [];
		for (let i = 0; i < 8; i++) got.push(await nextC2d(conn, 'hd-c2d-window'));
		assert.deepEqual(got.map((m) => m.qos), [1, 1, 1, 1, 1, 1, 1, 1]);
		assert.deepEqual(got.map((m) => m.text), ['w1', 'w2', 'w3', 'w4', 'w5', 'w6', 'w7', 'w8']);
		await sleep(300);
		assert.equal(conn.packets.filter((p) => p.type === TYPE.PUBLISH).length, 0, 'no ninth before an acknowledgement');
		// PUBACKs in order, as MQTT requires.
		conn.send(pubackPacket(got[0].pid));
		const ninth = await nextC2d(conn, 'hd-c2d-window');
		assert.equal(ninth.text, 'w9');
		for (const m of got.slice(1)) conn.send(pubackPacket(m.pid));
		const tenth = await nextC2d(conn, 'hd-c2d-window');
		assert.equal(tenth.text, 'w10');
		conn.send(pubackPacket(ninth.pid));
		conn.send(pubackPacket(tenth.pid));
		await waitFor(async () => (await hub.c2dQueue('hd-c2d-window')).length === 0, { what: 'all ten completed' });
		assert.deepEqual(conn.packets.filter((p) => p.type === TYPE.PUBLISH), [], 'nothing delivered twice');
	} finally {
		conn.close();
	}
});

test('C2D with a QoS 0 subscription: each message is delivered once per connection', async () => {
	// QoS 0 has no PUBACK: whatever the hub does with the queue, it must not send the
	// same message again on the same connection each time another one is queued.
	const cert = await thumbprintDevice('hd-c2d-qos0');
	const conn = await open('hd-c2d-qos0', cert);
	try {
		assert.deepEqual(await subscribe(conn, 'devices/hd-c2d-qos0/messages/devicebound/#', 0), [0]);
		for (const body of ['one', 'two', 'three']) {
			await hub.sendC2d('hd-c2d-qos0', { body });
			await nextC2d(conn, 'hd-c2d-qos0').then((m) => assert.equal(m.text, body, 'delivered in order, once'));
		}
		await sleep(300);
		const extra = conn.packets.filter((p) => p.type === TYPE.PUBLISH).map((p) => p.payload.toString());
		assert.deepEqual(extra, [], 'no message delivered twice on one connection');
	} finally {
		conn.close();
	}
});

// ---- connections ---------------------------------------------------------------

test('a second connection for the same device closes the first; the second works', async () => {
	const cert = await thumbprintDevice('hd-dup');
	const first = await open('hd-dup', cert);
	let second;
	try {
		const mark = fx.daemon.mark();
		second = await open('hd-dup', cert);
		await first.waitClosed(5000);
		await fx.daemon.waitForLog(/new connection for the same device replaced it/, { since: mark });
		await publishAcked(second, eventsTopic('hd-dup'), 'from the second');
		assert.equal((await hub.getDevice('hd-dup')).connectionState, 'Connected');
		assert.deepEqual((await hub.telemetry('hd-dup')).map((m) => m.body), ['from the second']);
	} finally {
		first.close();
		if (second) second.close();
	}
	await waitConnectionState('hd-dup', 'Disconnected');
});

test('the registry keeps a device\'s lastActivityTime after it disconnects', async () => {
	const cert = await thumbprintDevice('hd-activity');
	assert.equal((await hub.getDevice('hd-activity')).lastActivityTime, NEVER);
	const start = Date.now() - 1000;
	const conn = await open('hd-activity', cert);
	try {
		await publishAcked(conn, eventsTopic('hd-activity'), 'activity');
		const connected = await hub.getDevice('hd-activity');
		assert.equal(connected.connectionState, 'Connected');
		assert.ok(Date.parse(connected.lastActivityTime) >= start, connected.lastActivityTime);
	} finally {
		conn.close();
	}
	await waitConnectionState('hd-activity', 'Disconnected');
	const after = await hub.getDevice('hd-activity');
	assert.notEqual(after.lastActivityTime, NEVER, 'a device that was active keeps its lastActivityTime');
	assert.ok(Date.parse(after.lastActivityTime) >= start, after.lastActivityTime);
	assert.equal((await hub.getTwin('hd-activity')).lastActivityTime, after.lastActivityTime, 'the twin says the same');
});

test('connectionStateUpdatedTime changes when the device connects and disconnects', async () => {
	const cert = await thumbprintDevice('hd-state-time');
	assert.equal((await hub.getDevice('hd-state-time')).connectionStateUpdatedTime, NEVER);
	const start = Date.now() - 1000;
	const conn = await open('hd-state-time', cert);
	let connected;
	try {
		connected = await hub.getDevice('hd-state-time');
		assert.equal(connected.connectionState, 'Connected');
		assert.notEqual(connected.connectionStateUpdatedTime, NEVER, 'connecting updates connectionStateUpdatedTime');
		assert.ok(Date.parse(connected.connectionStateUpdatedTime) >= start, connected.connectionStateUpdatedTime);
	} finally {
		conn.close();
	}
	await waitConnectionState('hd-state-time', 'Disconnected');
	const after = await hub.getDevice('hd-state-time');
	assert.ok(Date.parse(after.connectionStateUpdatedTime) >= Date.parse(connected.connectionStateUpdatedTime),
		`${after.connectionStateUpdatedTime} after ${connected.connectionStateUpdatedTime}`);
	assert.equal((await hub.getTwin('hd-state-time')).connectionState, 'Disconnected');
});

// ---- direct methods ----------------------------------------------------------------

/** Connects and subscribes to methods; returns the connection. */
async function methodDevice(deviceId, cert) {
	const conn = await open(deviceId, cert);
	await subscribe(conn, '$iothub/methods/POST/#', 0);
	return conn;
}

function nextMethod(conn, timeoutMs = 5000) {
	return conn.next((p) => p.type === TYPE.PUBLISH && p.topic.startsWith('$iothub/methods/POST/'), timeoutMs, 'a method request');
}

test('methods: the device answers; status and payload come back', async () => {
	const cert = await thumbprintDevice('hd-m-ok');
	const conn = await methodDevice('hd-m-ok', cert);
	try {
		const pending = hub.invokeMethod('hd-m-ok', { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 10 });
		const req = await nextMethod(conn);
		const { path, query } = splitTopic(req.topic);
		assert.equal(path, '$iothub/methods/POST/reboot');
		assert.ok(query.$rid, `a $rid in ${req.topic}`);
		assert.equal(req.qos, 0, 'method requests travel at QoS 0');
		assert.deepEqual(JSON.parse(req.payload.toString()), { delay: 1 });
		conn.send(publishPacket({ topic: `$iothub/methods/res/201/?$rid=${query.$rid}`, payload: '{"ok":true}', qos: 0 }));
		const res = await pending;
		assert.equal(res.status, 200, describe(res));
		assert.deepEqual(res.json, { status: 201, payload: { ok: true } });
	} finally {
		conn.close();
	}
});

test('methods: offline -> 404103 at once; connected without a methods subscription -> 404103', async () => {
	const cert = await thumbprintDevice('hd-m-off');
	let start = Date.now();
	let res = await hub.invokeMethod('hd-m-off',
		{ methodName: 'm', payload: null, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 0 });
	assertMethodError(res, 404, 404103, 'DeviceNotOnline');
	assert.ok(Date.now() - start < 2000, 'at once');

	const conn = await open('hd-m-off', cert);
	try {
		start = Date.now();
		res = await hub.invokeMethod('hd-m-off', { methodName: 'm', payload: null, responseTimeoutInSeconds: 5 });
		assertMethodError(res, 404, 404103, 'DeviceNotOnline');
		assert.ok(Date.now() - start < 2000, 'at once');
		await sleep(200);
		assert.deepEqual(conn.packets.filter((p) => p.type === TYPE.PUBLISH), [], 'no request reached the device');
	} finally {
		conn.close();
	}

	assertHubError(await hub.invokeMethod('hd-m-nobody', { methodName: 'm', responseTimeoutInSeconds: 5 }), 404, 'DeviceNotFound');
	for (const body of [
		{ payload: {} },
		{ methodName: '', responseTimeoutInSeconds: 5 },
		{ methodName: 'a/b', responseTimeoutInSeconds: 5 },
		{ methodName: 'm', responseTimeoutInSeconds: 1 },
		{ methodName: 'm', responseTimeoutInSeconds: 301 },
		{ methodName: 'm', responseTimeoutInSeconds: 5, connectTimeoutInSeconds: -1 },
		{ methodName: 'm', responseTimeoutInSeconds: '5' },
	]) {
		assertHubError(await hub.invokeMethod('hd-m-off', body), 400, 'ArgumentInvalid');
	}
});

test('methods: no answer -> 504101 after responseTimeoutInSeconds, without blocking other traffic', async () => {
	const cert = await thumbprintDevice('hd-m-slow');
	const conn = await methodDevice('hd-m-slow', cert);
	try {
		const start = Date.now();
		const pending = hub.invokeMethod('hd-m-slow', { methodName: 'slow', payload: 'x', responseTimeoutInSeconds: 5 });
		const req = await nextMethod(conn);
		assert.equal(JSON.parse(req.payload.toString()), 'x');
		// The hub answers other requests and other devices while the invocation waits.
		const t0 = Date.now();
		assert.equal((await hub.getDevice('hd-m-slow')).connectionState, 'Connected');
		await publishAcked(conn, eventsTopic('hd-m-slow'), 'still talking');
		assert.ok(Date.now() - t0 < 2000, 'other traffic was answered while the method waits');

		const res = await pending;
		const took = Date.now() - start;
		assertMethodError(res, 504, 504101, 'GatewayTimeout');
		assert.ok(took >= 4500 && took < 9000, `504 after ${took} ms for a 5 s timeout`);

		// A late answer is ignored and the device stays connected.
		const { query } = splitTopic(req.topic);
		conn.send(publishPacket({ topic: `$iothub/methods/res/200/?$rid=${query.$rid}`, payload: '{}', qos: 0 }));
		await publishAcked(conn, eventsTopic('hd-m-slow'), 'after');
	} finally {
		conn.close();
	}
});

test('methods: connectTimeoutInSeconds waits for the device to connect and subscribe', async () => {
	const cert = await thumbprintDevice('hd-m-late');
	const start = Date.now();
	const pending = hub.invokeMethod('hd-m-late',
		{ methodName: 'hello', payload: { n: 1 }, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 10 });
	await sleep(500);
	const conn = await methodDevice('hd-m-late', cert);
	try {
		const req = await nextMethod(conn);
		assert.equal(splitTopic(req.topic).path, '$iothub/methods/POST/hello');
		conn.send(publishPacket({ topic: `$iothub/methods/res/200/?$rid=${splitTopic(req.topic).query.$rid}`, payload: '"hi"', qos: 0 }));
		const res = await pending;
		assert.equal(res.status, 200, describe(res));
		assert.deepEqual(res.json, { status: 200, payload: 'hi' });
		assert.ok(Date.now() - start < 5000);
	} finally {
		conn.close();
	}

	// Nobody comes: 404103 once the connect timeout passes.
	await waitConnectionState('hd-m-late', 'Disconnected');
	const t1 = Date.now();
	const res = await hub.invokeMethod('hd-m-late', { methodName: 'hello', responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 1 });
	assertMethodError(res, 404, 404103, 'DeviceNotOnline');
	const took = Date.now() - t1;
	assert.ok(took >= 900 && took < 5000, `404103 after ${took} ms for a 1 s connect timeout`);
});

// ---- persistence (last: it restarts the daemon) ---------------------------------

test('devices, twins, telemetry and queued C2D survive a restart', async () => {
	const cert = await thumbprintDevice('hd-persist');
	await hub.patchTwin('hd-persist', { tags: { keep: 'yes' }, properties: { desired: { mode: 'eco' } } });
	let conn = await open('hd-persist', cert);
	try {
		await subscribe(conn, '$iothub/twin/res/#', 0);
		const r = await twinRequest(conn, { method: 'PATCH', body: '{"battery":88}' });
		assert.equal(r.status, 204);
		await publishAcked(conn, eventsTopic('hd-persist', 'k=v'), 'before 1');
		await publishAcked(conn, eventsTopic('hd-persist'), Buffer.from([0xc3, 0x28]));
	} finally {
		conn.close();
	}
	await waitConnectionState('hd-persist', 'Disconnected');
	await hub.sendC2d('hd-persist', { body: 'waiting', properties: { p: 'q' }, messageId: 'persist-1' });
	const device = await hub.getDevice('hd-persist');
	const twin = await hub.getTwin('hd-persist');
	const telemetry = await hub.telemetry('hd-persist');
	const queue = await hub.c2dQueue('hd-persist');

	const oldPort = fx.daemon.mqttPort;
	await fx.daemon.restart();
	assert.notEqual(fx.daemon.mqttPort, oldPort, 'the harness moved to new ports');

	assert.deepEqual(await hub.getDevice('hd-persist'), device);
	assert.deepEqual(await hub.getTwin('hd-persist'), twin);
	assert.deepEqual(await hub.telemetry('hd-persist'), telemetry);
	assert.deepEqual(await hub.c2dQueue('hd-persist'), queue);
	assert.equal(twin.properties.reported.battery, 88);
	assert.equal(twin.properties.desired.mode, 'eco');

	conn = await open('hd-persist', cert);
	try {
		await subscribe(conn, 'devices/hd-persist/messages/devicebound/#', 1);
		const msg = await nextC2d(conn, 'hd-persist');
		assert.equal(msg.text, 'waiting');
		assert.equal(msg.props['$.mid'], 'persist-1');
		assert.equal(msg.props.p, 'q');
		conn.send(pubackPacket(msg.pid));
		await waitFor(async () => (await hub.c2dQueue('hd-persist')).length === 0, { what: 'completed after the restart' });
		await publishAcked(conn, eventsTopic('hd-persist'), 'after');
	} finally {
		conn.close();
	}
	const after = await hub.telemetry('hd-persist');
	assert.deepEqual(after.map((m) => m.sequenceNumber), [1, 2, 3], 'sequence numbers go on');
});
