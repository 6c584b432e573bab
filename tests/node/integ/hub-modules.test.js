'use strict';
// Module identities in the hub: the registry (PUT/GET/DELETE /devices/{id}/modules/{mid},
// GET /devices/{id}/modules) with its etag rules and 404s, module twins over REST and
// MQTT, module connections (telemetry with moduleId, desired pushes, module methods,
// one connection per module beside the device's own), refusals, and a device's
// deletion taking its modules with it.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { sasToken } = require('../lib/sas');
const { HOSTNAME } = require('../lib/env');
const { publishPacket, subscribePacket, TYPE } = require('../lib/mqtt-raw');
const {
	HubService,
	NEVER,
	assertHubError,
	assertMethodError,
	devicePath,
	modulePath,
	moduleTwinPath,
	connectHubModule,
	openHubModule,
	openHubDevice,
	subscribe,
	publishAcked,
	splitTopic,
	twinRequest,
} = require('../lib/hub');

let hub;

const fx = useDaemon({
	async setup() {
		hub = new HubService(fx.daemon);
	},
});

/** A device (sas) with a selfSigned module whose certificate has CN "dev/mod". */
async function thumbprintModule(deviceId, moduleId) {
	await hub.createDevice(deviceId);
	const cert = await fx.certs.device(`${deviceId}-${moduleId}`, { selfSigned: true, cn: `${deviceId}/${moduleId}` });
	await hub.createThumbprintModule(deviceId, moduleId, cert);
	return cert;
}

function nextPublish(conn, prefix, timeoutMs = 5000) {
	return conn.next((p) => p.type === TYPE.PUBLISH && p.topic.startsWith(prefix), timeoutMs, `a PUBLISH on ${prefix}`);
}

test('module CRUD: create, conflicts, etags, list, 404s, delete', async () => {
	await hub.createDevice('hm-crud');
	const created = await hub.createModule('hm-crud', 'm1', { managedBy: 'edge' });
	assert.deepEqual(Object.keys(created), ['moduleId', 'managedBy', 'deviceId', 'generationId', 'etag',
		'connectionState', 'connectionStateUpdatedTime', 'lastActivityTime', 'cloudToDeviceMessageCount', 'authentication']);
	assert.equal(created.moduleId, 'm1');
	assert.equal(created.deviceId, 'hm-crud');
	assert.equal(created.managedBy, 'edge');
	assert.match(created.generationId, /^\d{18}$/);
	assert.equal(created.connectionState, 'Disconnected');
	assert.equal(created.lastActivityTime, NEVER);
	assert.equal(created.cloudToDeviceMessageCount, 0);
	assert.equal(created.authentication.type, 'sas');
	assert.ok(Buffer.from(created.authentication.symmetricKey.primaryKey, 'base64').length >= 16);

	// Create without If-Match again: 409 with the module's code.
	let res = await hub.call('PUT', modulePath('hm-crud', 'm1'), { body: { moduleId: 'm1', deviceId: 'hm-crud' } });
	assert.match(assertHubError(res, 409, 'ModuleAlreadyExistsOnDevice'), /'m1' is already registered on device 'hm-crud'/);
	res = await hub.call('PUT', modulePath('hm-crud', 'm1'), { body: {}, headers: { 'If-Match': '"bm9wZQ=="' } });
	assertHubError(res, 412, 'PreconditionFailed');
	res = await hub.call('PUT', modulePath('hm-crud', 'm1'), { body: { moduleId: 'other' }, headers: { 'If-Match': '"*"' } });
	assert.match(assertHubError(res, 400, 'ArgumentInvalid'), /moduleId 'other' in the body does not match 'm1'/);
	res = await hub.call('PUT', modulePath('hm-crud', 'bad id'), { body: {} });
	assert.match(assertHubError(res, 400, 'ArgumentInvalid'), /module id contains ' '/);

	// Update with the etag: a new etag, the same generation and keys.
	res = await hub.call('PUT', modulePath('hm-crud', 'm1'), {
		body: { moduleId: 'm1', managedBy: null },
		headers: { 'If-Match': `"${created.etag}"` },
	});
	assert.equal(res.status, 200, describe(res));
	assert.notEqual(res.json.etag, created.etag);
	assert.equal(res.headers.etag, `"${res.json.etag}"`);
	assert.equal(res.json.generationId, created.generationId);
	assert.equal(res.json.managedBy, null);
	assert.equal(res.json.authentication.symmetricKey.primaryKey, created.authentication.symmetricKey.primaryKey);
	const updated = res.json;
	assert.deepEqual(await hub.getModule('hm-crud', 'm1'), updated);

	await hub.createModule('hm-crud', 'a0');
	res = await hub.call('GET', `${devicePath('hm-crud')}/modules`);
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json.map((m) => m.moduleId), ['a0', 'm1']);
	// Modules are not devices.
	res = await hub.call('GET', '/devices');
	assert.ok(!res.json.some((d) => d.deviceId.includes('/')), res.text);
	assert.equal(res.json.filter((d) => d.deviceId === 'hm-crud').length, 1);

	// 404s: an unknown module, a module of an unknown device.
	assertHubError(await hub.call('GET', modulePath('hm-crud', 'nope')), 404, 'ModuleNotFound');
	assertHubError(await hub.call('GET', modulePath('hm-nodev', 'm1')), 404, 'DeviceNotFound');
	assertHubError(await hub.call('PUT', modulePath('hm-nodev', 'm1'), { body: {} }), 404, 'DeviceNotFound');
	assertHubError(await hub.call('GET', `${devicePath('hm-nodev')}/modules`), 404, 'DeviceNotFound');
	assertHubError(await hub.call('GET', moduleTwinPath('hm-crud', 'nope')), 404, 'ModuleNotFound');

	// The module twin names its module.
	const twin = await hub.getModuleTwin('hm-crud', 'm1');
	assert.equal(twin.deviceId, 'hm-crud');
	assert.equal(twin.moduleId, 'm1');
	assert.equal(twin.deviceEtag, updated.etag);
	assert.equal(twin.authenticationType, 'sas');
	assert.equal(twin.properties.desired.$version, 1);

	// DELETE: the etag must match; then gone.
	res = await hub.call('DELETE', modulePath('hm-crud', 'm1'), { headers: { 'If-Match': '"bm9wZQ=="' } });
	assertHubError(res, 412, 'PreconditionFailed');
	res = await hub.call('DELETE', modulePath('hm-crud', 'm1'), { headers: { 'If-Match': `"${updated.etag}"` } });
	assert.equal(res.status, 204, describe(res));
	assertHubError(await hub.call('GET', modulePath('hm-crud', 'm1')), 404, 'ModuleNotFound');
	assertHubError(await hub.call('DELETE', modulePath('hm-crud', 'm1'), { headers: { 'If-Match': '"*"' } }), 404, 'ModuleNotFound');
	assertHubError(await hub.call('GET', moduleTwinPath('hm-crud', 'm1')), 404, 'ModuleNotFound');
	// The device itself is untouched.
	assert.equal((await hub.getDevice('hm-crud')).deviceId, 'hm-crud');
});

