'use strict';
// State survives a restart on the same data dir: enrollments, groups, registration
// records, registered CAs and the TLS trust root.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { EXIT, describeRun } = require('../lib/dps-device');
const { x509Enrollment, x509Group, caReferenceGroup, assertDeleted } = require('../lib/service');

const fx = useDaemon();

test('enrollments, registrations and verified CAs survive a restart', async () => {
	const dev = await fx.certs.device('keep-self', { selfSigned: true });
	const root = await fx.certs.root('keep-root');
	const grpDev = await fx.certs.device('keep-grp-dev', { ca: root });
	const refCa = await fx.certs.root('keep-ref-ca');
	const refDev = await fx.certs.device('keep-ref-dev', { ca: refCa });

	const enrollment = await fx.svc.createEnrollment(x509Enrollment('keep-self', dev.pem));
	const group = await fx.svc.createGroup(x509Group('keep-grp', root.pem));
	await fx.svc.registerVerifiedCa('keep-ref-ca', refCa, fx.certs);
	await fx.svc.createGroup(caReferenceGroup('keep-ref-grp', 'keep-ref-ca'));
	for (const cert of [dev, grpDev, refDev]) {
		const run = await fx.device({ cert });
		assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	}
	const registration = (await fx.svc.get('/registrations/keep-grp-dev')).json;
	const trustRoot = fx.daemon.ca;

	await fx.daemon.restart();

	assert.equal(fx.daemon.ca, trustRoot, 'the TLS trust root is kept');
	let res = await fx.svc.get('/enrollments/keep-self');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.etag, enrollment.etag);
	assert.deepEqual(res.json.attestation, enrollment.attestation);
	res = await fx.svc.get('/enrollmentGroups/keep-grp');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.etag, group.etag);
	res = await fx.svc.get('/registrations/keep-grp-dev');
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json, registration);
	res = await fx.svc.get('/certificates/keep-ref-ca');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.properties.isVerified, true);

	// Devices still get in, with the same assignment.
	for (const cert of [dev, grpDev, refDev]) {
		const run = await fx.device({ cert });
		assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
		assert.equal(run.json.registrationState.deviceId, cert.cn);
	}
});

test('a deletion is persistent too', async () => {
	let res = await fx.svc.delete('/enrollments/keep-self');
	assertDeleted(res);
	res = await fx.svc.delete('/registrations/keep-grp-dev');
	assertDeleted(res);
	await fx.daemon.restart();
	assert.equal((await fx.svc.get('/enrollments/keep-self')).status, 404);
	assert.equal((await fx.svc.get('/registrations/keep-grp-dev')).status, 404);
	assert.equal((await fx.svc.get('/enrollmentGroups/keep-grp')).status, 200);
});
