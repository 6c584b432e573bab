'use strict';
// Certificate issuance on first boot: a device that holds only a bootstrap certificate
// sends a CSR with its registration (api-version 2025-07-01-preview) and gets its
// operational certificate, [leaf, issuing CA, root], over MQTT (the C device,
// dps-device --csr-key-type) and over raw HTTPS. The chain verifies against the
// published issuing chain, the leaf carries the documented profile and the CSR's key,
// renewal issues a new serial, every issued certificate is listed, each refusal has its
// code and issues nothing, and the issued certificate (not the bootstrap one) connects
// to the hub, where its telemetry is kept.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { Daemon } = require('../lib/daemon');
const { describe } = require('../lib/https-client');
const { mqttConnect, TYPE } = require('../lib/mqtt-raw');
const { x509Group, x509Enrollment, assertAzureError, TIMESTAMP_RE } = require('../lib/service');
const { HOSTNAME } = require('../lib/env');
const {
	CSR_API_VERSION,
	EXIT,
	makeCsr,
	generateKey,
	spkiOfKey,
	spkiOfCert,
	keyIdentifier,
	pemOfDer,
	splitPem,
	decodeChain,
	thumbprints,
	certExtensions,
	opensslVerify,
	httpsRegister,
	mqttRegister,
	runFirstBoot,
	describeRun,
	issuedList,
	hubDevice,
	hubTelemetry,
	hubUsername,
	mqttjsHubConnect,
	mqttjsPublish,
	mqttjsEnd,
} = require('../lib/issuance');

const DEFAULT_VALIDITY_S = 30 * 86400; // the "default" policy
const SHORT_VALIDITY_S = 120; // "short=2m" below
const BACKDATE_S = 300; // notBefore = issuance - 5 minutes
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const CSR_MAX_B64 = 8192;
const GRP_ISSUE = Object.freeze({ enrollmentGroupId: 'grp-issue' });

let factory; // bootstrap intermediate: group grp-issue (policy "default") is on it
let shortRoot; // group grp-short (policy "short")
let plainRoot; // group grp-plain (no policy)
let offRoot; // group grp-off (policy "default", disabled)
let issuing; // the published issuing CA: { pem, x509, path }
let root; // its root: { pem, x509, path }
let csrDir;

const fx = useDaemon({
	env: { DPSEMU_CREDENTIAL_POLICIES: 'short=2m' },
	async setup() {
		const bootRoot = await fx.certs.root('boot-root');
		factory = await fx.certs.intermediate('boot-factory', { ca: bootRoot });
		const grp = await fx.svc.createGroup(x509Group('grp-issue', factory.pem,
			{ credentialPolicyName: 'default' }));
		assert.equal(grp.credentialPolicyName, 'default', 'the group keeps its credential policy');
		shortRoot = await fx.certs.root('short-root');
		await fx.svc.createGroup(x509Group('grp-short', shortRoot.pem, { credentialPolicyName: 'short' }));
		plainRoot = await fx.certs.root('plain-root');
		await fx.svc.createGroup(x509Group('grp-plain', plainRoot.pem));
		offRoot = await fx.certs.root('off-root');
		await fx.svc.createGroup(x509Group('grp-off', offRoot.pem,
			{ credentialPolicyName: 'default', provisioningStatus: 'disabled' }));

		// The published issuing chain, split into the files openssl verify takes.
		const chainPath = path.join(fx.daemon.dataDir, 'certs', 'device-ca-chain.pem');
		const pems = splitPem(fs.readFileSync(chainPath, 'utf8'));
		assert.equal(pems.length, 2, `${chainPath} holds the issuing CA and its root`);
		const dir = path.join(fx.dir, 'published');
		fs.mkdirSync(dir);
		issuing = { pem: pems[0], x509: new crypto.X509Certificate(pems[0]), path: path.join(dir, 'issuing.pem') };
		root = { pem: pems[1], x509: new crypto.X509Certificate(pems[1]), path: path.join(dir, 'root.pem') };
		fs.writeFileSync(issuing.path, issuing.pem);
		fs.writeFileSync(root.path, root.pem);
		csrDir = path.join(fx.dir, 'csr');
	},
});

/** A bootstrap certificate under the factory intermediate (group grp-issue). */
function bootstrap(name, ca = factory) {
	return fx.certs.device(name, { ca });
}

/** A CSR made for these tests (see makeCsr), as the base64 a register body carries. */
async function csrB64(name, cn, opts) {
	return (await makeCsr(csrDir, name, cn, opts)).b64;
}

function b64(data) {
	return Buffer.from(data).toString('base64');
}

/** The hub's log line refusing deviceId since mark, or a note that there is none. */
function hubRefusal(deviceId, mark) {
	return fx.daemon.waitForLog(new RegExp(`device '${deviceId}' from .* refused`), { since: mark, timeoutMs: 2000 })
		.catch(() => '(no refusal in the daemon log)');
}

function outDir(name) {
	return path.join(fx.dir, 'devices', name);
}

/** Seconds since the epoch of an X509Certificate date string. */
function epoch(text) {
	const ms = Date.parse(text);
	assert.ok(Number.isFinite(ms), `date ${text}`);
	return ms / 1000;
}

function sameSerial(a, b) {
	return BigInt(`0x${a}`) === BigInt(`0x${b}`);
}

/**
 * Asserts an assigned answer that carries an issued certificate, and returns
 * { leaf, chain, state }. want: registrationId, deviceId (default registrationId),
 * enrollment (the registrationState.x509 expected), spki (the CSR's public key, DER),
 * validityS, rsa (keyEncipherment expected), since (unix seconds before the request).
 */
