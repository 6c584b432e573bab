'use strict';
// azure-iot-provisioning-service (ProvisioningServiceClient) against dpsemu, with the
// well-known connection string; only the trust root and the port are injected.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { provisioningServiceClient, sdkRegister } = require('../lib/sdk');
const { x509Enrollment, x509Group } = require('../lib/service');
const { HOSTNAME } = require('../lib/env');
const { withTimeout } = require('../lib/wait');

let svc;
let root;
const devs = {};

const fx = useDaemon({
	async setup() {
		svc = provisioningServiceClient(fx.daemon);
		root = await fx.certs.root('svc-root');
		for (const id of ['svc-dev-1', 'svc-q-1', 'svc-q-2', 'svc-q-3', 'svc-q-4', 'svc-q-5', 'svc-bulk-1', 'svc-bulk-2']) {
			devs[id] = await fx.certs.device(id, { selfSigned: true });
		}
	},
});

/** Asserts that promise rejects with an HTTP error of the given status. */
async function rejectsWithStatus(promise, status) {
	await assert.rejects(promise, (err) => {
		const got = err.response && err.response.statusCode;
		assert.equal(got, status, `${err.name}: ${err.message} (HTTP ${got})`);
		return true;
	});
}

// First, while the five svc-q-* enrollments are the only ones.
test('query with paging: 5 enrollments by 2, hasMoreResults turns false', async () => {
	for (const id of ['svc-q-1', 'svc-q-2', 'svc-q-3', 'svc-q-4', 'svc-q-5']) {
		await svc.createOrUpdateIndividualEnrollment(x509Enrollment(id, devs[id].pem));
	}
	const q = svc.createIndividualEnrollmentQuery({ query: '*' }, 2);
	const pages = [];
	// next() without an argument re-reads page 1: pass the continuation token.
	for (let i = 0; i < 10 && q.hasMoreResults; i++) {
		const r = await q.next(q.continuationToken);
		assert.equal(r.httpResponse.headers['x-ms-item-type'], 'Enrollment');
		pages.push(r.responseBody.map((e) => e.registrationId));
	}
	assert.equal(q.hasMoreResults, false, 'the query ends');
	assert.deepEqual(pages.map((p) => p.length), [2, 2, 1]);
	assert.deepEqual(pages.flat().sort(), ['svc-q-1', 'svc-q-2', 'svc-q-3', 'svc-q-4', 'svc-q-5']);
});

test('individual enrollment: create, get, update with etag, stale etag refused, delete', async () => {
	let r = await svc.createOrUpdateIndividualEnrollment(x509Enrollment('svc-dev-1', devs['svc-dev-1'].pem));
	const created = r.responseBody;
	assert.equal(created.registrationId, 'svc-dev-1');
	assert.equal(created.attestation.type, 'x509');
	assert.equal(created.attestation.x509.clientCertificates.primary.info.sha1Thumbprint.toUpperCase(),
		devs['svc-dev-1'].sha1);
	assert.ok(created.etag);

	r = await svc.getIndividualEnrollment('svc-dev-1');
	assert.equal(r.responseBody.etag, created.etag);

	// The SDK sends If-Match from the object's etag.
	const update = { ...r.responseBody, initialTwin: { tags: { floor: 3 } } };
	r = await svc.createOrUpdateIndividualEnrollment(update);
	assert.notEqual(r.responseBody.etag, created.etag);
	assert.deepEqual(r.responseBody.initialTwin.tags, { floor: 3 });
	await rejectsWithStatus(svc.createOrUpdateIndividualEnrollment({ ...update, etag: created.etag }), 412);
	// Without an etag, creating over an existing record conflicts.
	await rejectsWithStatus(svc.createOrUpdateIndividualEnrollment({ ...update, etag: undefined }), 409);

	await rejectsWithStatus(svc.deleteIndividualEnrollment('svc-dev-1', created.etag), 412);
	await svc.deleteIndividualEnrollment('svc-dev-1', r.responseBody.etag);
	await rejectsWithStatus(svc.getIndividualEnrollment('svc-dev-1'), 404);
});

