'use strict';
// The hub's service REST API over raw HTTPS, as azure-iothub's Registry uses it: device
// identities with their etag rules, twins (GET/PATCH/PUT, versions and etags), queries
// with paging, statistics, the C2D queue's count and purge, the hub's error envelope and
// SAS checks, and what connected devices see of it (desired pushes, disconnection when
// disabled or deleted).
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { mqttConnect, subscribePacket, TYPE } = require('../lib/mqtt-raw');
const { HUB_KEY, HUB_KEY_NAME, DPS_KEY, sasToken } = require('../lib/sas');

const fx = useDaemon();

// What the Node service SDK sends (azure-iothub 1.16).
const API = 'api-version=2021-04-12';
const NEVER = '0001-01-01T00:00:00Z';

function hubToken(opts = {}) {
	return sasToken({
		sr: opts.host || 'localhost',
		key: opts.key || HUB_KEY,
		keyName: opts.keyName || HUB_KEY_NAME,
		expiry: opts.expiry,
	});
}

/** One hub service call; opts: body, headers, auth (null = no Authorization). */
function hub(method, path, opts = {}) {
	const sep = path.includes('?') ? '&' : '?';
	return fx.svc.call(method, `${path}${sep}${API}`, {
		auth: opts.auth === undefined ? hubToken() : opts.auth,
		body: opts.body,
		headers: opts.headers,
	});
}

const dev = (id) => `/devices/${encodeURIComponent(id)}`;
const twinPath = (id) => `/twins/${encodeURIComponent(id)}`;

/** Node's Registry.create body for a device without credentials (_normalizeAuthentication). */
function nodeCreateBody(deviceId, extra = {}) {
	return {
		deviceId,
		...extra,
		authentication: extra.authentication || {
			type: 'sas',
			symmetricKey: { primaryKey: '', secondaryKey: '' },
		},
	};
}

async function createDevice(deviceId, extra) {
	const res = await hub('PUT', dev(deviceId), { body: nodeCreateBody(deviceId, extra) });
	assert.equal(res.status, 200, `create ${deviceId}: ${describe(res)}`);
	return res.json;
}

/**
 * Asserts the hub's error envelope: status, iothub-errorcode header, JSON body
 * {Message: "ErrorCode:<code>;<text>", ExceptionMessage: "Tracking ID:<id>-TimeStamp:<ts>"},
 * parsed the way azure-iothub parses it. Returns the text after the code.
 */
function assertHubError(res, status, code) {
	assert.equal(res.status, status, describe(res));
	assert.equal(res.headers['iothub-errorcode'], code, `iothub-errorcode header: ${describe(res)}`);
	assert.match(res.headers['content-type'] || '', /application\/json/, 'error content type');
	const body = res.json;
	assert.ok(body && typeof body.Message === 'string', `Message in ${res.text}`);
	// azure-iothub: errorCode = Message.split(';')[0].split(':')[1]
	assert.equal(body.Message.split(';')[0].split(':')[1], code, res.text);
	assert.match(body.ExceptionMessage, /^Tracking ID:[0-9a-f-]{36}-TimeStamp:\S+$/, res.text);
	return body.Message.slice(body.Message.indexOf(';') + 1);
}

function b64Digits(etag) {
	const text = Buffer.from(etag, 'base64').toString('latin1');
	assert.match(text, /^\d+$/, `etag ${etag} is base64 of a decimal number`);
	return text;
}

function assertKey(key) {
	assert.equal(typeof key, 'string');
	assert.equal(Buffer.from(key, 'base64').length, 32, `key ${key} is 32 bytes`);
}