async function assertIssued(final, want) {
	const until = Date.now() / 1000;
	assert.equal(final.status, 'assigned', JSON.stringify(final));
	const state = final.registrationState;
	assert.equal(state.status, 'assigned');
	assert.equal(state.registrationId, want.registrationId);
	assert.equal(state.deviceId, want.deviceId || want.registrationId);
	assert.equal(state.assignedHub, HOSTNAME);
	assert.deepEqual(state.x509, want.enrollment);

	// Exactly [leaf, issuing CA, root]: the published CA and root, each the issuer of the previous.
	const chain = decodeChain(state.issuedCertificateChain);
	assert.equal(chain.length, 3, 'issuedCertificateChain is [leaf, issuing CA, root]');
	const [leaf, ca, top] = chain;
	assert.ok(ca.x509.raw.equals(issuing.x509.raw), 'chain[1] is the published issuing CA');
	assert.ok(top.x509.raw.equals(root.x509.raw), 'chain[2] is the published root');
	assert.ok(leaf.x509.checkIssued(ca.x509) && leaf.x509.verify(ca.x509.publicKey), 'leaf signed by the issuing CA');
	assert.ok(ca.x509.checkIssued(top.x509) && ca.x509.verify(top.x509.publicKey), 'issuing CA signed by the root');
	assert.ok(top.x509.checkIssued(top.x509) && top.x509.verify(top.x509.publicKey), 'the root is self-signed');

	// openssl agrees, for a TLS client.
	const leafPath = path.join(fx.dir, `leaf-${leaf.x509.serialNumber}.pem`);
	fs.writeFileSync(leafPath, leaf.pem);
	const v = await opensslVerify(root.path, issuing.path, leafPath, ['-purpose', 'sslclient']);
	assert.equal(v.code, 0, `openssl verify: ${v.stdout}${v.stderr}`);
	assert.equal(v.stdout.trim(), `${leafPath}: OK`);

	// The profile.
	const x = leaf.x509;
	assert.equal(x.subject, `CN=${want.registrationId}`, 'subject is only CN = registration id');
	assert.equal(x.issuer, issuing.x509.subject);
	assert.equal(x.ca, false);
	assert.deepEqual(x.keyUsage, [CLIENT_AUTH_OID], 'extended key usage: clientAuth only');
	const ext = await certExtensions(leaf.pem);
	assert.deepEqual(ext.basicConstraints, { critical: true, text: 'CA:FALSE' });
	assert.deepEqual(ext.keyUsage, {
		critical: true,
		text: want.rsa ? 'Digital Signature, Key Encipherment' : 'Digital Signature',
	});
	assert.equal(ext.extendedKeyUsage.text, 'TLS Web Client Authentication');
	assert.equal(ext.ski.text, keyIdentifier(spkiOfCert(x)), 'subjectKeyIdentifier: SHA-1 of the key');
	const caExt = await certExtensions(issuing.pem);
	assert.equal(ext.aki.text, caExt.ski.text, 'authorityKeyIdentifier is the issuing CA\'s key id');
	assert.match(x.serialNumber, /^[0-7][0-9A-F]{31}$/i, 'a positive 128-bit serial');
	assert.ok(spkiOfCert(x).equals(want.spki), 'the leaf carries the CSR\'s public key');

	// Validity: the policy's, from the moment of issuance (backdated for clock skew).
	const nb = epoch(x.validFrom);
	const na = epoch(x.validTo);
	assert.ok(Math.abs(na - nb - (want.validityS + BACKDATE_S)) <= 1,
		`validity ${na - nb} s, expected ${want.validityS} s + ${BACKDATE_S} s backdating`);
	assert.ok(na >= Math.floor(want.since) + want.validityS - 1 && na <= Math.ceil(until) + want.validityS + 1,
		`notAfter ${x.validTo} is ${want.validityS} s after the registration`);

	// The registration state describes the certificate.
	const info = state.issuedCertificate;
	const tp = thumbprints(x);
	assert.ok(info, 'registrationState.issuedCertificate');
	assert.equal(info.sha256Thumbprint, tp.sha256);
	assert.equal(info.sha1Thumbprint, tp.sha1);
	assert.ok(sameSerial(info.serialNumber, x.serialNumber), `serial ${info.serialNumber}`);
	assert.equal(Date.parse(info.notAfterUtc) / 1000, na);
	assert.equal(Date.parse(info.notBeforeUtc) / 1000, nb);
	assert.match(info.subjectName, new RegExp(`CN=${want.registrationId}`));
	return { leaf, chain, state };
}

/**
 * Asserts the listing's record for leaf. want: registrationId, deviceId,
 * enrollmentGroupId or enrollmentId, policy, spki.
 */
function assertRecord(records, leaf, want) {
	const rec = records.find((r) => sameSerial(r.serialNumber, leaf.x509.serialNumber));
	assert.ok(rec, `a record for serial ${leaf.x509.serialNumber} in ${JSON.stringify(records)}`);
	const tp = thumbprints(leaf.x509);
	assert.equal(rec.registrationId, want.registrationId);
	assert.equal(rec.deviceId, want.deviceId || want.registrationId);
	if (want.enrollmentGroupId) assert.equal(rec.enrollmentGroupId, want.enrollmentGroupId);
	if (want.enrollmentId) assert.equal(rec.enrollmentId, want.enrollmentId);
	assert.equal(rec.credentialPolicyName, want.policy);
	assert.equal(rec.sha256Thumbprint, tp.sha256);
	assert.equal(rec.sha1Thumbprint, tp.sha1);
	assert.equal(Date.parse(rec.notAfterUtc), Date.parse(leaf.x509.validTo));
	assert.equal(Date.parse(rec.notBeforeUtc), Date.parse(leaf.x509.validFrom));
	assert.equal(rec.publicKeySha256, crypto.createHash('sha256').update(want.spki).digest('hex').toUpperCase());
	assert.match(rec.issuedUtc, TIMESTAMP_RE);
	return rec;
}

