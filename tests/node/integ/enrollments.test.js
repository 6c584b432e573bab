'use strict';
// Individual enrollments and enrollment groups through the raw service API: CRUD,
// ETag rules, validation, certificate info, case-insensitive paths.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { x509Enrollment, x509Group, assertAzureError, TIMESTAMP_RE, assertDeleted } = require('../lib/service');

let dev; // a self-signed device certificate
let root; // a root CA for the groups

const fx = useDaemon({
	async setup() {
		dev = await fx.certs.device('enr-dev-1', { selfSigned: true });
		root = await fx.certs.root('enr-root');
	},
});

function assertCertInfo(info, cert) {
	assert.ok(info, 'certificate info present');
	assert.match(info.subjectName, new RegExp(`CN=${cert.cn}`));
	assert.equal(info.sha1Thumbprint.toUpperCase(), cert.sha1);
	assert.equal(info.sha256Thumbprint.toUpperCase(), cert.sha256);
}

test('create, get, update with If-Match, delete an individual enrollment', async () => {
	const path = '/enrollments/enr-dev-1';
	let res = await fx.svc.put(path, x509Enrollment('enr-dev-1', dev.pem));
	assert.equal(res.status, 200, describe(res));
	assert.match(res.headers['content-type'], /^application\/json/);
	const created = res.json;
	assert.equal(created.registrationId, 'enr-dev-1');
	assert.equal(created.provisioningStatus, 'enabled');
	assert.equal(created.attestation.type, 'x509');
	assertCertInfo(created.attestation.x509.clientCertificates.primary.info, dev);
	assert.equal(typeof created.etag, 'string');
	assert.ok(created.etag.length > 0);
	assert.match(created.createdDateTimeUtc, TIMESTAMP_RE);
	assert.match(created.lastUpdatedDateTimeUtc, TIMESTAMP_RE);

	res = await fx.svc.get(path);
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.registrationId, 'enr-dev-1');
	assert.equal(res.json.etag, created.etag);
	assertCertInfo(res.json.attestation.x509.clientCertificates.primary.info, dev);

	// Update with the current ETag: accepted, the ETag changes.
	const update = x509Enrollment('enr-dev-1', dev.pem, { initialTwin: { tags: { site: 'lab' } } });
	res = await fx.svc.put(path, update, { headers: { 'If-Match': created.etag } });
	assert.equal(res.status, 200, describe(res));
	assert.notEqual(res.json.etag, created.etag, 'ETag changes on update');
	assert.deepEqual(res.json.initialTwin.tags, { site: 'lab' });
	const updated = res.json;

	res = await fx.svc.get(path);
	assert.equal(res.json.etag, updated.etag);
	assert.equal(res.json.createdDateTimeUtc, created.createdDateTimeUtc, 'creation time kept');

	res = await fx.svc.delete(path, { headers: { 'If-Match': updated.etag } });
	assertDeleted(res);
	assertAzureError(await fx.svc.get(path), 404);
	assertAzureError(await fx.svc.delete(path), 404);
});

test('ETag rules: 409 without If-Match on an existing record, 412 on a mismatch, * matches', async () => {
	const path = '/enrollments/enr-etag';
	const body = x509Enrollment('enr-etag', dev.pem);
	let res = await fx.svc.put(path, body);
	assert.equal(res.status, 200, describe(res));
	const etag = res.json.etag;

	assertAzureError(await fx.svc.put(path, body), 409);
	assertAzureError(await fx.svc.put(path, body, { headers: { 'If-Match': 'not-the-etag' } }), 412);
	res = await fx.svc.get(path);
	assert.equal(res.json.etag, etag, 'refused writes change nothing');

	res = await fx.svc.put(path, body, { headers: { 'If-Match': '*' } });
	assert.equal(res.status, 200, describe(res));
	const etag2 = res.json.etag;
	assert.notEqual(etag2, etag);

	// The old ETag is stale now.
	assertAzureError(await fx.svc.put(path, body, { headers: { 'If-Match': etag } }), 412);
	assertAzureError(await fx.svc.delete(path, { headers: { 'If-Match': etag } }), 412);
	assert.equal((await fx.svc.get(path)).status, 200, 'a refused DELETE keeps the record');
	res = await fx.svc.delete(path, { headers: { 'If-Match': '*' } });
	assertDeleted(res);
	assertAzureError(await fx.svc.get(path), 404);
});

test('DELETE without If-Match is unconditional', async () => {
	await fx.svc.createEnrollment(x509Enrollment('enr-del', dev.pem));
	const res = await fx.svc.delete('/enrollments/enr-del');
	assertDeleted(res);
	assertAzureError(await fx.svc.get('/enrollments/enr-del'), 404);
});

