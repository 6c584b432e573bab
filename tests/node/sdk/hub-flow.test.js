'use strict';
// The whole device journey with only the official Azure IoT SDKs, configured as the
// README says (port in the device HostName, the trust root in one setOptions call, a
// port-rewriting agent for the service REST clients):
//   azure-iot-provisioning-service  group enrollment with an initialTwin
//   azure-iot-provisioning-device   X.509 registration over MQTT -> assignedHub
//   azure-iot-device (MQTT)         telemetry, twin, desired updates, methods, C2D
//   azure-iothub                    Registry (devices, twins) and Client.invokeDeviceMethod
// plus a device created directly in the hub by thumbprint, a refused certificate and
// the registry's CRUD.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { Message } = require('azure-iot-device');
const { useDaemon } = require('../lib/fixture');
const { provisioningServiceClient, sdkRegister } = require('../lib/sdk');
const { x509Group } = require('../lib/service');
const { HOSTNAME } = require('../lib/env');
const { waitFor, withTimeout } = require('../lib/wait');
const {
	HubService,
	NEVER,
	SDK_CALL_TIMEOUT_MS,
	hubRegistry,
	hubServiceClient,
	deviceClient,
	sdkCall,
	invokeWhenSubscribed,
} = require('../lib/hub');

const INITIAL_TWIN = {
	tags: { site: 'lab-1', line: { id: 7 } },
	properties: { desired: { fw: '1.0.0', telemetryInterval: 30, thresholds: { temp: 40 } } },
};

let root;
let hub; // raw access to the emulator routes (telemetry, C2D)
const opened = []; // device clients to close after each test

const fx = useDaemon({
	async setup() {
		hub = new HubService(fx.daemon);
		root = await fx.certs.root('flow-root');
		const dps = provisioningServiceClient(fx.daemon);
		const r = await dps.createOrUpdateEnrollmentGroup(x509Group('flow-grp', root.pem, { initialTwin: INITIAL_TWIN }));
		assert.deepEqual(r.responseBody.initialTwin.tags, INITIAL_TWIN.tags);
	},
});

/** A device Client for deviceId with cert/key (PEM), opened; closed after the test. */
async function openDevice(deviceId, cert, key) {
	const client = await deviceClient(fx.daemon, { deviceId, cert, key });
	opened.push(client);
	await withTimeout(client.open(), SDK_CALL_TIMEOUT_MS, `open ${deviceId}`);
	return client;
}

async function closeAll() {
	while (opened.length) {
		const c = opened.pop();
		await withTimeout(c.close(), SDK_CALL_TIMEOUT_MS, 'device client close').catch(() => {});
	}
}

/** Waits until the emulator has `count` telemetry messages of deviceId; returns them. */
async function telemetryOf(deviceId, count) {
	let msgs = [];
	await waitFor(async () => {
		msgs = await hub.telemetry(deviceId, { wait: 2 });
		return msgs.length >= count;
	}, { timeoutMs: 10000, what: `${count} telemetry message(s) of ${deviceId}` });
	return msgs;
}