/**
 * Runs the C device in first-boot mode (bootstrap certificate `cert`, or a new one under
 * the factory) and checks the answer and what it saved. Returns { run, issued, keyPem, dev }.
 */
async function firstBootMqtt(name, opts) {
	const { keyType, csr, hubCheck = true, message, cert } = opts;
	const { validityS = DEFAULT_VALIDITY_S, enrollment = GRP_ISSUE } = opts;
	const dev = cert || await bootstrap(name);
	const dir = outDir(name);
	const since = Date.now() / 1000;
	const run = await runFirstBoot(fx.daemon,
		{ cert: dev, csrKeyType: keyType, csr, outDir: dir, hubCheck, message });
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	const keyPath = path.join(dir, 'device.key');
	assert.equal(fs.statSync(keyPath).mode & 0o777, 0o600, 'device.key is private to its owner');
	const keyPem = fs.readFileSync(keyPath, 'utf8');
	const issued = await assertIssued(run.json, {
		registrationId: dev.cn, enrollment, spki: spkiOfKey(keyPem), validityS, since, rsa: keyType === 'rsa2048',
	});
	// What the device kept: its key, its certificate, and the whole chain in order.
	const leafFile = splitPem(fs.readFileSync(path.join(dir, 'device.pem'), 'utf8'));
	assert.equal(leafFile.length, 1, 'device.pem holds the certificate alone');
	assert.ok(new crypto.X509Certificate(leafFile[0]).raw.equals(issued.leaf.der));
	const chainFile = splitPem(fs.readFileSync(path.join(dir, 'device-chain.pem'), 'utf8'));
	assert.deepEqual(chainFile.map((p) => new crypto.X509Certificate(p).raw.toString('base64')),
		issued.chain.map((c) => c.der.toString('base64')), 'device-chain.pem: leaf, issuing CA, root');
	const serial = issued.leaf.x509.serialNumber;
	assert.match(run.stderr, new RegExp(`issued certificate ${serial}, valid until \\S+, saved in ${dir}`, 'i'));
	return { run, issued, keyPem, dev };
}

test('the published issuing chain: an issuing CA under a self-signed root', () => {
	assert.equal(issuing.x509.ca, true);
	assert.equal(root.x509.ca, true);
	assert.ok(issuing.x509.checkIssued(root.x509) && issuing.x509.verify(root.x509.publicKey));
	assert.ok(root.x509.checkIssued(root.x509), 'the root is self-signed');
	assert.ok(!issuing.x509.checkIssued(issuing.x509), 'the issuing CA is not self-signed');
});

test('the issuing chain is published over HTTPS too, to holders of the service key', async () => {
	const res = await fx.svc.get('/_emulator/issuingCaChain');
	assert.equal(res.status, 200, describe(res));
	assert.match(res.headers['content-type'], /pem/);
	const pems = splitPem(res.text);
	assert.equal(pems.length, 2, 'issuing CA, then root');
	assert.ok(new crypto.X509Certificate(pems[0]).raw.equals(issuing.x509.raw));
	assert.ok(new crypto.X509Certificate(pems[1]).raw.equals(root.x509.raw));
	assertAzureError(await fx.svc.get('/_emulator/issuingCaChain', { auth: null }), 401, 401002);
});

test('enrollments name configured credential policies only', async () => {
	const res = await fx.svc.put('/enrollmentGroups/grp-unknown-policy',
		x509Group('grp-unknown-policy', plainRoot.pem, { credentialPolicyName: 'no-such-policy' }));
	assertAzureError(res, 400);
	assert.match(res.json.message, /no-such-policy/);
	assert.equal((await fx.svc.get('/enrollmentGroups/grp-unknown-policy')).status, 404);
});

test('MQTT first boot (C device): a fresh P-256 key, the chain saved, the hub accepts it', async () => {
	const before = await issuedList(fx.svc);
	const { issued, keyPem, run } = await firstBootMqtt('fb-mqtt-p256', { keyType: 'p256' });
	assert.equal(issued.leaf.x509.publicKey.asymmetricKeyDetails.namedCurve, 'prime256v1');

	const records = await issuedList(fx.svc, 'fb-mqtt-p256');
	assert.equal(records.length, 1, JSON.stringify(records));
	assertRecord(records, issued.leaf, {
		registrationId: 'fb-mqtt-p256', enrollmentGroupId: 'grp-issue', policy: 'default', spki: spkiOfKey(keyPem),
	});
	assert.equal((await issuedList(fx.svc)).length, before.length + 1);

	// The hub knows the device by CA, and kept the message the device sent with the issued certificate.
	const device = await hubDevice(fx.daemon, 'fb-mqtt-p256');
	assert.equal(device.authentication.type, 'certificateAuthority');
	assert.match(run.stderr, /hub accepted device fb-mqtt-p256/, describeRun(run));
	const msgs = await hubTelemetry(fx.daemon, 'fb-mqtt-p256');
	assert.deepEqual(msgs.map((m) => m.body), ['{"firstBoot":true}']);
	await fx.daemon.waitForLog(/device 'fb-mqtt-p256' connected from .*X\.509/, { since: fx.mark });
});

