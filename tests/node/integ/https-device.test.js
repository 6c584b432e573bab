'use strict';
// The DPS device API over raw HTTPS, with the X.509 identity in the TLS client
// certificate: register (202 + Retry-After), poll the operation, refusals (401 +
// x-ms-error-code), disabled enrollments.
const assert = require('node:assert/strict');
const https = require('node:https');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { request, describe } = require('../lib/https-client');
const { x509Enrollment, x509Group, assertAzureError, TIMESTAMP_RE } = require('../lib/service');
const { DEVICE_API_VERSION, HOSTNAME } = require('../lib/env');
const { sleep } = require('../lib/wait');

const MAX_POLLS = 50;
let root;
let inter; // group grp-http is on this intermediate
let inter2; // under a root that group grp-http-root is on

const fx = useDaemon({
	async setup() {
		root = await fx.certs.root('http-root');
		inter = await fx.certs.intermediate('http-inter', { ca: root });
		await fx.svc.createGroup(x509Group('grp-http', inter.pem));
		const root2 = await fx.certs.root('http-root2');
		inter2 = await fx.certs.intermediate('http-inter2', { ca: root2 });
		await fx.svc.createGroup(x509Group('grp-http-root', root2.pem));
	},
});

function deviceRequest(method, path, cert, opts = {}) {
	return request(fx.daemon.httpsPort, {
		agent: opts.agent,
		method,
		path: `/${fx.daemon.scope}/registrations/${path}?api-version=${DEVICE_API_VERSION}`,
		headers: { Accept: 'application/json', ...(opts.headers || {}) },
		body: opts.body,
		ca: fx.daemon.ca,
		cert: cert && (opts.leafOnly ? cert.pem : cert.chainPem),
		key: cert && cert.key,
	});
}

/** PUT .../register; asserts the 202 and returns the operation. */
async function register(cert, registrationId = cert.cn, agent = undefined) {
	const res = await deviceRequest('PUT', `${registrationId}/register`, cert, { body: { registrationId }, agent });
	assert.equal(res.status, 202, describe(res));
	assert.match(res.headers['content-type'], /^application\/json/);
	assert.equal(res.headers['retry-after'], '0', 'Retry-After as configured (DPSEMU_RETRY_AFTER=0)');
	assert.equal(typeof res.json.operationId, 'string');
	assert.ok(res.json.operationId.length > 0);
	assert.equal(res.json.status, 'assigning');
	if (res.headers.location !== undefined) {
		assert.match(res.headers.location, new RegExp(`/registrations/${registrationId}/`));
	}
	return res.json;
}

/** Polls the operation until a 200; returns the terminal body. Bounded by MAX_POLLS. */
async function pollUntilDone(cert, registrationId, operationId, agent = undefined) {
	for (let i = 0; i < MAX_POLLS; i++) {
		// The Node SDK sends "{}" with its GETs; the emulator must ignore it.
		const res = await deviceRequest('GET', `${registrationId}/operations/${operationId}`, cert, { body: {}, agent });
		assert.match(res.headers['content-type'] || '', /^application\/json/, describe(res));
		if (res.status === 200) {
			assert.equal(res.json.operationId, operationId);
			return res.json;
		}
		assert.equal(res.status, 202, describe(res));
		assert.equal(res.json.status, 'assigning');
		assert.ok(res.headers['retry-after'] !== undefined, 'Retry-After on every 202');
		await sleep(20);
	}
	throw new Error(`operation ${operationId} still pending after ${MAX_POLLS} polls`);
}

test('self-signed individual device: register, poll, assigned', async () => {
	const dev = await fx.certs.device('http-self-1', { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment('http-self-1', dev.pem));
	const op = await register(dev);
	const done = await pollUntilDone(dev, 'http-self-1', op.operationId);
	assert.equal(done.status, 'assigned');
	const s = done.registrationState;
	assert.equal(s.registrationId, 'http-self-1');
	assert.equal(s.assignedHub, HOSTNAME);
	assert.equal(s.deviceId, 'http-self-1');
	assert.equal(s.status, 'assigned');
	assert.equal(s.substatus, 'initialAssignment');
	assert.match(s.createdDateTimeUtc, TIMESTAMP_RE);
	assert.match(s.lastUpdatedDateTimeUtc, TIMESTAMP_RE);
	assert.equal(typeof s.etag, 'string');
	assert.deepEqual(s.x509, {});
});

test('group device on an intermediate, chain in the TLS handshake: assigned to the group', async () => {
	const dev = await fx.certs.device('http-grp-1', { ca: inter });
	const op = await register(dev);
	const done = await pollUntilDone(dev, 'http-grp-1', op.operationId);
	assert.equal(done.status, 'assigned');
	assert.deepEqual(done.registrationState.x509, { enrollmentGroupId: 'grp-http' });
	// The record is shared with the service API.
	const res = await fx.svc.get('/registrations/http-grp-1');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.assignedHub, HOSTNAME);
});