test('invalid JSON is refused with 400', async () => {
	for (const text of ['{"registrationId":', 'not json', '', '[]', '"a string"']) {
		const res = await fx.svc.put('/enrollments/enr-bad-json', text, {
			headers: { 'Content-Type': 'application/json' },
		});
		assertAzureError(res, 400);
	}
	assertAzureError(await fx.svc.get('/enrollments/enr-bad-json'), 404);
});

test('wrong field types are refused with 400', async () => {
	const good = x509Enrollment('enr-types', dev.pem);
	const cases = [
		{ ...good, attestation: 42 },
		{ ...good, attestation: { type: 7 } },
		{ ...good, provisioningStatus: true },
		{ ...good, provisioningStatus: 'sometimes' },
		{ ...good, registrationId: 12 },
		{ ...good, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: 5 } } } } },
		{ ...good, attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: 'not a certificate' } } } } },
		{ ...good, initialTwin: 'twin' },
		{ registrationId: 'enr-types' }, // no attestation
	];
	for (const body of cases) {
		const res = await fx.svc.put('/enrollments/enr-types', body);
		assert.equal(res.status, 400, `${JSON.stringify(body).slice(0, 200)} -> ${describe(res)}`);
		assertAzureError(res, 400);
	}
	assertAzureError(await fx.svc.get('/enrollments/enr-types'), 404);
});

test('invalid registration ids are refused with 400', async () => {
	// Azure allows alphanumerics and - . _ : up to 128 characters.
	for (const id of ['bad id!', 'semi;colon', 'x'.repeat(129)]) {
		const res = await fx.svc.put(`/enrollments/${encodeURIComponent(id)}`, x509Enrollment(id, dev.pem));
		assert.equal(res.status, 400, `id '${id.slice(0, 20)}': ${describe(res)}`);
		assertAzureError(res, 400);
	}
});

test('the attestation mechanism of an enrollment is readable', async () => {
	await fx.svc.createEnrollment(x509Enrollment('enr-att', dev.pem));
	const res = await fx.svc.post('/enrollments/enr-att/attestationmechanism', undefined);
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.type, 'x509');
	assertCertInfo(res.json.x509.clientCertificates.primary.info, dev);
	assertAzureError(await fx.svc.post('/enrollments/nobody/attestationmechanism', undefined), 404);
});

test('enrollment groups: create, get, update with If-Match, delete; path case does not matter', async () => {
	let res = await fx.svc.put('/enrollmentGroups/grp-a', x509Group('grp-a', root.pem));
	assert.equal(res.status, 200, describe(res));
	const created = res.json;
	assert.equal(created.enrollmentGroupId, 'grp-a');
	assertCertInfo(created.attestation.x509.signingCertificates.primary.info, root);
	assertAzureError(await fx.svc.put('/enrollmentGroups/grp-a', x509Group('grp-a', root.pem)), 409);

	// The Node SDK uses /enrollmentgroups/ for the attestation mechanism.
	res = await fx.svc.get('/enrollmentgroups/grp-a');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.etag, created.etag);
	res = await fx.svc.get('/ENROLLMENTGROUPS/grp-a');
	assert.equal(res.status, 200, describe(res));
	res = await fx.svc.post('/enrollmentgroups/grp-a/attestationmechanism', undefined);
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.type, 'x509');
	assertCertInfo(res.json.x509.signingCertificates.primary.info, root);

	const update = x509Group('grp-a', root.pem, { provisioningStatus: 'disabled' });
	assertAzureError(await fx.svc.put('/enrollmentgroups/grp-a', update, { headers: { 'If-Match': 'stale' } }), 412);
	res = await fx.svc.put('/enrollmentgroups/grp-a', update, { headers: { 'If-Match': created.etag } });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.provisioningStatus, 'disabled');

	res = await fx.svc.delete('/EnrollmentGroups/grp-a');
	assertDeleted(res);
	assertAzureError(await fx.svc.get('/enrollmentGroups/grp-a'), 404);
});

test('groups validate their input too', async () => {
	const good = x509Group('grp-bad', root.pem);
	assertAzureError(await fx.svc.put('/enrollmentGroups/grp-bad', '{', {
		headers: { 'Content-Type': 'application/json' },
	}), 400);
	assertAzureError(await fx.svc.put('/enrollmentGroups/grp-bad', { ...good, attestation: 'x' }), 400);
	assertAzureError(await fx.svc.put(`/enrollmentGroups/${encodeURIComponent('bad id!')}`,
		x509Group('bad id!', root.pem)), 400);
	assertAzureError(await fx.svc.get('/enrollmentGroups/grp-bad'), 404);
});

test('the individual enrollment path is case-insensitive too', async () => {
	await fx.svc.createEnrollment(x509Enrollment('enr-case', dev.pem));
	const res = await fx.svc.get('/Enrollments/enr-case');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.registrationId, 'enr-case');
});