test('MQTT first boot with the --csr shorthand: a P-384 key; --message is the telemetry', async () => {
	const { issued } = await firstBootMqtt('fb-mqtt-p384', { csr: true, message: '{"boot":384}' });
	assert.equal(issued.leaf.x509.publicKey.asymmetricKeyDetails.namedCurve, 'secp384r1');
	const msgs = await hubTelemetry(fx.daemon, 'fb-mqtt-p384');
	assert.deepEqual(msgs.map((m) => m.body), ['{"boot":384}']);
});

test('MQTT first boot with an RSA 2048 key: keyEncipherment as well', async () => {
	const { issued } = await firstBootMqtt('fb-mqtt-rsa', { keyType: 'rsa2048' });
	assert.equal(issued.leaf.x509.publicKey.asymmetricKeyType, 'rsa');
	assert.equal(issued.leaf.x509.publicKey.asymmetricKeyDetails.modulusLength, 2048);
});

test('MQTT first boot without --hub-check: issued and saved, the hub is not contacted', async () => {
	const { run } = await firstBootMqtt('fb-mqtt-nohub', { keyType: 'p256', hubCheck: false });
	assert.doesNotMatch(run.stderr, /hub accepted/);
	assert.deepEqual(await hubTelemetry(fx.daemon, 'fb-mqtt-nohub'), []);
});

for (const keyType of ['p256', 'p384']) {
	test(`HTTPS first boot: a fresh ${keyType} CSR with the bootstrap certificate`, async () => {
		const name = `fb-https-${keyType}`;
		const dev = await bootstrap(name);
		const csr = await makeCsr(csrDir, name, name, { keyType, digest: keyType === 'p384' ? 'sha384' : 'sha256' });
		const since = Date.now() / 1000;
		const { register, final } = await httpsRegister(fx.daemon,
			{ cert: dev, body: { registrationId: name, csr: csr.b64 } });
		assert.equal(register.status, 202, describe(register));
		assert.equal(register.json.status, 'assigning');
		const { leaf } = await assertIssued(final,
			{ registrationId: name, enrollment: GRP_ISSUE, spki: csr.spki, validityS: DEFAULT_VALIDITY_S, since });
		assertRecord(await issuedList(fx.svc, name), leaf, {
			registrationId: name, enrollmentGroupId: 'grp-issue', policy: 'default', spki: csr.spki,
		});
		// The service view shows the certificate, not the chain (that goes to the device only).
		const reg = await fx.svc.get(`/registrations/${name}`);
		assert.equal(reg.status, 200, describe(reg));
		assert.equal(reg.json.issuedCertificate.sha256Thumbprint, thumbprints(leaf.x509).sha256);
		assert.equal(reg.json.issuedCertificateChain, undefined);
	});
}

test('renewal: a new CSR gets a new certificate; the registration shows it; both are listed', async () => {
	const name = 'fb-renew';
	const dev = await bootstrap(name);
	const issueWith = async (csr) => {
		const since = Date.now() / 1000;
		const { final } = await httpsRegister(fx.daemon, { cert: dev, body: { registrationId: name, csr: csr.b64 } });
		const issued = await assertIssued(final,
			{ registrationId: name, enrollment: GRP_ISSUE, spki: csr.spki, validityS: DEFAULT_VALIDITY_S, since });
		return issued.leaf;
	};
	const csr1 = await makeCsr(csrDir, `${name}-1`, name);
	const leaf1 = await issueWith(csr1);
	let reg = await fx.svc.get(`/registrations/${name}`);
	assert.equal(reg.json.issuedCertificate.sha256Thumbprint, thumbprints(leaf1.x509).sha256);

	const csr2 = await makeCsr(csrDir, `${name}-2`, name);
	const leaf2 = await issueWith(csr2);
	assert.notEqual(leaf2.x509.serialNumber, leaf1.x509.serialNumber, 'a new serial');
	assert.notEqual(thumbprints(leaf2.x509).sha256, thumbprints(leaf1.x509).sha256);
	reg = await fx.svc.get(`/registrations/${name}`);
	assert.equal(reg.json.issuedCertificate.sha256Thumbprint, thumbprints(leaf2.x509).sha256,
		'the state shows the new certificate');
	assert.ok(sameSerial(reg.json.issuedCertificate.serialNumber, leaf2.x509.serialNumber));

	// Renewing with the key it already holds is the same device's business: allowed.
	const csr3 = await makeCsr(csrDir, `${name}-3`, name, { keyPath: csr2.keyPath });
	const leaf3 = await issueWith(csr3);
	assert.notEqual(leaf3.x509.serialNumber, leaf2.x509.serialNumber);

	const records = await issuedList(fx.svc, name);
	assert.equal(records.length, 3, JSON.stringify(records));
	const want = { registrationId: name, enrollmentGroupId: 'grp-issue', policy: 'default' };
	assertRecord(records, leaf1, { ...want, spki: csr1.spki });
	assertRecord(records, leaf2, { ...want, spki: csr2.spki });
	assertRecord(records, leaf3, { ...want, spki: csr2.spki });
	// The unfiltered listing holds them too.
	const all = await issuedList(fx.svc);
	for (const leaf of [leaf1, leaf2, leaf3]) {
		assert.ok(all.some((r) => sameSerial(r.serialNumber, leaf.x509.serialNumber)), 'in the full listing');
	}
	// The renewed certificate connects to the hub.
	const client = await mqttjsHubConnect(fx.daemon,
		{ deviceId: name, certPem: leaf3.pem + issuing.pem, keyPem: csr2.keyPem });
	await mqttjsPublish(client, `devices/${name}/messages/events/`, 'renewed');
	await mqttjsEnd(client);
	assert.deepEqual((await hubTelemetry(fx.daemon, name)).map((m) => m.body), ['renewed']);
});