test('a thumbprint module connects: telemetry, twin, desired push, methods', async () => {
	const cert = await thumbprintModule('hm-dev', 'hm-mod');
	const conn = await openHubModule(fx.daemon, { deviceId: 'hm-dev', moduleId: 'hm-mod', cert });
	try {
		assert.equal((await hub.getModule('hm-dev', 'hm-mod')).connectionState, 'Connected');
		assert.equal((await hub.getDevice('hm-dev')).connectionState, 'Disconnected');
		assert.equal((await hub.getModuleTwin('hm-dev', 'hm-mod')).connectionState, 'Connected');

		// Telemetry on the module's topic lands in the device's log with moduleId.
		await publishAcked(conn, 'devices/hm-dev/modules/hm-mod/messages/events/k=v', 'from the module');
		const msgs = await hub.telemetry('hm-dev');
		assert.equal(msgs.length, 1);
		assert.equal(msgs[0].moduleId, 'hm-mod');
		assert.equal(msgs[0].body, 'from the module');
		assert.deepEqual(msgs[0].properties, { k: 'v' });

		// Twin GET and reported PATCH act on the module twin.
		await subscribe(conn, '$iothub/twin/res/#', 0);
		let r = await twinRequest(conn);
		assert.equal(r.status, 200);
		assert.deepEqual(r.body, { desired: { $version: 1 }, reported: { $version: 1 } });
		r = await twinRequest(conn, { method: 'PATCH', body: JSON.stringify({ fw: '1.2' }) });
		assert.equal(r.status, 204);
		assert.equal(r.version, 2);
		assert.equal((await hub.getModuleTwin('hm-dev', 'hm-mod')).properties.reported.fw, '1.2');
		assert.equal((await hub.getTwin('hm-dev')).properties.reported.fw, undefined, 'the device twin is not the module twin');

		// Desired pushes: the device twin's do not reach the module, the module twin's do.
		await subscribe(conn, '$iothub/twin/PATCH/properties/desired/#', 0);
		await hub.patchTwin('hm-dev', { properties: { desired: { forDevice: 1 } } });
		await hub.patchModuleTwin('hm-dev', 'hm-mod', { properties: { desired: { interval: 5 } } });
		const push = await nextPublish(conn, '$iothub/twin/PATCH/properties/desired/');
		assert.equal(splitTopic(push.topic).query.$version, '2');
		assert.deepEqual(JSON.parse(push.payload.toString()), { interval: 5, $version: 2 });

		// Module methods travel over the module's connection.
		await subscribe(conn, '$iothub/methods/POST/#', 0);
		const pending = hub.invokeModuleMethod('hm-dev', 'hm-mod', { methodName: 'ping', payload: { n: 1 }, responseTimeoutInSeconds: 10 });
		const req = await nextPublish(conn, '$iothub/methods/POST/');
		const { path, query } = splitTopic(req.topic);
		assert.equal(path, '$iothub/methods/POST/ping');
		assert.deepEqual(JSON.parse(req.payload.toString()), { n: 1 });
		conn.send(publishPacket({ topic: `$iothub/methods/res/200/?$rid=${query.$rid}`, payload: '{"pong":1}', qos: 0 }));
		const res = await pending;
		assert.equal(res.status, 200, describe(res));
		assert.deepEqual(res.json, { status: 200, payload: { pong: 1 } });
		// The device itself is not connected: its own methods are offline.
		assertMethodError(await hub.invokeMethod('hm-dev', { methodName: 'ping', responseTimeoutInSeconds: 5 }), 404, 404103);
		assertHubError(await hub.invokeModuleMethod('hm-dev', 'nope', { methodName: 'ping' }), 404, 'ModuleNotFound');
	} finally {
		conn.close();
	}
	await fx.daemon.waitForLog(/module 'hm-dev\/hm-mod' disconnected/);
	assert.equal((await hub.getModule('hm-dev', 'hm-mod')).connectionState, 'Disconnected');
});