test('a client that resumes TLS sessions (as node\'s https.Agent does) keeps its chain', async () => {
	// The Node SDK polls on a new connection of the same agent, which offers to resume the
	// TLS session; a resumed session must not lose the device's intermediates.
	const dev = await fx.certs.device('http-resume', { ca: inter2 });
	const agent = new https.Agent({ keepAlive: false, maxCachedSessions: 10 });
	try {
		const op = await register(dev, 'http-resume', agent);
		const done = await pollUntilDone(dev, 'http-resume', op.operationId, agent);
		assert.equal(done.status, 'assigned');
		assert.deepEqual(done.registrationState.x509, { enrollmentGroupId: 'grp-http-root' });
	} finally {
		agent.destroy();
	}
});

test('register accepts the forceRegistration query the SDKs may add', async () => {
	const dev = await fx.certs.device('http-grp-2', { ca: inter });
	const res = await request(fx.daemon.httpsPort, {
		method: 'PUT',
		path: `/${fx.daemon.scope}/registrations/http-grp-2/register?api-version=${DEVICE_API_VERSION}&forceRegistration=true`,
		body: { registrationId: 'http-grp-2' },
		ca: fx.daemon.ca,
		cert: dev.chainPem,
		key: dev.key,
	});
	assert.equal(res.status, 202, describe(res));
	const done = await pollUntilDone(dev, 'http-grp-2', res.json.operationId);
	assert.equal(done.status, 'assigned');
});

test('refusal: wrong CN -> 401 with x-ms-error-code 401002 and an Azure error body', async () => {
	const dev = await fx.certs.device('http-cn', { ca: inter, cn: 'http-not-me' });
	const res = await deviceRequest('PUT', 'http-cn/register', dev, { body: { registrationId: 'http-cn' } });
	assertAzureError(res, 401, 401002);
	assert.equal(res.headers['x-ms-error-code'], '401002');
});

test('refusal: no client certificate -> 401 401002', async () => {
	const res = await deviceRequest('PUT', 'http-nocert/register', null, { body: { registrationId: 'http-nocert' } });
	assertAzureError(res, 401, 401002);
	assert.equal(res.headers['x-ms-error-code'], '401002');
});

test('refusal: group on the root, chain without the intermediate -> 401 401002', async () => {
	const dev = await fx.certs.device('http-leaf-only', { ca: inter2 });
	const res = await deviceRequest('PUT', 'http-leaf-only/register', dev, {
		body: { registrationId: 'http-leaf-only' },
		leafOnly: true,
	});
	assertAzureError(res, 401, 401002);
	assert.equal(res.headers['x-ms-error-code'], '401002');
	// Positive control: with the intermediate in the handshake it is let in.
	const op = await register(dev);
	const done = await pollUntilDone(dev, 'http-leaf-only', op.operationId);
	assert.deepEqual(done.registrationState.x509, { enrollmentGroupId: 'grp-http-root' });
});

test('refusal: unknown registration -> 401 401002', async () => {
	const dev = await fx.certs.device('http-unknown', { selfSigned: true });
	const res = await deviceRequest('PUT', 'http-unknown/register', dev, { body: { registrationId: 'http-unknown' } });
	assertAzureError(res, 401, 401002);
	assert.equal(res.headers['x-ms-error-code'], '401002');
});

test('polling another device\'s operation is refused', async () => {
	const a = await fx.certs.device('http-owner', { ca: inter });
	const b = await fx.certs.device('http-snoop', { ca: inter });
	const op = await register(a);
	await pollUntilDone(a, 'http-owner', op.operationId);
	// b authenticates fine but asks about a's registration path.
	const res = await deviceRequest('GET', `http-owner/operations/${op.operationId}`, b);
	assert.equal(res.status, 401, describe(res));
});

test('disabled enrollment: register answers 202, the poll gives the terminal disabled', async () => {
	const dev = await fx.certs.device('http-disabled', { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment('http-disabled', dev.pem, { provisioningStatus: 'disabled' }));
	const op = await register(dev);
	const done = await pollUntilDone(dev, 'http-disabled', op.operationId);
	assert.equal(done.status, 'disabled');
});
