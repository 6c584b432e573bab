'use strict';
// Devices registering over MQTT with the C client (tools/dps_device.c): individual
// self-signed enrollments, groups on a root and on an intermediate, nearest group wins,
// disabled enrollments, re-registration, and the registration records the service sees.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { EXIT, describeRun } = require('../lib/dps-device');
const { x509Enrollment, x509Group, assertAzureError, TIMESTAMP_RE, assertDeleted } = require('../lib/service');
const { HOSTNAME } = require('../lib/env');

let root; // group "grp-root" signs with it
let inter; // intermediate under root, group "grp-inter" added in the nearest-group test

const fx = useDaemon({
	async setup() {
		root = await fx.certs.root('dev-root', { cn: 'Device Root CA' });
		inter = await fx.certs.intermediate('dev-inter', { ca: root, cn: 'Device Intermediate CA' });
		await fx.svc.createGroup(x509Group('grp-root', root.pem));
	},
});

/** Asserts a successful run and the shape of the assigned registration; returns the state. */
function assertAssigned(run, registrationId, x509) {
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	const body = run.json;
	assert.ok(body, describeRun(run));
	assert.equal(body.status, 'assigned');
	assert.equal(typeof body.operationId, 'string');
	const s = body.registrationState;
	assert.equal(s.registrationId, registrationId);
	assert.equal(s.assignedHub, HOSTNAME);
	assert.equal(s.deviceId, registrationId);
	assert.equal(s.status, 'assigned');
	assert.equal(s.substatus, 'initialAssignment');
	assert.match(s.createdDateTimeUtc, TIMESTAMP_RE);
	assert.match(s.lastUpdatedDateTimeUtc, TIMESTAMP_RE);
	assert.equal(typeof s.etag, 'string');
	assert.deepEqual(s.x509, x509);
	return s;
}