test('enrollment group: create, get, update, attestation mechanism, delete', async () => {
	let r = await svc.createOrUpdateEnrollmentGroup(x509Group('svc-grp-1', root.pem));
	const created = r.responseBody;
	assert.equal(created.enrollmentGroupId, 'svc-grp-1');
	assert.equal(created.attestation.x509.signingCertificates.primary.info.sha256Thumbprint.toUpperCase(), root.sha256);

	r = await svc.getEnrollmentGroup('svc-grp-1');
	assert.equal(r.responseBody.etag, created.etag);
	r = await svc.createOrUpdateEnrollmentGroup({ ...r.responseBody, provisioningStatus: 'disabled' });
	assert.equal(r.responseBody.provisioningStatus, 'disabled');

	// The SDK asks for it at /enrollmentgroups/ (lower case).
	r = await svc.getEnrollmentGroupAttestationMechanism('svc-grp-1');
	assert.equal(r.responseBody.type, 'x509');
	assert.equal(r.responseBody.x509.signingCertificates.primary.info.sha1Thumbprint.toUpperCase(), root.sha1);

	await svc.deleteEnrollmentGroup('svc-grp-1');
	await rejectsWithStatus(svc.getEnrollmentGroup('svc-grp-1'), 404);
});

test('individual attestation mechanism', async () => {
	const r = await svc.getIndividualEnrollmentAttestationMechanism('svc-q-1');
	assert.equal(r.responseBody.type, 'x509');
	assert.equal(r.responseBody.x509.clientCertificates.primary.info.sha1Thumbprint.toUpperCase(), devs['svc-q-1'].sha1);
});

test('group query', async () => {
	await svc.createOrUpdateEnrollmentGroup(x509Group('svc-grp-q', root.pem));
	const q = svc.createEnrollmentGroupQuery({ query: 'SELECT * FROM enrollmentGroups' }, 10);
	const r = await q.next(q.continuationToken);
	assert.equal(q.hasMoreResults, false);
	assert.equal(r.httpResponse.headers['x-ms-item-type'], 'EnrollmentGroup');
	const ids = r.responseBody.map((g) => g.enrollmentGroupId);
	assert.ok(ids.includes('svc-grp-q'), `svc-grp-q listed: ${ids}`);
	assert.ok(!ids.includes('svc-grp-1'), 'the deleted group is gone');
});

test('bulk enrollment operation', async () => {
	const op = {
		mode: 'create',
		enrollments: ['svc-bulk-1', 'svc-bulk-2'].map((id) => x509Enrollment(id, devs[id].pem)),
	};
	// The SDK's promise form of runBulkEnrollmentOperation never settles (it only calls
	// back when given a callback), so use the callback form.
	const result = await withTimeout(new Promise((resolve, reject) => {
		svc.runBulkEnrollmentOperation(op, (err, body) => (err ? reject(err) : resolve(body)));
	}), 10000, 'runBulkEnrollmentOperation');
	assert.equal(result.isSuccessful, true, JSON.stringify(result));
	assert.equal((await svc.getIndividualEnrollment('svc-bulk-2')).responseBody.registrationId, 'svc-bulk-2');
});

test('device registration state: get, group query, delete', async () => {
	// svc-grp-q (root) lets in devices issued by root; the device SDK registers one.
	const dev = await fx.certs.device('svc-reg-1', { ca: root });
	const state = await sdkRegister(fx.daemon, { transport: 'mqtt', registrationId: 'svc-reg-1', cert: dev.pem, key: dev.key });
	assert.equal(state.assignedHub, HOSTNAME);

	let r = await svc.getDeviceRegistrationState('svc-reg-1');
	assert.equal(r.responseBody.registrationId, 'svc-reg-1');
	assert.equal(r.responseBody.status, 'assigned');
	assert.equal(r.responseBody.assignedHub, HOSTNAME);
	assert.equal(r.responseBody.deviceId, 'svc-reg-1');

	const q = svc.createEnrollmentGroupDeviceRegistrationStateQuery({ query: '*' }, 'svc-grp-q', 10);
	r = await q.next(q.continuationToken);
	assert.equal(r.httpResponse.headers['x-ms-item-type'], 'DeviceRegistration');
	assert.deepEqual(r.responseBody.map((s) => s.registrationId), ['svc-reg-1']);

	await svc.deleteDeviceRegistrationState('svc-reg-1');
	await rejectsWithStatus(svc.getDeviceRegistrationState('svc-reg-1'), 404);
});

test('a client with the wrong key is refused with 401', async () => {
	const bad = provisioningServiceClient(fx.daemon,
		`HostName=localhost;SharedAccessKeyName=provisioningserviceowner;SharedAccessKey=${Buffer.alloc(32, 1).toString('base64')}`);
	await rejectsWithStatus(bad.getIndividualEnrollment('svc-q-1'), 401);
});
