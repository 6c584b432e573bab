'use strict';
// Devices DPS must refuse over MQTT, each with a protocol answer (never a timeout):
// a 401 response with errorCode 401002, or CONNACK 5 without a client certificate.
// The daemon's log names the registration for every refusal.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { EXIT, describeRun } = require('../lib/dps-device');
const { x509Enrollment, x509Group, UUID_RE, TIMESTAMP_RE } = require('../lib/service');

let root;
let inter;
const REFUSAL = '(refus|reject|denied|unauthori[sz]ed|401)';

const fx = useDaemon({
	async setup() {
		root = await fx.certs.root('ref-root');
		inter = await fx.certs.intermediate('ref-inter', { ca: root });
		await fx.svc.createGroup(x509Group('grp-refusals-root', root.pem));
	},
});

/** Asserts the run ended with a 401 response carrying Azure's error body. */
async function assertRefused(run, registrationId) {
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	const body = run.json;
	assert.ok(body, `the error body is printed as JSON\n${describeRun(run)}`);
	assert.equal(body.errorCode, 401002, describeRun(run));
	assert.match(String(body.trackingId), UUID_RE);
	assert.equal(typeof body.message, 'string');
	assert.ok(body.message.length > 0, 'the message gives a reason');
	assert.match(String(body.timestampUtc), TIMESTAMP_RE);
	assert.match(run.stderr, /server answered 401/);
	// One log line names the registration and says it was refused: tell developers why.
	const id = registrationId.replace(/[-.]/g, '\\$&');
	await fx.daemon.waitForLog(new RegExp(`(${id}.*${REFUSAL})|(${REFUSAL}.*${id})`, 'i'), { since: fx.mark });
}

test('leaf CN differs from the registration id', async () => {
	const dev = await fx.certs.device('rf-cn-actual', { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment('rf-cn-claimed', dev.pem));
	// The certificate is the enrolled one, but it says another name.
	await assertRefused(await fx.device({ cert: dev, registrationId: 'rf-cn-claimed' }), 'rf-cn-claimed');
});

test('leaf CN differs from the registration id for a group device', async () => {
	const dev = await fx.certs.device('rf-grp-cn', { ca: root, cn: 'rf-grp-someone-else' });
	await assertRefused(await fx.device({ cert: dev, registrationId: 'rf-grp-cn' }), 'rf-grp-cn');
});

test('an expired individual certificate', async () => {
	const dev = await fx.certs.device('rf-expired', { selfSigned: true, startOffsetDays: -10, days: 1 });
	await fx.svc.createEnrollment(x509Enrollment('rf-expired', dev.pem));
	await assertRefused(await fx.device({ cert: dev }), 'rf-expired');
});

test('an expired leaf under an enrolled root', async () => {
	const dev = await fx.certs.device('rf-grp-expired', { ca: root, startOffsetDays: -10, days: 1 });
	await assertRefused(await fx.device({ cert: dev }), 'rf-grp-expired');
});

test('a leaf that is not valid yet', async () => {
	const dev = await fx.certs.device('rf-future', { ca: root, startOffsetDays: 5 });
	await assertRefused(await fx.device({ cert: dev }), 'rf-future');
});

test('the chain misses the intermediate while the group is on the root', async () => {
	const dev = await fx.certs.device('rf-no-inter', { ca: inter });
	await assertRefused(await fx.device({ cert: dev, chain: false }), 'rf-no-inter');
	// Positive control: the same device with its chain is let in.
	const run = await fx.device({ cert: dev });
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	assert.deepEqual(run.json.registrationState.x509, { enrollmentGroupId: 'grp-refusals-root' });
});

test('an unknown registration id (no enrollment, no group)', async () => {
	const dev = await fx.certs.device('rf-unknown', { selfSigned: true });
	await assertRefused(await fx.device({ cert: dev }), 'rf-unknown');
});

test('a device signed by a CA that no group trusts', async () => {
	const stranger = await fx.certs.root('rf-stranger-root');
	const dev = await fx.certs.device('rf-stranger', { ca: stranger });
	await assertRefused(await fx.device({ cert: dev }), 'rf-stranger');
});

test('a self-signed device whose enrollment holds another certificate', async () => {
	const enrolled = await fx.certs.device('rf-swap-enrolled', { selfSigned: true, cn: 'rf-swap' });
	const presented = await fx.certs.device('rf-swap', { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment('rf-swap', enrolled.pem));
	await assertRefused(await fx.device({ cert: presented }), 'rf-swap');
});

test('a leaf issued by a look-alike root (same name as the enrolled root, other key)', async () => {
	const fake = await fx.certs.root('rf-fake-root', { cn: root.cn });
	assert.equal(fake.x509.subject, root.x509.subject, 'the look-alike has the same subject');
	const forged = await fx.certs.device('rf-forged', { ca: fake });
	assert.equal(forged.x509.issuer, root.x509.subject);
	await assertRefused(await fx.device({ cert: forged, chain: false }), 'rf-forged');
});

test('no client certificate: CONNACK 5', async () => {
	const run = await fx.device({ registrationId: 'rf-no-cert' });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	assert.match(run.stderr, /connection refused: 5\b/, describeRun(run));
	assert.equal(run.json, undefined, 'nothing on stdout');
});

test('a wrong ID scope is refused', async () => {
	const dev = await fx.certs.device('rf-scope', { ca: root });
	const run = await fx.device({ cert: dev, scope: '0ne99999999' });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	// Either at CONNECT or on the register request; never assigned, never a timeout.
	if (run.json) assert.equal(Math.floor(run.json.errorCode / 100000), 4, describeRun(run));
	else assert.match(run.stderr, /connection refused: [1-5]\b/, describeRun(run));
});