test('create: the Device JSON the hub returns, with generated SAS keys', async () => {
	const res = await hub('PUT', dev('reg-create-1'), { body: nodeCreateBody('reg-create-1') });
	assert.equal(res.status, 200, describe(res));
	assert.match(res.headers['content-type'], /^application\/json; charset=utf-8/);
	const d = res.json;
	assert.deepEqual(Object.keys(d), [
		'deviceId', 'generationId', 'etag', 'connectionState', 'status', 'statusReason',
		'connectionStateUpdatedTime', 'statusUpdatedTime', 'lastActivityTime',
		'cloudToDeviceMessageCount', 'capabilities', 'deviceScope', 'authentication',
	]);
	assert.equal(d.deviceId, 'reg-create-1');
	assert.match(d.generationId, /^\d{18}$/);
	b64Digits(d.etag);
	assert.equal(res.headers.etag, `"${d.etag}"`);
	assert.equal(d.connectionState, 'Disconnected');
	assert.equal(d.status, 'enabled');
	assert.equal(d.statusReason, null);
	assert.equal(d.connectionStateUpdatedTime, NEVER);
	assert.equal(d.statusUpdatedTime, NEVER);
	assert.equal(d.lastActivityTime, NEVER);
	assert.equal(d.cloudToDeviceMessageCount, 0);
	assert.deepEqual(d.capabilities, { iotEdge: false });
	assert.equal(d.deviceScope, null);
	assert.equal(d.authentication.type, 'sas');
	assertKey(d.authentication.symmetricKey.primaryKey);
	assertKey(d.authentication.symmetricKey.secondaryKey);
	assert.notEqual(d.authentication.symmetricKey.primaryKey, d.authentication.symmetricKey.secondaryKey);
	assert.deepEqual(d.authentication.x509Thumbprint, { primaryThumbprint: null, secondaryThumbprint: null });

	const got = await hub('GET', dev('reg-create-1'));
	assert.equal(got.status, 200, describe(got));
	assert.deepEqual(got.json, d);
});

test('create: selfSigned thumbprints are normalised, certificateAuthority has no credentials', async () => {
	const thumb = 'ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01';
	// Node sends an x509Thumbprint with type selfSigned.
	const x = await createDevice('reg-x509-1', {
		authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: thumb } },
	});
	assert.equal(x.authentication.type, 'selfSigned');
	assert.equal(x.authentication.x509Thumbprint.primaryThumbprint, 'ABCDEF0123456789ABCDEF0123456789ABCDEF01');
	assert.equal(x.authentication.x509Thumbprint.secondaryThumbprint, 'ABCDEF0123456789ABCDEF0123456789ABCDEF01');
	assert.deepEqual(x.authentication.symmetricKey, { primaryKey: null, secondaryKey: null });

	const ca = await createDevice('reg-ca-1', { authentication: { type: 'certificateAuthority' } });
	assert.equal(ca.authentication.type, 'certificateAuthority');
	assert.deepEqual(ca.authentication.symmetricKey, { primaryKey: null, secondaryKey: null });
	assert.deepEqual(ca.authentication.x509Thumbprint, { primaryThumbprint: null, secondaryThumbprint: null });

	const bad = await hub('PUT', dev('reg-x509-2'), {
		body: { deviceId: 'reg-x509-2', authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: 'abc' } } },
	});
	assert.match(assertHubError(bad, 400, 'ArgumentInvalid'), /primaryThumbprint/);
	assertHubError(await hub('GET', dev('reg-x509-2')), 404, 'DeviceNotFound');
});

test('create twice: 409 DeviceAlreadyExists in the hub envelope', async () => {
	const first = await createDevice('reg-dup-1');
	const res = await hub('PUT', dev('reg-dup-1'), { body: nodeCreateBody('reg-dup-1') });
	const text = assertHubError(res, 409, 'DeviceAlreadyExists');
	assert.match(text, /A device with ID 'reg-dup-1' is already registered\./);
	// Nothing changed.
	const got = await hub('GET', dev('reg-dup-1'));
	assert.equal(got.json.etag, first.etag);
	// Ids are case-sensitive: another device.
	await createDevice('REG-DUP-1');
});

test('update: If-Match "*" or the current etag; a stale etag gets 412', async () => {
	const v1 = await createDevice('reg-upd-1');
	// Node's Registry.update: the device object back, If-Match: "*".
	const body = { ...v1, status: 'disabled', statusReason: 'maintenance' };
	let res = await hub('PUT', dev('reg-upd-1'), { body, headers: { 'If-Match': '"*"' } });
	assert.equal(res.status, 200, describe(res));
	const v2 = res.json;
	assert.equal(v2.status, 'disabled');
	assert.equal(v2.statusReason, 'maintenance');
	assert.notEqual(v2.statusUpdatedTime, NEVER);
	assert.equal(v2.generationId, v1.generationId);
	assert.notEqual(v2.etag, v1.etag);
	assert.deepEqual(v2.authentication, v1.authentication);

	res = await hub('PUT', dev('reg-upd-1'), { body: { deviceId: 'reg-upd-1', status: 'enabled' }, headers: { 'If-Match': `"${v1.etag}"` } });
	assert.match(assertHubError(res, 412, 'PreconditionFailed'), /If-Match/);

	res = await hub('PUT', dev('reg-upd-1'), {
		body: { deviceId: 'reg-upd-1', status: 'enabled', authentication: { type: 'sas', symmetricKey: { primaryKey: '', secondaryKey: '' } } },
		headers: { 'If-Match': `"${v2.etag}"` },
	});
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.status, 'enabled');
	// Empty keys on update keep the stored ones.
	assert.deepEqual(res.json.authentication, v1.authentication);

	// An etag for a device that does not exist: 404 DeviceNotFound.
	res = await hub('PUT', dev('reg-upd-ghost'), { body: {}, headers: { 'If-Match': `"${v2.etag}"` } });
	assertHubError(res, 404, 'DeviceNotFound');
});