test('DPS group enrollment -> registration -> hub: telemetry, twin, desired updates, methods', async (t) => {
	t.after(closeAll);
	const id = 'flow-dev-1';
	const cert = await fx.certs.device(id, { ca: root });

	// 1. Provisioning over MQTT with X509Security.
	const state = await sdkRegister(fx.daemon, { transport: 'mqtt', registrationId: id, cert: cert.pem, key: cert.key });
	assert.equal(state.status, 'assigned');
	assert.equal(state.assignedHub, HOSTNAME);
	assert.equal(state.deviceId, id);

	// DPS put the device in the hub by the leaf's thumbprint, with the initial twin.
	const registry = hubRegistry(fx.daemon);
	const dev = (await registry.get(id)).responseBody;
	assert.equal(dev.authentication.type, 'selfSigned');
	assert.equal(dev.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), cert.sha256);
	assert.equal(dev.connectionState, 'Disconnected');

	// 2. The device client connects to assignedHub (the test's MQTT port).
	const client = await deviceClient(fx.daemon,
		{ deviceId: state.deviceId, cert: cert.pem, key: cert.key, host: state.assignedHub });
	opened.push(client);
	await withTimeout(client.open(), SDK_CALL_TIMEOUT_MS, 'open');
	assert.equal((await registry.get(id)).responseBody.connectionState, 'Connected');

	// 3. Telemetry with application properties and system properties.
	const msg = new Message(JSON.stringify({ temp: 21.5 }));
	msg.messageId = 'flow-msg-1';
	msg.correlationId = 'flow-corr-1';
	msg.contentType = 'application/json';
	msg.contentEncoding = 'utf-8';
	msg.properties.add('alert', 'false');
	msg.properties.add('unit name', 'celsius/°C');
	await withTimeout(client.sendEvent(msg), SDK_CALL_TIMEOUT_MS, 'sendEvent');
	const [stored] = await telemetryOf(id, 1);
	assert.deepEqual(JSON.parse(stored.body), { temp: 21.5 });
	assert.deepEqual(stored.properties, { alert: 'false', 'unit name': 'celsius/°C' });
	assert.equal(stored.systemProperties.messageId, 'flow-msg-1');
	assert.equal(stored.systemProperties.correlationId, 'flow-corr-1');
	assert.equal(stored.systemProperties.contentType, 'application/json');
	assert.equal(stored.systemProperties.contentEncoding, 'utf-8');

	// 4. The device's twin starts with the enrollment's desired properties.
	const twin = await withTimeout(client.getTwin(), SDK_CALL_TIMEOUT_MS, 'getTwin');
	assert.equal(twin.properties.desired.fw, '1.0.0');
	assert.equal(twin.properties.desired.telemetryInterval, 30);
	assert.deepEqual(twin.properties.desired.thresholds, { temp: 40 });
	const desiredVersion = twin.properties.desired.$version;
	assert.equal(typeof desiredVersion, 'number');

	// 5. Reported properties from the device, seen by Registry.getTwin.
	await sdkCall('reported update', (cb) => twin.properties.reported.update({ fw: '1.0.0', battery: { level: 88 } }, cb));
	let svcTwin = (await registry.getTwin(id)).responseBody;
	assert.equal(svcTwin.properties.reported.fw, '1.0.0');
	assert.deepEqual(svcTwin.properties.reported.battery, { level: 88 });
	assert.deepEqual(svcTwin.tags, INITIAL_TWIN.tags);
	assert.equal(svcTwin.properties.desired.fw, '1.0.0');
	// A null removes a reported property.
	await sdkCall('reported delete', (cb) => twin.properties.reported.update({ battery: null }, cb));
	svcTwin = (await registry.getTwin(id)).responseBody;
	assert.equal(svcTwin.properties.reported.battery, undefined);
	assert.equal(svcTwin.properties.reported.fw, '1.0.0');

	// 6. Registry.updateTwin changes desired: the device's twin gets the patch.
	const patches = [];
	twin.on('properties.desired', (p) => patches.push(JSON.parse(JSON.stringify(p))));
	const desiredPatch = { properties: { desired: { fw: '2.0.0', thresholds: { temp: 45 } } } };
	const updated = (await registry.updateTwin(id, desiredPatch, svcTwin.etag)).responseBody;
	assert.equal(updated.properties.desired.fw, '2.0.0');
	assert.equal(updated.properties.desired.$version, desiredVersion + 1);
	await waitFor(() => patches.some((p) => p.fw === '2.0.0'), { timeoutMs: 10000, what: 'the desired patch on the device' });
	const pushed = patches.find((p) => p.fw === '2.0.0');
	assert.equal(pushed.$version, desiredVersion + 1);
	assert.deepEqual(pushed.thresholds, { temp: 45 });
	assert.equal(twin.properties.desired.fw, '2.0.0', 'the SDK merged the patch');
	assert.equal(twin.properties.desired.telemetryInterval, 30, 'untouched properties stay');

	// 7. A direct method through azure-iothub, answered by onDeviceMethod.
	const calls = [];
	client.onDeviceMethod('setInterval', (req, res) => {
		calls.push(req.payload);
		res.send(200, { applied: req.payload.seconds }, () => {});
	});
	const svc = hubServiceClient(fx.daemon);
	const result = await invokeWhenSubscribed(svc, id,
		{ methodName: 'setInterval', payload: { seconds: 5 }, responseTimeoutInSeconds: 10 });
	assert.deepEqual(result, { status: 200, payload: { applied: 5 } });
	assert.deepEqual(calls, [{ seconds: 5 }]);

	// An unknown method: the SDK leaves it unanswered, so the call times out with 504.
	await assert.rejects(svc.invokeDeviceMethod(id, { methodName: 'nobodyHome', payload: null, responseTimeoutInSeconds: 5 }), (err) => {
		assert.equal(err.name, 'GatewayTimeoutError', `${err.name}: ${err.message}`);
		assert.match(String(err.responseBody), /504101/);
		return true;
	});

	await withTimeout(client.close(), SDK_CALL_TIMEOUT_MS, 'close');
	await waitFor(async () => (await registry.get(id)).responseBody.connectionState === 'Disconnected', {
		what: 'Disconnected after close',
	});
	// Offline: 404103 at once.
	await assert.rejects(svc.invokeDeviceMethod(id, { methodName: 'setInterval', payload: {}, responseTimeoutInSeconds: 5 }), (err) => {
		assert.equal(err.response && err.response.statusCode, 404, `${err.name}: ${err.message}`);
		assert.match(String(err.responseBody), /404103/);
		return true;
	});
});