test('a new module connection replaces the module\'s, not the device\'s', async () => {
	const modCert = await thumbprintModule('hm-two', 'm');
	const devCert = await fx.certs.device('hm-two', { selfSigned: true });
	const put = await hub.call('PUT', devicePath('hm-two'), {
		body: { deviceId: 'hm-two', authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: devCert.sha256 } } },
		headers: { 'If-Match': '"*"' },
	});
	assert.equal(put.status, 200, describe(put));
	const dev = await openHubDevice(fx.daemon, { deviceId: 'hm-two', cert: devCert });
	const first = await openHubModule(fx.daemon, { deviceId: 'hm-two', moduleId: 'm', cert: modCert });
	let second;
	try {
		const mark = fx.daemon.mark();
		second = await openHubModule(fx.daemon, { deviceId: 'hm-two', moduleId: 'm', cert: modCert });
		await first.waitClosed(5000);
		await fx.daemon.waitForLog(/new connection for the same module replaced it/, { since: mark });
		// The device's own connection is still served.
		await subscribe(dev, '$iothub/twin/res/#', 0);
		assert.equal((await twinRequest(dev)).status, 200);
		assert.equal((await hub.getDevice('hm-two')).connectionState, 'Connected');
		assert.equal((await hub.getModule('hm-two', 'm')).connectionState, 'Connected');
	} finally {
		dev.close();
		first.close();
		if (second) second.close();
	}
});

/** A module SAS token: sr = encodeURIComponent(host/devices/{d}/modules/{m}). */
function moduleSasToken(deviceId, moduleId, key) {
	return sasToken({ sr: encodeURIComponent(`${HOSTNAME}/devices/${deviceId}/modules/${moduleId}`), key });
}

test('a SAS module connects with its own key, not its device\'s', async () => {
	const dev = await hub.createDevice('hm-sas');
	const mod = await hub.createModule('hm-sas', 'm');
	const key = mod.authentication.symmetricKey.primaryKey;
	assert.notEqual(key, dev.authentication.symmetricKey.primaryKey);
	const conn = await openHubModule(fx.daemon, { deviceId: 'hm-sas', moduleId: 'm', password: moduleSasToken('hm-sas', 'm', key) });
	try {
		await publishAcked(conn, 'devices/hm-sas/modules/m/messages/events/', 'sas');
		assert.equal((await hub.telemetry('hm-sas'))[0].moduleId, 'm');
	} finally {
		conn.close();
	}
	await assertModuleRefused({ deviceId: 'hm-sas', moduleId: 'm',
		password: moduleSasToken('hm-sas', 'm', dev.authentication.symmetricKey.primaryKey) }, /not signed with a key/);
});