test('invalid requests: 400 ArgumentInvalid naming what is wrong', async () => {
	const cases = [
		[dev('reg-bad-1'), { deviceId: 'someone-else' }, /deviceId/],
		[dev('reg-bad-1'), { status: 'paused' }, /status/],
		[dev('reg-bad-1'), { capabilities: { iotEdge: 'yes' } }, /capabilities\.iotEdge/],
		[dev('reg-bad-1'), { authentication: { type: 'kerberos' } }, /authentication\.type/],
		[dev('reg-bad-1'), { authentication: { symmetricKey: { primaryKey: 'not base64!' } } }, /primaryKey/],
		[dev('bad id'), {}, /' ' at offset 3/],
		[dev('x'.repeat(129)), {}, /129 characters/],
	];
	for (const [path, body, re] of cases) {
		const res = await hub('PUT', path, { body });
		assert.match(assertHubError(res, 400, 'ArgumentInvalid'), re, `${path} ${JSON.stringify(body)}`);
	}
	const res = await hub('PUT', dev('reg-bad-1'), { body: '{"deviceId":', headers: { 'Content-Type': 'application/json' } });
	assertHubError(res, 400, 'ArgumentInvalid');
	assertHubError(await hub('GET', dev('reg-bad-1')), 404, 'DeviceNotFound');
});

test('get and delete: 404 DeviceNotFound, DELETE with "*" or the etag, 204', async () => {
	assertHubError(await hub('GET', dev('reg-nobody')), 404, 'DeviceNotFound');
	assertHubError(await hub('DELETE', dev('reg-nobody'), { headers: { 'If-Match': '"*"' } }), 404, 'DeviceNotFound');

	const d = await createDevice('reg-del-1');
	let res = await hub('DELETE', dev('reg-del-1'), { headers: { 'If-Match': '"bm9wZQ=="' } });
	assertHubError(res, 412, 'PreconditionFailed');
	res = await hub('DELETE', dev('reg-del-1'), { headers: { 'If-Match': `"${d.etag}"` } });
	assert.equal(res.status, 204, describe(res));
	assert.equal(res.text, '');
	assertHubError(await hub('GET', dev('reg-del-1')), 404, 'DeviceNotFound');
	// The twin went with it.
	assertHubError(await hub('GET', twinPath('reg-del-1')), 404, 'DeviceNotFound');

	// Node's Registry.delete sends If-Match: "*". Paths are case-insensitive.
	await createDevice('reg-del-2');
	res = await hub('DELETE', `/DEVICES/reg-del-2`, { headers: { 'If-Match': '"*"' } });
	assert.equal(res.status, 204, describe(res));

	// Re-created: a new generation and a fresh twin.
	await createDevice('reg-del-1');
	const twin = await hub('GET', twinPath('reg-del-1'));
	assert.equal(twin.status, 200, describe(twin));
	assert.deepEqual(twin.json.tags, {});
});

/** Queues a C2D message through the emulator's send API; asserts 200. */
async function queueC2d(deviceId, body) {
	const res = await hub('POST', `/_emulator/devices/${encodeURIComponent(deviceId)}/messages`, { body: { body } });
	assert.equal(res.status, 200, `queue C2D for ${deviceId}: ${describe(res)}`);
	return res.json;
}

async function c2dCount(deviceId) {
	const res = await hub('GET', dev(deviceId));
	assert.equal(res.status, 200, describe(res));
	return res.json.cloudToDeviceMessageCount;
}

async function c2dQueue(deviceId) {
	const res = await hub('GET', `/_emulator/devices/${encodeURIComponent(deviceId)}/messages`);
	assert.equal(res.status, 200, describe(res));
	return res.json.messages;
}