test('a policy of 2 minutes gives a 2-minute certificate', async () => {
	const name = 'fb-short';
	const dev = await bootstrap(name, shortRoot);
	const csr = await makeCsr(csrDir, name, name);
	const since = Date.now() / 1000;
	const { final } = await httpsRegister(fx.daemon, { cert: dev, body: { registrationId: name, csr: csr.b64 } });
	const { leaf } = await assertIssued(final, {
		registrationId: name, enrollment: { enrollmentGroupId: 'grp-short' }, spki: csr.spki,
		validityS: SHORT_VALIDITY_S, since,
	});
	assertRecord(await issuedList(fx.svc, name), leaf, {
		registrationId: name, enrollmentGroupId: 'grp-short', policy: 'short', spki: csr.spki,
	});
});

test('refusals over HTTPS: each bad CSR gets its code, and nothing is issued or changed', async () => {
	const name = 'fb-bad';
	const dev = await bootstrap(name);
	const good = await makeCsr(csrDir, `${name}-good`, name);
	// A device that holds an issued certificate: its key is taken, its state must not move.
	const owner = await bootstrap('fb-owner');
	const ownerCsr = await makeCsr(csrDir, 'fb-owner', 'fb-owner');
	const { final: ownerFinal } = await httpsRegister(fx.daemon, { cert: owner, body: { csr: ownerCsr.b64 } });
	assert.equal(ownerFinal.status, 'assigned', JSON.stringify(ownerFinal));
	const ownerState = (await fx.svc.get('/registrations/fb-owner')).json;

	const lines = good.b64.match(/.{1,64}/g).join('\n');
	const pem = `-----BEGIN CERTIFICATE REQUEST-----\n${lines}\n-----END CERTIFICATE REQUEST-----\n`;
	const flipped = Buffer.from(good.der);
	flipped[flipped.length - 1] ^= 0x01; // the last byte of the signature
	// Signed for CN=fb-bbd, then edited to say CN=fb-bad: the signature no longer covers it.
	const edited = await makeCsr(csrDir, `${name}-edited`, 'fb-bbd');
	const at = edited.der.indexOf(Buffer.from('fb-bbd'));
	assert.ok(at > 0);
	const editedDer = Buffer.from(edited.der);
	editedDer.write('fb-bad', at);
	const sans = Array.from({ length: 320 }, (_, i) => `DNS:host-${i}.fb-bad.devices.example.com`).join(',');
	const large = await makeCsr(csrDir, `${name}-large`, name, { addext: [`subjectAltName=${sans}`] });
	assert.ok(large.b64.length > CSR_MAX_B64, `a real CSR of ${large.b64.length} characters`);

	const cases = [
		['not base64', { csr: '%%% this is not base64 %%%' }, 400240],
		['base64 of something else', { csr: b64('not a certificate request at all') }, 400240],
		['PEM text with its armour', { csr: pem }, 400240],
		['DER with trailing bytes', { csr: b64(Buffer.concat([good.der, Buffer.from([0, 0, 0])])) }, 400240],
		['a certificate instead of a request', { csr: dev.x509.raw.toString('base64') }, 400240],
		['csr is a number', { csr: 12345 }, 400240],
		['an empty string', { csr: '' }, 400240],
		['a flipped signature bit', { csr: flipped.toString('base64') }, 400241, /signature/i],
		['a subject edited after signing', { csr: editedDer.toString('base64') }, 400241, /signature/i],
		['CN of another device', { csr: await csrB64(`${name}-cn`, 'someone-else') }, 400242, /someone-else/],
		['no CN', { csr: await csrB64(`${name}-nocn`, name, { subject: '/O=Contoso/OU=fb-bad' }) }, 400242],
		['two CNs', { csr: await csrB64(`${name}-2cn`, name, { subject: `/CN=${name}/CN=${name}` }) }, 400242],
		['an EC secp256k1 key', { csr: await csrB64(`${name}-k1`, name, { keyType: 'secp256k1' }) }, 400243, /secp256k1/],
		['an RSA 1024 key', { csr: await csrB64(`${name}-rsa1k`, name, { keyType: 'rsa1024' }) }, 400243, /RSA/],
		['an Ed25519 key', { csr: await csrB64(`${name}-ed`, name, { keyType: 'ed25519' }) }, 400243],
		['a CSR over 8192 characters', { csr: large.b64 }, 400244],
		['8193 characters of base64', { csr: 'A'.repeat(CSR_MAX_B64 + 1) }, 400244],
		['the key of another device', { csr: await csrB64(`${name}-stolen`, name, { keyPath: ownerCsr.keyPath }) },
			400247, /fb-owner/],
		['a GA api-version (2019-03-31)', { csr: good.b64 }, 400246, /2025-07-01-preview/, '2019-03-31'],
		['a GA api-version (2021-10-01)', { csr: good.b64 }, 400246, undefined, '2021-10-01'],
		['the older preview (2021-11-01-preview)', { csr: good.b64 }, 400246, undefined, '2021-11-01-preview'],
	];
	const before = await issuedList(fx.svc);
	for (const [what, body, code, messageRe, apiVersion] of cases) {
		const { register } = await httpsRegister(fx.daemon, {
			cert: dev, body: { registrationId: name, ...body }, apiVersion: apiVersion || CSR_API_VERSION,
		});
		try {
			const err = assertAzureError(register, 400, code);
			assert.equal(register.headers['x-ms-error-code'], String(code));
			if (messageRe) assert.match(err.message, messageRe);
		} catch (e) {
			e.message = `${what}: ${e.message}`;
			throw e;
		}
	}
	// The owner's own key, the owner's state: a refusal leaves both alone.
	const bad = await httpsRegister(fx.daemon, { cert: owner, body: { csr: flipped.toString('base64') } });
	assertAzureError(bad.register, 400, 400241);

	assert.deepEqual(await issuedList(fx.svc), before, 'nothing was issued');
	assert.equal((await fx.svc.get(`/registrations/${name}`)).status, 404, 'no registration was made');
	assert.deepEqual((await fx.svc.get('/registrations/fb-owner')).json, ownerState,
		'the owner\'s state is unchanged');
	// The same device with its good CSR is then issued a certificate: the refusals cost nothing.
	const { final } = await httpsRegister(fx.daemon, { cert: dev, body: { csr: good.b64 } });
	assert.equal(final.status, 'assigned', JSON.stringify(final));
});