test('individual enrollment with a self-signed certificate is assigned', async () => {
	const dev = await fx.certs.device('mq-self-1', { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment('mq-self-1', dev.pem));
	assertAssigned(await fx.device({ cert: dev }), 'mq-self-1', {});
});

test('group on a root: the device presents its leaf only and is assigned', async () => {
	const dev = await fx.certs.device('mq-root-1', { ca: root });
	assertAssigned(await fx.device({ cert: dev, chain: false }), 'mq-root-1', { enrollmentGroupId: 'grp-root' });
});

test('group on an intermediate: the device presents leaf + intermediate and is assigned', async () => {
	const ownRoot = await fx.certs.root('inter-only-root');
	const ownInter = await fx.certs.intermediate('inter-only', { ca: ownRoot });
	await fx.svc.createGroup(x509Group('grp-inter-only', ownInter.pem));
	const dev = await fx.certs.device('mq-inter-1', { ca: ownInter });
	assert.match(dev.chainPem, /END CERTIFICATE[\s\S]*BEGIN CERTIFICATE/, 'chain file holds two certificates');
	assertAssigned(await fx.device({ cert: dev }), 'mq-inter-1', { enrollmentGroupId: 'grp-inter-only' });
});

test('nearest group wins: groups on the root and on the intermediate -> the intermediate\'s group', async () => {
	await fx.svc.createGroup(x509Group('grp-inter', inter.pem));
	const dev = await fx.certs.device('mq-near-1', { ca: inter });
	assertAssigned(await fx.device({ cert: dev }), 'mq-near-1', { enrollmentGroupId: 'grp-inter' });
	// A device directly under the root still lands in the root's group.
	const direct = await fx.certs.device('mq-near-2', { ca: root });
	assertAssigned(await fx.device({ cert: direct }), 'mq-near-2', { enrollmentGroupId: 'grp-root' });
});

test('an individual enrollment wins over a group for a CA-signed device', async () => {
	const dev = await fx.certs.device('mq-indiv-over-grp', { ca: root });
	await fx.svc.createEnrollment(x509Enrollment('mq-indiv-over-grp', dev.pem));
	assertAssigned(await fx.device({ cert: dev }), 'mq-indiv-over-grp', {});
});

test('a disabled individual enrollment ends in the terminal status disabled', async () => {
	const dev = await fx.certs.device('mq-disabled', { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment('mq-disabled', dev.pem, { provisioningStatus: 'disabled' }));
	const run = await fx.device({ cert: dev });
	assert.equal(run.code, EXIT.NOT_ASSIGNED, describeRun(run));
	assert.equal(run.json.status, 'disabled', describeRun(run));
});

test('a disabled group ends in disabled for its devices', async () => {
	const r = await fx.certs.root('disabled-grp-root');
	await fx.svc.createGroup(x509Group('grp-disabled', r.pem, { provisioningStatus: 'disabled' }));
	const dev = await fx.certs.device('mq-grp-disabled', { ca: r });
	const run = await fx.device({ cert: dev });
	assert.equal(run.code, EXIT.NOT_ASSIGNED, describeRun(run));
	assert.equal(run.json.status, 'disabled', describeRun(run));
});

test('firmware variants: empty register body (C#), QoS 0 (Embedded C), a custom payload', async () => {
	const dev = await fx.certs.device('mq-variants', { ca: root });
	assertAssigned(await fx.device({ cert: dev, bodyMode: 'empty' }), 'mq-variants', { enrollmentGroupId: 'grp-root' });
	assertAssigned(await fx.device({ cert: dev, qos: 0 }), 'mq-variants', { enrollmentGroupId: 'grp-root' });
	assertAssigned(await fx.device({ cert: dev, payload: { modelId: 'dtmi:com:example:Thermostat;1' } }),
		'mq-variants', { enrollmentGroupId: 'grp-root' });
	assertAssigned(await fx.device({ cert: dev, apiVersion: '2021-06-01' }), 'mq-variants',
		{ enrollmentGroupId: 'grp-root' });
});

test('re-registration keeps the assignment', async () => {
	const dev = await fx.certs.device('mq-again', { ca: root });
	const first = assertAssigned(await fx.device({ cert: dev }), 'mq-again', { enrollmentGroupId: 'grp-root' });
	const second = assertAssigned(await fx.device({ cert: dev }), 'mq-again', { enrollmentGroupId: 'grp-root' });
	assert.equal(second.assignedHub, first.assignedHub);
	assert.equal(second.deviceId, first.deviceId);
});

test('the registration record is visible through GET /registrations/{id} and deletable', async () => {
	const dev = await fx.certs.device('mq-record', { ca: root });
	const state = assertAssigned(await fx.device({ cert: dev }), 'mq-record', { enrollmentGroupId: 'grp-root' });

	let res = await fx.svc.get('/registrations/mq-record');
	assert.equal(res.status, 200, describe(res));
	assert.match(res.headers['content-type'], /^application\/json/);
	assert.equal(res.json.registrationId, 'mq-record');
	assert.equal(res.json.status, 'assigned');
	assert.equal(res.json.assignedHub, HOSTNAME);
	assert.equal(res.json.deviceId, 'mq-record');
	assert.equal(res.json.createdDateTimeUtc, state.createdDateTimeUtc);
	assert.equal(typeof res.json.etag, 'string');

	assertAzureError(await fx.svc.delete('/registrations/mq-record', { headers: { 'If-Match': 'stale' } }), 412);
	res = await fx.svc.delete('/registrations/mq-record', { headers: { 'If-Match': res.json.etag } });
	assertDeleted(res);
	assertAzureError(await fx.svc.get('/registrations/mq-record'), 404);
	assertAzureError(await fx.svc.get('/registrations/never-registered'), 404);

	// After deleting its record the device registers afresh.
	assertAssigned(await fx.device({ cert: dev }), 'mq-record', { enrollmentGroupId: 'grp-root' });
	assert.equal((await fx.svc.get('/registrations/mq-record')).status, 200);
});

test('the registrations of a group are listed by POST /registrations/{groupId}/query', async () => {
	const ids = ['mq-list-1', 'mq-list-2', 'mq-list-3'];
	const r = await fx.certs.root('list-root');
	await fx.svc.createGroup(x509Group('grp-list', r.pem));
	for (const id of ids) {
		const dev = await fx.certs.device(id, { ca: r });
		assertAssigned(await fx.device({ cert: dev }), id, { enrollmentGroupId: 'grp-list' });
	}
	let res = await fx.svc.post('/registrations/grp-list/query', { query: '*' });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.headers['x-ms-item-type'], 'DeviceRegistration');
	assert.deepEqual(res.json.map((s) => s.registrationId).sort(), ids);
	assert.ok(res.json.every((s) => s.status === 'assigned'), res.text);

	// Paged: 2 + 1, the continuation only while more remains.
	res = await fx.svc.post('/registrations/grp-list/query', { query: '*' }, { headers: { 'x-ms-max-item-count': '2' } });
	assert.equal(res.json.length, 2, res.text);
	const token = res.headers['x-ms-continuation'];
	assert.ok(token, 'continuation on the first page');
	res = await fx.svc.post('/registrations/grp-list/query', { query: '*' }, {
		headers: { 'x-ms-max-item-count': '2', 'x-ms-continuation': token },
	});
	assert.equal(res.json.length, 1, res.text);
	assert.equal(res.headers['x-ms-continuation'], undefined);

	// A group with no registrations answers an empty list.
	await fx.svc.createGroup(x509Group('grp-empty', (await fx.certs.root('empty-root')).pem));
	res = await fx.svc.post('/registrations/grp-empty/query', { query: '*' });
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json, []);
});