test('C2D queue: cloudToDeviceMessageCount and DELETE /devices/{id}/commands', async () => {
	// reg-c2d-1 is a prefix of reg-c2d-10: neither queue may count or purge the other's.
	await createDevice('reg-c2d-1');
	await createDevice('reg-c2d-10');
	assert.equal(await c2dCount('reg-c2d-1'), 0);
	await queueC2d('reg-c2d-1', 'x');
	await queueC2d('reg-c2d-1', 'y');
	await queueC2d('reg-c2d-10', 'z');
	assert.equal(await c2dCount('reg-c2d-1'), 2);
	assert.equal(await c2dCount('reg-c2d-10'), 1);
	// The twin, the device list and queries show the same count.
	const twin = await hub('GET', twinPath('reg-c2d-1'));
	assert.equal(twin.json.cloudToDeviceMessageCount, 2);
	const listed = (await hub('GET', '/devices')).json.find((d) => d.deviceId === 'reg-c2d-1');
	assert.equal(listed.cloudToDeviceMessageCount, 2);
	const queried = (await queryAll("SELECT * FROM devices WHERE deviceId = 'reg-c2d-1'", 10)).flat();
	assert.equal(queried[0].cloudToDeviceMessageCount, 2);
	// A device write answers with the live count too; the etag rules are unchanged.
	const upd = await hub('PUT', dev('reg-c2d-1'), { body: { deviceId: 'reg-c2d-1' }, headers: { 'If-Match': '"*"' } });
	assert.equal(upd.status, 200, describe(upd));
	assert.equal(upd.json.cloudToDeviceMessageCount, 2);

	// The purge: 200 with Azure's PurgeMessageQueueResult.
	let res = await hub('DELETE', `${dev('reg-c2d-1')}/commands`);
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json, { deviceId: 'reg-c2d-1', totalMessagesPurged: 2 });
	assert.deepEqual(Object.keys(res.json), ['deviceId', 'totalMessagesPurged']);
	assert.equal(await c2dCount('reg-c2d-1'), 0);
	assert.deepEqual(await c2dQueue('reg-c2d-1'), []);
	assert.equal(await c2dCount('reg-c2d-10'), 1, 'another device keeps its queue');
	// Again: nothing left. Paths are case-insensitive.
	res = await hub('DELETE', `/DEVICES/reg-c2d-1/Commands`);
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.totalMessagesPurged, 0);
	// The device itself is untouched, and sequence numbers go on after a purge.
	assert.equal((await hub('GET', dev('reg-c2d-1'))).json.etag, upd.json.etag);
	const next = await queueC2d('reg-c2d-1', 'w');
	assert.equal(next.sequenceNumber, 3);
	assert.equal(await c2dCount('reg-c2d-1'), 1);

	assertHubError(await hub('DELETE', `${dev('reg-c2d-nobody')}/commands`), 404, 'DeviceNotFound');
});

test('C2D queue: deleting a device drops its queue; re-created, it starts empty', async () => {
	await createDevice('reg-c2d-del');
	await createDevice('reg-c2d-del2');
	await queueC2d('reg-c2d-del', 'x');
	await queueC2d('reg-c2d-del2', 'y');
	assert.equal(await c2dCount('reg-c2d-del'), 1);

	// A refused delete keeps it.
	let res = await hub('DELETE', dev('reg-c2d-del'), { headers: { 'If-Match': '"bm9wZQ=="' } });
	assertHubError(res, 412, 'PreconditionFailed');
	assert.equal(await c2dCount('reg-c2d-del'), 1);

	res = await hub('DELETE', dev('reg-c2d-del'), { headers: { 'If-Match': '"*"' } });
	assert.equal(res.status, 204, describe(res));
	assertHubError(await hub('DELETE', `${dev('reg-c2d-del')}/commands`), 404, 'DeviceNotFound');
	await createDevice('reg-c2d-del');
	assert.equal(await c2dCount('reg-c2d-del'), 0);
	assert.deepEqual(await c2dQueue('reg-c2d-del'), []);
	assert.equal(await c2dCount('reg-c2d-del2'), 1, 'another device keeps its queue');

	// It survives a restart the same way.
	await queueC2d('reg-c2d-del', 'z');
	await fx.daemon.restart();
	assert.equal(await c2dCount('reg-c2d-del'), 1);
	assert.equal((await c2dQueue('reg-c2d-del')).length, 1);
});