test('a selfSigned device created with Registry.create connects by thumbprint and sends', async (t) => {
	t.after(closeAll);
	const id = 'flow-thumb-1';
	const cert = await fx.certs.device(id, { selfSigned: true });
	const registry = hubRegistry(fx.daemon);
	const auth = { x509Thumbprint: { primaryThumbprint: cert.sha256 } };
	const created = (await registry.create({ deviceId: id, authentication: auth })).responseBody;
	assert.equal(created.authentication.type, 'selfSigned');

	const client = await openDevice(id, cert.pem, cert.key);
	const msg = new Message(Buffer.from([0x00, 0x01, 0xfe, 0xff]));
	msg.properties.add('kind', 'binary');
	await withTimeout(client.sendEvent(msg), SDK_CALL_TIMEOUT_MS, 'sendEvent');
	const [stored] = await telemetryOf(id, 1);
	assert.equal(stored.bodyEncoding, 'base64');
	assert.deepEqual(Buffer.from(stored.body, 'base64'), Buffer.from([0x00, 0x01, 0xfe, 0xff]));
	assert.deepEqual(stored.properties, { kind: 'binary' });

	// The twin of a device created in the hub starts empty.
	const twin = await withTimeout(client.getTwin(), SDK_CALL_TIMEOUT_MS, 'getTwin');
	assert.equal(twin.properties.desired.$version, 1);
	assert.equal(twin.properties.desired.fw, undefined);
});

test('a certificate whose CN is not the device id: open() fails with an authorization error, not a timeout', async (t) => {
	t.after(closeAll);
	const id = 'flow-liar';
	const cert = await fx.certs.device('flow-liar-cert', { selfSigned: true, cn: 'flow-someone-else' });
	const registry = hubRegistry(fx.daemon);
	await registry.create({ deviceId: id, authentication: { x509Thumbprint: { primaryThumbprint: cert.sha256 } } });

	const client = await deviceClient(fx.daemon, { deviceId: id, cert: cert.pem, key: cert.key });
	opened.push(client);
	const start = Date.now();
	await assert.rejects(withTimeout(client.open(), SDK_CALL_TIMEOUT_MS, 'open'), (err) => {
		assert.doesNotMatch(err.message, /^timed out/, 'an answer, not a timeout');
		assert.match(`${err.name}: ${err.message}`, /Unauthorized|Not authorized/i, `${err.name}: ${err.message}`);
		return true;
	});
	assert.ok(Date.now() - start < SDK_CALL_TIMEOUT_MS / 2, 'refused promptly');
	await fx.daemon.waitForLog(/device 'flow-liar' from \S+ refused: leaf certificate CN 'flow-someone-else'/, { since: fx.mark });
	const dev = (await registry.get(id)).responseBody;
	assert.equal(dev.connectionState, 'Disconnected');
	assert.equal(dev.lastActivityTime, NEVER);
});

test('C2D sent through the emulator reaches the device\'s message event; complete() works', async (t) => {
	t.after(closeAll);
	const id = 'flow-c2d-1';
	const cert = await fx.certs.device(id, { ca: root });
	const state = await sdkRegister(fx.daemon, { transport: 'mqtt', registrationId: id, cert: cert.pem, key: cert.key });
	assert.equal(state.deviceId, id);

	// One queued before the device listens, one after.
	await hub.sendC2d(id, {
		body: 'first',
		properties: { cmd: 'blink', 'with space': 'a/b&c=d' },
		messageId: 'c2d-flow-1',
		correlationId: 'c2d-corr-1',
		contentType: 'text/plain',
		contentEncoding: 'utf-8',
	});
	const client = await openDevice(id, cert.pem, cert.key);
	const received = [];
	const completions = [];
	client.on('message', (m) => {
		received.push(m);
		completions.push(client.complete(m));
	});
	await waitFor(() => received.length >= 1, { timeoutMs: 10000, what: 'the queued C2D message' });
	await hub.sendC2d(id, { body: 'second', properties: { n: '2' } });
	await waitFor(() => received.length >= 2, { timeoutMs: 10000, what: 'the second C2D message' });

	const [first, second] = received;
	assert.equal(first.data.toString(), 'first');
	assert.equal(first.messageId, 'c2d-flow-1');
	assert.equal(first.correlationId, 'c2d-corr-1');
	assert.equal(first.contentType, 'text/plain');
	assert.equal(first.contentEncoding, 'utf-8');
	assert.equal(first.to, `/devices/${id}/messages/devicebound`);
	assert.equal(first.properties.getValue('cmd'), 'blink');
	assert.equal(first.properties.getValue('with space'), 'a/b&c=d');
	assert.equal(second.data.toString(), 'second');
	assert.equal(second.properties.getValue('n'), '2');
	assert.match(second.messageId, /^[0-9a-f-]{36}$/, 'the hub gave it a messageId');

	const results = await withTimeout(Promise.all(completions), SDK_CALL_TIMEOUT_MS, 'complete()');
	assert.equal(results.length, 2);
	await waitFor(async () => (await hub.c2dQueue(id)).length === 0, { what: 'the queue to empty after completion' });
	const registry = hubRegistry(fx.daemon);
	assert.equal((await registry.get(id)).responseBody.cloudToDeviceMessageCount, 0);
	assert.equal(received.length, 2, 'each message delivered once');
});