test('refusals: an enrollment without a credential policy (400245)', async () => {
	const dev = await bootstrap('fb-plain', plainRoot);
	const csr = await makeCsr(csrDir, 'fb-plain', 'fb-plain');
	const before = await issuedList(fx.svc);
	const { register } = await httpsRegister(fx.daemon, { cert: dev, body: { csr: csr.b64 } });
	const err = assertAzureError(register, 400, 400245);
	assert.match(err.message, /grp-plain/);
	const run = await runFirstBoot(fx.daemon, { cert: dev, csrKeyType: 'p256', outDir: outDir('fb-plain') });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	assert.equal(run.json.errorCode, 400245);
	assert.deepEqual(fs.readdirSync(outDir('fb-plain')), [], 'the device saved nothing');
	assert.deepEqual(await issuedList(fx.svc), before);
	// Without a CSR the same device registers as before.
	const plain = await httpsRegister(fx.daemon, { cert: dev, body: {}, apiVersion: '2019-03-31' });
	assert.equal(plain.final.status, 'assigned');
	assert.equal(plain.final.registrationState.issuedCertificateChain, undefined);
});

test('refusals over MQTT: res/400 with the same codes; the C device saves nothing', async () => {
	const name = 'fb-bad-mqtt';
	const dev = await bootstrap(name);
	const other = await bootstrap('fb-owner-mqtt');
	const otherCsr = await makeCsr(csrDir, 'fb-owner-mqtt', 'fb-owner-mqtt');
	const ok = await mqttRegister(fx.daemon,
		{ cert: other, body: { registrationId: 'fb-owner-mqtt', csr: otherCsr.b64 } });
	assert.equal(ok.status, 202);
	assert.equal(ok.final.status, 'assigned');
	assert.equal(decodeChain(ok.final.registrationState.issuedCertificateChain).length, 3);

	const before = await issuedList(fx.svc);
	const cases = [
		['not base64', '%%%', 400240],
		['CN of another device', await csrB64(`${name}-cn`, 'someone-else'), 400242],
		['an RSA 1024 key', await csrB64(`${name}-rsa1k`, name, { keyType: 'rsa1024' }), 400243],
		['the key of another device', await csrB64(`${name}-stolen`, name, { keyPath: otherCsr.keyPath }), 400247],
	];
	for (const [what, csr, code] of cases) {
		const res = await mqttRegister(fx.daemon, { cert: dev, body: { registrationId: name, csr } });
		assert.equal(res.status, 400, `${what}: ${res.topic}`);
		assert.equal(res.body.errorCode, code, `${what}: ${JSON.stringify(res.body)}`);
	}
	const ga = await mqttRegister(fx.daemon, {
		cert: dev, body: { registrationId: name, csr: otherCsr.b64 }, apiVersion: '2019-03-31',
	});
	assert.equal(ga.status, 400);
	assert.equal(ga.body.errorCode, 400246);

	// The C device on a GA api-version: exit 3, the error printed, no files.
	const dir = outDir(name);
	const run = await runFirstBoot(fx.daemon,
		{ cert: dev, csrKeyType: 'p256', outDir: dir, apiVersion: '2019-03-31' });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	assert.equal(run.json.errorCode, 400246);
	assert.match(run.stderr, /errorCode 400246/);
	assert.deepEqual(fs.readdirSync(dir), []);
	assert.deepEqual(await issuedList(fx.svc), before, 'nothing was issued');
});

test('an individual enrollment with a credential policy: issued, listed under it, accepted by the hub', async () => {
	const name = 'fb-individual';
	const dev = await fx.certs.device(name, { selfSigned: true });
	const stored = await fx.svc.createEnrollment(x509Enrollment(name, dev.pem, { credentialPolicyName: 'default' }));
	assert.equal(stored.credentialPolicyName, 'default');
	const { issued, keyPem } = await firstBootMqtt(name, { keyType: 'p256', cert: dev, enrollment: {} });
	assertRecord(await issuedList(fx.svc, name), issued.leaf, {
		registrationId: name, enrollmentId: name, policy: 'default', spki: spkiOfKey(keyPem),
	});
	assert.equal((await hubDevice(fx.daemon, name)).authentication.type, 'certificateAuthority');
	assert.equal((await hubTelemetry(fx.daemon, name)).length, 1);
});