test('twin: GET shape, PATCH and PUT with versions, etags and If-Match', async () => {
	const d = await createDevice('reg-twin-1');
	let res = await hub('GET', twinPath('reg-twin-1'));
	assert.equal(res.status, 200, describe(res));
	const t1 = res.json;
	assert.equal(t1.deviceId, 'reg-twin-1');
	assert.equal(t1.deviceEtag, d.etag);
	assert.equal(t1.status, 'enabled');
	assert.equal(t1.connectionState, 'Disconnected');
	assert.equal(t1.authenticationType, 'sas');
	assert.deepEqual(t1.x509Thumbprint, { primaryThumbprint: null, secondaryThumbprint: null });
	assert.deepEqual(t1.capabilities, { iotEdge: false });
	assert.deepEqual(t1.tags, {});
	assert.equal(t1.properties.desired.$version, 1);
	assert.equal(t1.properties.reported.$version, 1);
	assert.equal(typeof t1.properties.desired.$metadata.$lastUpdated, 'string');
	assert.equal(typeof t1.version, 'number');
	assert.equal(Buffer.from(t1.etag, 'base64').length, 8, `twin etag ${t1.etag} is a 64-bit counter`);
	assert.equal(res.headers.etag, `"${t1.etag}"`);

	// Node's updateTwin: PATCH with the etag quoted.
	res = await hub('PATCH', twinPath('reg-twin-1'), {
		body: { tags: { site: 'lab' }, properties: { desired: { fw: '1.0', cfg: { a: 1, b: 2 } } } },
		headers: { 'If-Match': `"${t1.etag}"` },
	});
	assert.equal(res.status, 200, describe(res));
	const t2 = res.json;
	assert.deepEqual(t2.tags, { site: 'lab' });
	assert.equal(t2.properties.desired.fw, '1.0');
	assert.deepEqual(t2.properties.desired.cfg, { a: 1, b: 2 });
	assert.equal(t2.properties.desired.$version, 2);
	assert.ok(t2.version > t1.version, 'version grows');
	assert.notEqual(t2.etag, t1.etag);
	assert.equal(t2.properties.desired.$metadata.fw.$lastUpdatedVersion, 2);

	// The old etag no longer matches; "*" always does.
	res = await hub('PATCH', twinPath('reg-twin-1'), { body: { tags: { site: 'x' } }, headers: { 'If-Match': `"${t1.etag}"` } });
	assert.match(assertHubError(res, 412, 'PreconditionFailed'), /If-Match/);
	res = await hub('PATCH', twinPath('reg-twin-1'), {
		body: { properties: { desired: { cfg: { a: null } } } },
		headers: { 'If-Match': '"*"' },
	});
	assert.equal(res.status, 200, describe(res));
	const t3 = res.json;
	assert.deepEqual(t3.properties.desired.cfg, { b: 2 });
	assert.equal(t3.properties.desired.$version, 3);
	assert.deepEqual(t3.tags, { site: 'lab' }, 'tags not named stay');

	// PUT replaces tags and desired.
	res = await hub('PUT', twinPath('reg-twin-1'), {
		body: { tags: { owner: 'qa' }, properties: { desired: { fw: '2.0' } } },
		headers: { 'If-Match': `"${t3.etag}"` },
	});
	assert.equal(res.status, 200, describe(res));
	const t4 = res.json;
	assert.deepEqual(t4.tags, { owner: 'qa' });
	assert.equal(t4.properties.desired.fw, '2.0');
	assert.equal(t4.properties.desired.cfg, undefined);
	assert.equal(t4.properties.desired.$version, 4);

	// GET returns what the last write returned.
	res = await hub('GET', twinPath('reg-twin-1'));
	assert.deepEqual(res.json, t4);

	// The identity's etag is unaffected by twin writes; a device write shows in deviceEtag.
	res = await hub('GET', dev('reg-twin-1'));
	assert.equal(res.json.etag, d.etag);
	res = await hub('PUT', dev('reg-twin-1'), { body: { ...d, status: 'disabled' }, headers: { 'If-Match': '"*"' } });
	assert.equal(res.status, 200, describe(res));
	const t5 = (await hub('GET', twinPath('reg-twin-1'))).json;
	assert.equal(t5.deviceEtag, res.json.etag);
	assert.equal(t5.status, 'disabled');
	assert.equal(t5.etag, t4.etag, 'the twin etag follows tags and desired only');
});