test('Registry: create, get, update, list, query, statistics, delete', async () => {
	const registry = hubRegistry(fx.daemon);
	const created = (await registry.create({ deviceId: 'flow-crud-1', status: 'enabled' })).responseBody;
	assert.equal(created.deviceId, 'flow-crud-1');
	assert.equal(created.authentication.type, 'sas');
	assert.equal(Buffer.from(created.authentication.symmetricKey.primaryKey, 'base64').length, 32);
	await assert.rejects(registry.create({ deviceId: 'flow-crud-1' }), (err) => {
		assert.equal(err.name, 'DeviceAlreadyExistsError', `${err.name}: ${err.message}`);
		return true;
	});

	let got = (await registry.get('flow-crud-1')).responseBody;
	assert.equal(got.etag, created.etag);
	assert.deepEqual(got.authentication, created.authentication);

	const updated = (await registry.update({ deviceId: 'flow-crud-1', status: 'disabled', statusReason: 'maintenance' })).responseBody;
	assert.equal(updated.status, 'disabled');
	assert.equal(updated.statusReason, 'maintenance');
	assert.notEqual(updated.etag, created.etag);
	assert.deepEqual(updated.authentication, created.authentication, 'keys survive an update without them');
	got = (await registry.get('flow-crud-1')).responseBody;
	assert.equal(got.status, 'disabled');

	await registry.create({ deviceId: 'flow-crud-2' });
	const list = (await registry.list()).responseBody;
	const ids = list.map((d) => d.deviceId);
	assert.ok(ids.includes('flow-crud-1') && ids.includes('flow-crud-2'), `list: ${ids}`);
	assert.equal(list.find((d) => d.deviceId === 'flow-crud-1').status, 'disabled');

	const query = registry.createQuery("SELECT * FROM devices WHERE status = 'disabled'", 100);
	const page = await query.nextAsTwin();
	assert.ok(page.result.some((tw) => tw.deviceId === 'flow-crud-1'), 'the disabled device is found');
	assert.ok(!page.result.some((tw) => tw.deviceId === 'flow-crud-2'), 'the enabled one is not');
	assert.equal(query.hasMoreResults, false);

	const stats = (await registry.getRegistryStatistics()).responseBody;
	assert.equal(stats.totalDeviceCount, list.length);
	assert.ok(stats.disabledDeviceCount >= 1);

	await registry.delete('flow-crud-1');
	await assert.rejects(registry.get('flow-crud-1'), (err) => {
		assert.equal(err.name, 'DeviceNotFoundError', `${err.name}: ${err.message}`);
		return true;
	});
	await assert.rejects(registry.getTwin('flow-crud-1'), (err) => {
		assert.equal(err.name, 'DeviceNotFoundError', `${err.name}: ${err.message}`);
		return true;
	});
	assert.ok(!(await registry.list()).responseBody.some((d) => d.deviceId === 'flow-crud-1'));
	await registry.delete('flow-crud-2');
});

test('service clients with a wrong key are refused with UnauthorizedError', async () => {
	const bad = `HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=${Buffer.alloc(32, 3).toString('base64')}`;
	await assert.rejects(hubRegistry(fx.daemon, bad).list(), (err) => {
		assert.equal(err.name, 'UnauthorizedError', `${err.name}: ${err.message}`);
		return true;
	});
	const params = { methodName: 'm', payload: null, responseTimeoutInSeconds: 5 };
	await assert.rejects(hubServiceClient(fx.daemon, bad).invokeDeviceMethod('flow-dev-1', params), (err) => {
		assert.equal(err.name, 'UnauthorizedError', `${err.name}: ${err.message}`);
		return true;
	});
});
