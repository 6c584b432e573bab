'use strict';
// CA registration with proof of possession (/certificates), and enrollment groups that
// reference a registered CA: only a verified CA lets devices in.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { EXIT, describeRun } = require('../lib/dps-device');
const { caReferenceGroup, assertAzureError, TIMESTAMP_RE, assertDeleted } = require('../lib/service');
const { HOSTNAME } = require('../lib/env');

let ca; // the CA whose possession is proven
let other; // an unrelated CA (wrong signer)

const fx = useDaemon({
	async setup() {
		ca = await fx.certs.root('pop-ca', { cn: 'PoP Test CA' });
		other = await fx.certs.root('pop-other', { cn: 'Other CA' });
	},
});

function assertCertificateResource(json, name, cert) {
	assert.equal(json.name, name);
	assert.equal(typeof json.etag, 'string');
	const p = json.properties;
	assert.ok(p, 'properties');
	assert.match(p.subject, new RegExp(cert.cn));
	assert.ok([cert.sha1, cert.sha256].includes(String(p.thumbprint).toUpperCase()),
		`thumbprint ${p.thumbprint} is the certificate's SHA-1 or SHA-256`);
	assert.equal(typeof p.isVerified, 'boolean');
	assert.ok(!Number.isNaN(Date.parse(p.expiry)), `expiry ${p.expiry}`);
	assert.ok(!Number.isNaN(Date.parse(p.created)), `created ${p.created}`);
	assert.ok(!Number.isNaN(Date.parse(p.updated)), `updated ${p.updated}`);
	assert.equal(typeof p.certificate, 'string');
}

test('proof of possession: upload, verification code, wrong CN and wrong signer refused, then verified', async () => {
	let res = await fx.svc.put('/certificates/pop-ca', { certificate: ca.pem });
	assert.equal(res.status, 200, describe(res));
	assertCertificateResource(res.json, 'pop-ca', ca);
	assert.equal(res.json.properties.isVerified, false);

	res = await fx.svc.get('/certificates/pop-ca');
	assert.equal(res.status, 200, describe(res));
	assertCertificateResource(res.json, 'pop-ca', ca);

	res = await fx.svc.post('/certificates/pop-ca/generateVerificationCode', {});
	assert.equal(res.status, 200, describe(res));
	const code = res.json.properties.verificationCode;
	assert.equal(typeof code, 'string');
	assert.ok(code.length >= 8, `verification code '${code}' is not trivially short`);

	const wrongCn = await fx.certs.verification('pop-wrong-cn', { code: `${code}x`, ca });
	assertAzureError(await fx.svc.post('/certificates/pop-ca/verify', { certificate: wrongCn.pem }), 400);
	const wrongSigner = await fx.certs.verification('pop-wrong-signer', { code, ca: other });
	assertAzureError(await fx.svc.post('/certificates/pop-ca/verify', { certificate: wrongSigner.pem }), 400);
	assertAzureError(await fx.svc.post('/certificates/pop-ca/verify', { certificate: 'garbage' }), 400);
	res = await fx.svc.get('/certificates/pop-ca');
	assert.equal(res.json.properties.isVerified, false, 'failed proofs leave the CA unverified');

	const proof = await fx.certs.verification('pop-proof', { code, ca });
	res = await fx.svc.post('/certificates/pop-ca/verify', { certificate: proof.pem });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.properties.isVerified, true);
	res = await fx.svc.get('/certificates/pop-ca');
	assert.equal(res.json.properties.isVerified, true);
});

test('the ARM body shape {"properties":{"certificate":...}} is accepted', async () => {
	const res = await fx.svc.put('/certificates/arm-shaped', { properties: { certificate: other.pem } });
	assert.equal(res.status, 200, describe(res));
	assertCertificateResource(res.json, 'arm-shaped', other);
});

test('GET /certificates lists the registered CAs', async () => {
	const res = await fx.svc.get('/certificates');
	assert.equal(res.status, 200, describe(res));
	assert.ok(Array.isArray(res.json.value), res.text);
	const names = res.json.value.map((c) => c.name);
	assert.ok(names.includes('pop-ca'), `pop-ca listed: ${names}`);
	assert.ok(names.includes('arm-shaped'), `arm-shaped listed: ${names}`);
});

test('unknown certificate names give 404; a deleted CA is gone', async () => {
	assertAzureError(await fx.svc.get('/certificates/nope'), 404);
	assertAzureError(await fx.svc.post('/certificates/nope/generateVerificationCode', {}), 404);
	assertAzureError(await fx.svc.post('/certificates/nope/verify', { certificate: ca.pem }), 404);
	const res = await fx.svc.delete('/certificates/arm-shaped');
	assertDeleted(res);
	assertAzureError(await fx.svc.get('/certificates/arm-shaped'), 404);
});

test('an upload that is not a certificate is refused with 400', async () => {
	assertAzureError(await fx.svc.put('/certificates/junk', { certificate: 'junk' }), 400);
	assertAzureError(await fx.svc.put('/certificates/junk', { nothing: true }), 400);
	assertAzureError(await fx.svc.get('/certificates/junk'), 404);
});

test('a group on caReferences: device refused while the CA is unverified, assigned after verification', async () => {
	const groupCa = await fx.certs.root('ref-ca', { cn: 'Referenced CA' });
	const dev = await fx.certs.device('ref-dev-1', { ca: groupCa });
	let res = await fx.svc.put('/certificates/ref-ca', { certificate: groupCa.pem });
	assert.equal(res.status, 200, describe(res));
	await fx.svc.createGroup(caReferenceGroup('ref-grp', 'ref-ca'));

	let run = await fx.device({ cert: dev });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	assert.equal(run.json.errorCode, 401002, describeRun(run));

	res = await fx.svc.post('/certificates/ref-ca/generateVerificationCode', {});
	assert.equal(res.status, 200, describe(res));
	const proof = await fx.certs.verification('ref-proof', { code: res.json.properties.verificationCode, ca: groupCa });
	res = await fx.svc.post('/certificates/ref-ca/verify', { certificate: proof.pem });
	assert.equal(res.status, 200, describe(res));

	run = await fx.device({ cert: dev });
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	const state = run.json.registrationState;
	assert.equal(state.assignedHub, HOSTNAME);
	assert.equal(state.deviceId, 'ref-dev-1');
	assert.deepEqual(state.x509, { enrollmentGroupId: 'ref-grp' });
	assert.match(state.createdDateTimeUtc, TIMESTAMP_RE);
});

test('a group referencing a CA that does not exist lets nobody in', async () => {
	const lonelyCa = await fx.certs.root('lonely-ca');
	const dev = await fx.certs.device('lonely-dev', { ca: lonelyCa });
	const res = await fx.svc.put('/enrollmentGroups/lonely-grp', caReferenceGroup('lonely-grp', 'no-such-ca'));
	// Refusing the group up front is as good as refusing its devices later.
	if (res.status === 400) return assertAzureError(res, 400);
	assert.equal(res.status, 200, describe(res));
	const run = await fx.device({ cert: dev });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	assert.equal(run.json.errorCode, 401002, describeRun(run));
});

test('/certificates needs service authentication', async () => {
	assertAzureError(await fx.svc.get('/certificates', { auth: null }), 401);
	assertAzureError(await fx.svc.put('/certificates/x', { certificate: ca.pem }, { auth: null }), 401);
});