test('twin: unknown devices and invalid bodies', async () => {
	for (const method of ['GET', 'PATCH', 'PUT']) {
		const res = await hub(method, twinPath('reg-twin-nobody'), method === 'GET' ? {} : { body: { tags: {} }, headers: { 'If-Match': '"*"' } });
		assertHubError(res, 404, 'DeviceNotFound');
	}
	await createDevice('reg-twin-2');
	let res = await hub('PATCH', twinPath('reg-twin-2'), { body: { properties: { desired: 5 } }, headers: { 'If-Match': '"*"' } });
	assertHubError(res, 400, 'ArgumentInvalid');
	res = await hub('PATCH', twinPath('reg-twin-2'), { body: { tags: { 'a.b': 1 } }, headers: { 'If-Match': '"*"' } });
	assertHubError(res, 400, 'ArgumentInvalid');
	res = await hub('PATCH', twinPath('reg-twin-2'), { body: { deviceId: 'other', tags: {} }, headers: { 'If-Match': '"*"' } });
	assertHubError(res, 400, 'ArgumentInvalid');
	// Nothing was written.
	res = await hub('GET', twinPath('reg-twin-2'));
	assert.equal(res.json.properties.desired.$version, 1);
	assert.deepEqual(res.json.tags, {});
});

/** Follows x-ms-continuation until the last page; returns the pages. */
async function queryAll(query, pageSize) {
	const pages = [];
	let continuation;
	for (let i = 0; i < 100; i++) {
		const headers = { 'x-ms-max-item-count': String(pageSize) };
		if (continuation) headers['x-ms-continuation'] = continuation;
		const res = await hub('POST', '/devices/query', { body: { query }, headers });
		assert.equal(res.status, 200, describe(res));
		assert.equal(res.headers['x-ms-item-type'], 'twin');
		assert.ok(Array.isArray(res.json), 'query answers an array');
		assert.ok(res.json.length <= pageSize, `page of ${res.json.length} > ${pageSize}`);
		pages.push(res.json);
		continuation = res.headers['x-ms-continuation'];
		// Node's Query: hasMoreResults = continuationToken !== undefined.
		if (continuation === undefined) return pages;
		assert.notEqual(continuation, '', 'an empty continuation header would loop forever');
	}
	throw new Error('query did not finish in 100 pages');
}

test('query: every twin, in pages, with WHERE filters', async () => {
	for (let i = 0; i < 5; i++) await createDevice(`reg-q-${i}`);
	await hub('PATCH', twinPath('reg-q-3'), { body: { tags: { site: 'north' } }, headers: { 'If-Match': '"*"' } });
	await hub('PUT', dev('reg-q-4'), { body: { deviceId: 'reg-q-4', status: 'disabled' }, headers: { 'If-Match': '"*"' } });

	const list = await hub('GET', '/devices/');
	assert.equal(list.status, 200, describe(list));
	const allIds = list.json.map((d) => d.deviceId).sort();
	for (let i = 0; i < 5; i++) assert.ok(allIds.includes(`reg-q-${i}`));

	const pages = await queryAll('SELECT * FROM devices', 2);
	const ids = pages.flat().map((t) => t.deviceId);
	assert.deepEqual([...ids].sort(), allIds, 'paging returns every twin exactly once');
	assert.ok(pages.length >= Math.ceil(allIds.length / 2));
	for (const p of pages.slice(0, -1)) assert.equal(p.length, 2);
	const t3 = pages.flat().find((t) => t.deviceId === 'reg-q-3');
	assert.deepEqual(t3.tags, { site: 'north' });
	assert.equal(typeof t3.properties.desired.$version, 'number');

	// One page is enough when it holds everything: no continuation at all.
	const one = await queryAll('select * from DEVICES', 1000);
	assert.equal(one.length, 1);
	assert.equal(one[0].length, allIds.length);

	const north = (await queryAll("SELECT * FROM devices WHERE tags.site = 'north'", 10)).flat();
	assert.deepEqual(north.map((t) => t.deviceId), ['reg-q-3']);
	const byId = (await queryAll("SELECT * FROM devices WHERE deviceId = 'reg-q-1'", 10)).flat();
	assert.deepEqual(byId.map((t) => t.deviceId), ['reg-q-1']);
	const disabled = (await queryAll("SELECT * FROM devices WHERE status = 'disabled' AND deviceId = 'reg-q-4'", 10)).flat();
	assert.deepEqual(disabled.map((t) => t.deviceId), ['reg-q-4']);
	const versioned = (await queryAll("SELECT * FROM devices WHERE properties.desired.$version = 1 AND deviceId != 'reg-q-0'", 1000)).flat();
	assert.ok(!versioned.some((t) => t.deviceId === 'reg-q-0'));
	assert.ok(versioned.some((t) => t.deviceId === 'reg-q-1'));

	let res = await hub('POST', '/devices/query', { body: { query: 'SELECT deviceId FROM devices GROUP BY status' } });
	assertHubError(res, 400, 'ArgumentInvalid');
	res = await hub('POST', '/devices/query', { body: {} });
	assertHubError(res, 400, 'ArgumentInvalid');
	res = await hub('POST', '/devices/query', { body: { query: 'SELECT * FROM devices' }, headers: { 'x-ms-continuation': '!!!' } });
	assertHubError(res, 400, 'ArgumentInvalid');

	// GET /devices?top=N lists at most N.
	res = await hub('GET', '/devices?top=2');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.length, 2);
	assertHubError(await hub('GET', '/devices?top=0'), 400, 'ArgumentInvalid');
});