/** Connects as a module and asserts CONNACK 5 with the reason in the log. */
async function assertModuleRefused(opts, logRe) {
	const mark = fx.daemon.mark();
	const { conn, connack } = await connectHubModule(fx.daemon, opts);
	try {
		assert.equal(connack.returnCode, 5, `CONNACK for ${opts.deviceId}/${opts.moduleId}`);
		await conn.waitClosed(5000);
	} finally {
		conn.close();
	}
	const line = await fx.daemon.waitForLog(/ from \S+ refused: /, { since: mark });
	assert.match(line, logRe);
}

test('module refusals: wrong CN, unknown module, unknown device', async () => {
	await hub.createDevice('hm-ref');
	const wrong = await fx.certs.device('hm-ref-wrong', { selfSigned: true, cn: 'hm-ref/other' });
	await hub.createThumbprintModule('hm-ref', 'm', wrong);
	await assertModuleRefused({ deviceId: 'hm-ref', moduleId: 'm', cert: wrong },
		/module 'hm-ref\/m' from \S+ refused: leaf certificate CN 'hm-ref\/other' is not the device id 'hm-ref\/m'/);
	// A device certificate does not open its modules: the CN must name the module.
	const devOnly = await fx.certs.device('hm-ref-dev', { selfSigned: true, cn: 'hm-ref' });
	await hub.createThumbprintModule('hm-ref', 'm2', devOnly);
	await assertModuleRefused({ deviceId: 'hm-ref', moduleId: 'm2', cert: devOnly }, /CN 'hm-ref' is not the device id 'hm-ref\/m2'/);
	const cert = await fx.certs.device('hm-ref-nope', { selfSigned: true, cn: 'hm-ref/nope' });
	await assertModuleRefused({ deviceId: 'hm-ref', moduleId: 'nope', cert }, /module 'hm-ref\/nope' is not registered/);
	const ghost = await fx.certs.device('hm-ghost-m', { selfSigned: true, cn: 'hm-ghost/m' });
	await assertModuleRefused({ deviceId: 'hm-ghost', moduleId: 'm', cert: ghost }, /device 'hm-ghost' is not registered/);
	// A module of a disabled device cannot connect.
	const ok = await thumbprintModule('hm-off', 'm');
	const res = await hub.call('PUT', devicePath('hm-off'), { body: { deviceId: 'hm-off', status: 'disabled' }, headers: { 'If-Match': '"*"' } });
	assert.equal(res.status, 200, describe(res));
	await assertModuleRefused({ deviceId: 'hm-off', moduleId: 'm', cert: ok }, /device 'hm-off' is disabled/);
	assert.equal((await hub.getModule('hm-ref', 'm')).connectionState, 'Disconnected');
});

test('a module subscribing to devicebound is disconnected', async () => {
	const cert = await thumbprintModule('hm-c2d', 'm');
	const conn = await openHubModule(fx.daemon, { deviceId: 'hm-c2d', moduleId: 'm', cert });
	const mark = fx.daemon.mark();
	try {
		await subscribe(conn, '$iothub/twin/res/#', 0);
		conn.send(subscribePacket({ pid: 7, topic: 'devices/hm-c2d/messages/devicebound/#', qos: 1 }));
		await conn.waitClosed(5000);
	} finally {
		conn.close();
	}
	await fx.daemon.waitForLog(/devicebound/, { since: mark });
});

test('deleting a device deletes its modules, their twins and connections', async () => {
	const cert = await thumbprintModule('hm-del', 'm');
	await hub.createModule('hm-del', 'm2');
	await hub.patchModuleTwin('hm-del', 'm2', { properties: { desired: { a: 1 } } });
	const conn = await openHubModule(fx.daemon, { deviceId: 'hm-del', moduleId: 'm', cert });
	try {
		const res = await hub.call('DELETE', devicePath('hm-del'), { headers: { 'If-Match': '"*"' } });
		assert.equal(res.status, 204, describe(res));
		await conn.waitClosed(5000);
	} finally {
		conn.close();
	}
	assertHubError(await hub.call('GET', modulePath('hm-del', 'm')), 404, 'DeviceNotFound');
	// Created again, the device starts without modules; a module of the same name
	// starts with a fresh twin.
	await hub.createDevice('hm-del');
	const list = await hub.call('GET', `${devicePath('hm-del')}/modules`);
	assert.equal(list.status, 200, describe(list));
	assert.deepEqual(list.json, []);
	assertHubError(await hub.call('GET', modulePath('hm-del', 'm2')), 404, 'ModuleNotFound');
	await hub.createModule('hm-del', 'm2');
	const twin = await hub.getModuleTwin('hm-del', 'm2');
	assert.deepEqual(twin.properties.desired.$version, 1);
	assert.equal(twin.properties.desired.a, undefined);
});