test('an individual enrollment with its own deviceId: the issued certificate must be usable at the hub', async () => {
	// DPS assigns hub device "fb-thing" (the enrollment's deviceId). A certificate DPS
	// issues for it must get that device into its hub; otherwise DPS must refuse the CSR.
	const name = 'fb-ind-devid';
	const dev = await fx.certs.device(name, { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment(name, dev.pem,
		{ credentialPolicyName: 'default', deviceId: 'fb-thing' }));
	const mark = fx.daemon.mark();
	const run = await runFirstBoot(fx.daemon,
		{ cert: dev, csrKeyType: 'p256', outDir: outDir(name), hubCheck: true });
	if (run.json && run.json.status === 'assigned') {
		assert.equal(run.json.registrationState.deviceId, 'fb-thing');
		if (run.code !== EXIT.ASSIGNED) {
			const why = await hubRefusal('fb-thing', mark);
			assert.fail(`DPS issued a certificate its hub refuses for device fb-thing\n` +
				`hub: ${why}\n${describeRun(run)}`);
		}
	} else {
		assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
		assert.equal(Math.floor(run.json.errorCode / 1000), 400, describeRun(run));
	}
});

test('registering again without a CSR keeps the issued certificate usable at the hub', async () => {
	// Devices re-provision at boot. On an enrollment with a credential policy the hub
	// trusts the issuing CA for the device; a registration that asks for no new
	// certificate must not take that trust away from the one the device holds.
	const name = 'fb-reboot';
	const dev = await bootstrap(name);
	const csr = await makeCsr(csrDir, name, name);
	const first = await httpsRegister(fx.daemon, { cert: dev, body: { csr: csr.b64 } });
	assert.equal(first.final.status, 'assigned', JSON.stringify(first.final));
	const [leaf, ca] = decodeChain(first.final.registrationState.issuedCertificateChain);

	const again = await httpsRegister(fx.daemon, { cert: dev, body: {} });
	assert.equal(again.final.status, 'assigned', JSON.stringify(again.final));
	assert.equal(again.final.registrationState.issuedCertificateChain, undefined, 'nothing new was issued');
	assert.equal((await issuedList(fx.svc, name)).length, 1);

	const device = await hubDevice(fx.daemon, name);
	const mark = fx.daemon.mark();
	let client;
	try {
		client = await mqttjsHubConnect(fx.daemon,
			{ deviceId: name, certPem: leaf.pem + ca.pem, keyPem: csr.keyPem });
	} catch (err) {
		const why = await hubRefusal(name, mark);
		assert.fail(`the issued certificate (valid until ${leaf.x509.validTo}) is refused after a registration ` +
			`without a CSR: CONNACK ${err.code}\nhub: ${why}\nhub device authentication: ` +
			`${JSON.stringify(device.authentication)}`);
	}
	await mqttjsEnd(client);
	assert.equal(device.authentication.type, 'certificateAuthority');
});

test('a disabled enrollment issues nothing', async () => {
	const name = 'fb-off';
	const dev = await bootstrap(name, offRoot);
	const before = await issuedList(fx.svc);
	const dir = outDir(name);
	const run = await runFirstBoot(fx.daemon, { cert: dev, csrKeyType: 'p256', outDir: dir, hubCheck: true });
	assert.equal(run.code, EXIT.NOT_ASSIGNED, describeRun(run));
	assert.equal(run.json.status, 'disabled');
	assert.equal(run.json.registrationState.issuedCertificateChain, undefined);
	assert.deepEqual(fs.readdirSync(dir), [], 'the device saved nothing');

	const csr = await makeCsr(csrDir, name, name);
	const { final } = await httpsRegister(fx.daemon, { cert: dev, body: { csr: csr.b64 } });
	assert.equal(final.status, 'disabled');
	assert.equal(final.registrationState.issuedCertificateChain, undefined);
	assert.equal(final.registrationState.issuedCertificate, undefined);
	assert.deepEqual(await issuedList(fx.svc), before);
	assert.deepEqual(await issuedList(fx.svc, name), []);
});

test('at the hub: mqtt.js with leaf + issuing CA sends telemetry; the bootstrap certificate is refused', async () => {
	const name = 'fb-hub';
	const dev = await bootstrap(name);
	const csr = await makeCsr(csrDir, name, name, { keyType: 'p384', digest: 'sha384' });
	const { final } = await httpsRegister(fx.daemon, { cert: dev, body: { csr: csr.b64 } });
	assert.equal(final.status, 'assigned', JSON.stringify(final));
	const [leaf, ca] = decodeChain(final.registrationState.issuedCertificateChain);
	assert.equal((await hubDevice(fx.daemon, name)).authentication.type, 'certificateAuthority');

	const client = await mqttjsHubConnect(fx.daemon,
		{ deviceId: name, certPem: leaf.pem + ca.pem, keyPem: csr.keyPem });
	await mqttjsPublish(client, `devices/${name}/messages/events/`, JSON.stringify({ n: 1 }));
	await mqttjsPublish(client, `devices/${name}/messages/events/`, JSON.stringify({ n: 2 }));
	await mqttjsEnd(client);
	const msgs = await hubTelemetry(fx.daemon, name);
	assert.deepEqual(msgs.map((m) => JSON.parse(m.body)), [{ n: 1 }, { n: 2 }]);
	assert.deepEqual(msgs.map((m) => m.sequenceNumber), [1, 2]);

	// Its bootstrap certificate chains to a CA the hub never verified: CONNACK 5.
	const mark = fx.daemon.mark();
	const { conn, connack } = await mqttConnect(fx.daemon.mqttPort, {
		ca: fx.daemon.ca, cert: dev.chainPem, key: dev.key, clientId: name, username: hubUsername(name),
	});
	conn.close();
	assert.equal(connack.type, TYPE.CONNACK);
	assert.equal(connack.returnCode, 5, 'the bootstrap certificate is refused');
	assert.match(await hubRefusal(name, mark), /certificate chain does not reach/);
	// mqtt.js sees the same refusal.
	await assert.rejects(mqttjsHubConnect(fx.daemon, { deviceId: name, certPem: dev.chainPem, keyPem: dev.key }),
		(err) => err.code === 5);
	assert.equal((await hubTelemetry(fx.daemon, name)).length, 2, 'nothing more was stored');
});

test('the C device\'s hub check reports a refusal with exit 4', async () => {
	// Without a CSR the device keeps its own certificate; the hub wants CN = device id,
	// and this enrollment names another device id (DPSEMU_HUB_REQUIRE_CN=1).
	const name = 'fb-cn-hub';
	const dev = await fx.certs.device(name, { selfSigned: true });
	await fx.svc.createEnrollment(x509Enrollment(name, dev.pem, { deviceId: 'fb-cn-hub-device' }));
	const run = await runFirstBoot(fx.daemon, { cert: dev, hubCheck: true, apiVersion: '2019-03-31' });
	assert.equal(run.code, EXIT.HUB_REFUSED, describeRun(run));
	assert.equal(run.json.status, 'assigned');
	assert.match(run.stderr, /hub refused device fb-cn-hub-device: CONNACK 5/);
});

test('the C device refuses first-boot usage errors', async () => {
	const dev = await bootstrap('fb-usage');
	for (const [extra, re] of [
		[{ csrKeyType: 'p256' }, /--out-dir/],
		[{ args: ['--csr-key-type', 'ed448', '--out-dir', outDir('fb-usage')] }, /p256, p384 or rsa2048/],
		[{ outDir: outDir('fb-usage') }, /only used with --csr-key-type/],
		[{ args: ['--message', 'x'] }, /--message needs --hub-check/],
		[{ csrKeyType: 'p256', outDir: outDir('fb-usage'), args: ['--body-mode', 'empty'] }, /body-mode json/],
		[{ csrKeyType: 'p256', outDir: path.join(dev.certPath, 'sub') }, /--out-dir/],
	]) {
		const run = await runFirstBoot(fx.daemon, { cert: dev, ...extra });
		assert.equal(run.code, EXIT.ERROR, describeRun(run));
		assert.match(run.stderr, re, describeRun(run));
		assert.equal(run.stdout, '');
	}
	assert.deepEqual(await issuedList(fx.svc, 'fb-usage'), []);
});

test('DPSEMU_CSR_KEYS=strict: only P-384 keys are accepted', async (t) => {
	// A second daemon for this one setting; it shares nothing with the file's daemon.
	const strict = await Daemon.start({
		dataDir: path.join(fx.dir, 'strict-data'),
		env: { DPSEMU_CSR_KEYS: 'strict' },
	});
	try {
		const { ServiceClient } = require('../lib/service');
		const svc = new ServiceClient(strict);
		await svc.createGroup(x509Group('grp-strict', factory.pem, { credentialPolicyName: 'default' }));
		const dev = await bootstrap('fb-strict');
		for (const keyType of ['p256', 'rsa2048']) {
			const csr = await makeCsr(csrDir, `fb-strict-${keyType}`, 'fb-strict', { keyType });
			const { register } = await httpsRegister(strict, { cert: dev, body: { csr: csr.b64 } });
			assertAzureError(register, 400, 400243);
		}
		const run = await runFirstBoot(strict, { cert: dev, csrKeyType: 'p256', outDir: outDir('fb-strict-p256') });
		assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
		assert.equal(run.json.errorCode, 400243);
		assert.deepEqual(await issuedList(svc), []);

		const ok = await runFirstBoot(strict,
			{ cert: dev, csrKeyType: 'p384', outDir: outDir('fb-strict'), hubCheck: true });
		assert.equal(ok.code, EXIT.ASSIGNED, describeRun(ok));
		assert.equal((await issuedList(svc, 'fb-strict')).length, 1);
	} catch (err) {
		strict.printLog('strict daemon log');
		throw err;
	} finally {
		await strict.stop();
	}
});

test('after a restart: the same issuing CA, the listing kept, issued certificates still connect', async () => {
	const name = 'fb-restart';
	const dev = await bootstrap(name);
	const csr = await makeCsr(csrDir, name, name);
	const { final } = await httpsRegister(fx.daemon, { cert: dev, body: { csr: csr.b64 } });
	assert.equal(final.status, 'assigned', JSON.stringify(final));
	const [leaf, ca] = decodeChain(final.registrationState.issuedCertificateChain);
	const chainPath = path.join(fx.daemon.dataDir, 'certs', 'device-ca-chain.pem');
	const published = fs.readFileSync(chainPath, 'utf8');
	const listed = await issuedList(fx.svc);

	await fx.daemon.restart();

	assert.equal(fs.readFileSync(chainPath, 'utf8'), published, 'the issuing chain is reused');
	assert.deepEqual(await issuedList(fx.svc), listed, 'the records survive');
	const client = await mqttjsHubConnect(fx.daemon,
		{ deviceId: name, certPem: leaf.pem + ca.pem, keyPem: csr.keyPem });
	await mqttjsPublish(client, `devices/${name}/messages/events/`, 'after restart');
	await mqttjsEnd(client);
	assert.deepEqual((await hubTelemetry(fx.daemon, name)).map((m) => m.body), ['after restart']);
	// And issuance goes on with the same CA.
	const next = await firstBootMqtt('fb-after-restart', { keyType: 'p384' });
	assert.ok(next.issued.chain[1].der.equals(ca.der));
});