test('statistics: device counts', async () => {
	await createDevice('reg-stat-1');
	await hub('PUT', dev('reg-stat-1'), { body: { status: 'disabled' }, headers: { 'If-Match': '"*"' } });
	const list = (await hub('GET', '/devices')).json;
	const res = await hub('GET', '/statistics/devices');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.totalDeviceCount, list.length);
	assert.equal(res.json.disabledDeviceCount, list.filter((d) => d.status === 'disabled').length);
	assert.equal(res.json.enabledDeviceCount, list.filter((d) => d.status === 'enabled').length);
	assert.ok(res.json.disabledDeviceCount >= 1);
});

test('401 IotHubUnauthorizedAccess for a missing or bad token, on every route', async () => {
	await createDevice('reg-auth-1');
	const tokens = [
		['no Authorization header', null],
		['the wrong key', hubToken({ key: Buffer.alloc(32, 5).toString('base64') })],
		['the DPS key under the hub key name', hubToken({ key: DPS_KEY })],
		['an expired token', hubToken({ expiry: Math.floor(Date.now() / 1000) - 60 })],
		['an unknown key name', hubToken({ keyName: 'registryRead' })],
	];
	const routes = [
		['GET', dev('reg-auth-1')],
		['PUT', dev('reg-auth-2'), nodeCreateBody('reg-auth-2')],
		['DELETE', dev('reg-auth-1')],
		['DELETE', `${dev('reg-auth-1')}/commands`],
		['GET', '/devices'],
		['POST', '/devices/query', { query: 'SELECT * FROM devices' }],
		['GET', '/statistics/devices'],
		['GET', twinPath('reg-auth-1')],
		['PATCH', twinPath('reg-auth-1'), { tags: { a: 1 } }],
		['PUT', twinPath('reg-auth-1'), { tags: {} }],
	];
	for (const [what, auth] of tokens) {
		for (const [method, path, body] of routes) {
			const res = await hub(method, path, { auth, body, headers: { 'If-Match': '"*"' } });
			assert.equal(res.status, 401, `${what}: ${method} ${path}: ${describe(res)}`);
			assertHubError(res, 401, 'IotHubUnauthorizedAccess');
		}
	}
	// Nothing happened.
	assert.equal((await hub('GET', dev('reg-auth-1'))).status, 200);
	assertHubError(await hub('GET', dev('reg-auth-2')), 404, 'DeviceNotFound');
	const twin = (await hub('GET', twinPath('reg-auth-1'))).json;
	assert.deepEqual(twin.tags, {});
});

test('devices and twins survive a restart', async () => {
	const d = await createDevice('reg-persist-1');
	const patched = await hub('PATCH', twinPath('reg-persist-1'), {
		body: { tags: { keep: true }, properties: { desired: { x: 1 } } },
		headers: { 'If-Match': '"*"' },
	});
	assert.equal(patched.status, 200, describe(patched));
	await fx.daemon.restart();
	const got = await hub('GET', dev('reg-persist-1'));
	assert.deepEqual(got.json, d);
	const twin = await hub('GET', twinPath('reg-persist-1'));
	assert.deepEqual(twin.json, patched.json);
	// A new etag after the restart is still a new one.
	const upd = await hub('PUT', dev('reg-persist-1'), { body: d, headers: { 'If-Match': '"*"' } });
	assert.notEqual(upd.json.etag, d.etag);
});

