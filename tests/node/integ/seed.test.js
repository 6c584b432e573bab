'use strict';
// Seed files (DPSEMU_ENROLLMENTS_DIR): enrollments in the service-API shape, loaded at
// start; a certificate field may name a PEM file relative to the JSON file. SIGHUP
// reloads the directory.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { EXIT, describeRun } = require('../lib/dps-device');
const { waitFor } = require('../lib/wait');

let seedDir;
const certs = {};

/** Writes one seed file (an enrollment in the service-API shape) into seedDir. */
function writeSeed(file, enrollment) {
	fs.writeFileSync(path.join(seedDir, file), JSON.stringify(enrollment, null, 2));
}

/** Copies the device's PEM into seedDir/certs and returns an enrollment naming it relatively. */
function seedEnrollment(registrationId) {
	const rel = path.join('certs', `${registrationId}.pem`);
	fs.copyFileSync(certs[registrationId].certPath, path.join(seedDir, rel));
	return {
		registrationId,
		attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: rel } } } },
		provisioningStatus: 'enabled',
	};
}

const fx = useDaemon({
	async beforeStart(f) {
		seedDir = path.join(f.dir, 'seed');
		fs.mkdirSync(path.join(seedDir, 'certs'), { recursive: true });
		certs['seed-dev-1'] = await f.certs.device('seed-dev-1', { selfSigned: true });
		certs['seed-dev-2'] = await f.certs.device('seed-dev-2', { selfSigned: true });
		// An inline PEM works too.
		certs['seed-inline'] = await f.certs.device('seed-inline', { selfSigned: true });
		writeSeed('seed-dev-1.json', seedEnrollment('seed-dev-1'));
		writeSeed('seed-inline.json', {
			registrationId: 'seed-inline',
			attestation: {
				type: 'x509',
				x509: { clientCertificates: { primary: { certificate: certs['seed-inline'].pem } } },
			},
		});
		return { DPSEMU_ENROLLMENTS_DIR: seedDir };
	},
});

test('seed files are loaded at start (relative PEM path and inline PEM)', async () => {
	for (const id of ['seed-dev-1', 'seed-inline']) {
		const res = await fx.svc.get(`/enrollments/${id}`);
		assert.equal(res.status, 200, describe(res));
		const info = res.json.attestation.x509.clientCertificates.primary.info;
		assert.equal(info.sha1Thumbprint.toUpperCase(), certs[id].sha1, `${id}: the certificate was read`);
		const run = await fx.device({ cert: certs[id] });
		assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	}
	assert.equal((await fx.svc.get('/enrollments/seed-dev-2')).status, 404, 'not seeded yet');
});

test('SIGHUP reloads the seed directory: a newly added file is picked up', async () => {
	writeSeed('seed-dev-2.json', seedEnrollment('seed-dev-2'));
	fx.daemon.signal('SIGHUP');
	await waitFor(async () => (await fx.svc.get('/enrollments/seed-dev-2')).status === 200, {
		timeoutMs: 10000,
		what: 'seed-dev-2 to appear after SIGHUP',
	});
	const run = await fx.device({ cert: certs['seed-dev-2'] });
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	// The earlier seeds are still there and the daemon is still healthy.
	assert.equal((await fx.svc.get('/enrollments/seed-dev-1')).status, 200);
});

test('a broken seed file does not take the daemon down on reload', async () => {
	fs.writeFileSync(path.join(seedDir, 'broken.json'), '{"registrationId": ');
	const mark = fx.daemon.mark();
	fx.daemon.signal('SIGHUP');
	// The log says which file is wrong.
	await fx.daemon.waitForLog(/broken\.json/, { since: mark, timeoutMs: 10000 });
	assert.ok(fx.daemon.running, 'still running');
	assert.equal((await fx.svc.get('/enrollments/seed-dev-2')).status, 200);
});