/** Connects device id over MQTT with a SAS token made from its registry key. */
async function connectDevice(device, { subscribeDesired = false } = {}) {
	const password = sasToken({ sr: `localhost/devices/${device.deviceId}`, key: device.authentication.symmetricKey.primaryKey });
	const { conn, connack } = await mqttConnect(fx.daemon.mqttPort, {
		ca: fx.daemon.ca,
		clientId: device.deviceId,
		username: `localhost/${device.deviceId}/?api-version=2021-04-12`,
		password,
	});
	if (connack.returnCode !== 0) {
		conn.close();
		return { conn: null, connack };
	}
	if (subscribeDesired) {
		conn.send(subscribePacket({ pid: 7, topic: '$iothub/twin/PATCH/properties/desired/#', qos: 0 }));
		await conn.nextOfType(TYPE.SUBACK);
	}
	return { conn, connack };
}

test('connected devices: live state, desired pushes, disconnect on disable and delete', async () => {
	const d = await createDevice('reg-live-1');
	const { conn } = await connectDevice(d, { subscribeDesired: true });
	assert.ok(conn, 'the device connects with its generated key');
	try {
		const got = await hub('GET', dev('reg-live-1'));
		assert.equal(got.json.connectionState, 'Connected');
		assert.notEqual(got.json.lastActivityTime, NEVER);
		const twin = await hub('GET', twinPath('reg-live-1'));
		assert.equal(twin.json.connectionState, 'Connected');
		const online = (await queryAll("SELECT * FROM devices WHERE connectionState = 'Connected' AND deviceId = 'reg-live-1'", 10)).flat();
		assert.equal(online.length, 1);

		// PATCH: every property named, plus $version, in topic and body.
		let res = await hub('PATCH', twinPath('reg-live-1'), {
			body: { tags: { t: 1 }, properties: { desired: { a: 1, b: { c: 2, d: 3 } } } },
			headers: { 'If-Match': '"*"' },
		});
		assert.equal(res.status, 200, describe(res));
		let push = await conn.nextOfType(TYPE.PUBLISH);
		assert.equal(push.topic, '$iothub/twin/PATCH/properties/desired/?$version=2');
		assert.deepEqual(JSON.parse(push.payload.toString()), { a: 1, b: { c: 2, d: 3 }, $version: 2 });

		// A tags-only PATCH tells the device nothing.
		res = await hub('PATCH', twinPath('reg-live-1'), { body: { tags: { t: 2 } }, headers: { 'If-Match': '"*"' } });
		assert.equal(res.status, 200, describe(res));

		// PUT: the difference, with nulls for what went away.
		res = await hub('PUT', twinPath('reg-live-1'), {
			body: { properties: { desired: { b: { c: 2 } } } },
			headers: { 'If-Match': '"*"' },
		});
		assert.equal(res.status, 200, describe(res));
		push = await conn.nextOfType(TYPE.PUBLISH);
		assert.equal(push.topic, '$iothub/twin/PATCH/properties/desired/?$version=3');
		assert.deepEqual(JSON.parse(push.payload.toString()), { a: null, b: { c: 2, d: null }, $version: 3 });
		assert.equal(conn.packets.filter((p) => p.type === TYPE.PUBLISH).length, 0, 'no push for the tags-only patch');

		// Disabling closes the connection, and the device cannot come back.
		res = await hub('PUT', dev('reg-live-1'), { body: { deviceId: 'reg-live-1', status: 'disabled' }, headers: { 'If-Match': '"*"' } });
		assert.equal(res.status, 200, describe(res));
		await conn.waitClosed(5000);
		const refused = await connectDevice(d);
		assert.equal(refused.connack.returnCode, 5);
	} finally {
		conn.close();
	}

	// Enabled again, connected, then deleted: closed.
	let res = await hub('PUT', dev('reg-live-1'), { body: { deviceId: 'reg-live-1', status: 'enabled' }, headers: { 'If-Match': '"*"' } });
	assert.equal(res.status, 200, describe(res));
	const again = await connectDevice(d);
	assert.equal(again.connack.returnCode, 0);
	try {
		res = await hub('DELETE', dev('reg-live-1'), { headers: { 'If-Match': '"*"' } });
		assert.equal(res.status, 204, describe(res));
		await again.conn.waitClosed(5000);
	} finally {
		again.conn.close();
	}
	assert.equal((await connectDevice(d)).connack.returnCode, 5);
});
