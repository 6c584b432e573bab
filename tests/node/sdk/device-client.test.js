'use strict';
// azure-iot-provisioning-device with X509Security over MQTT and HTTP, pointed at dpsemu:
// individual and group devices are assigned to "localhost" under their registration id;
// refused and disabled devices get an error from the SDK, never a timeout.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { sdkRegister, REGISTER_TIMEOUT_MS } = require('../lib/sdk');
const { x509Enrollment, x509Group } = require('../lib/service');
const { HOSTNAME } = require('../lib/env');

let root; // group sdk-grp-root
let inter; // an intermediate under root (no group of its own)
let interOnly; // group sdk-grp-inter, under a root nobody enrolled

const fx = useDaemon({
	async setup() {
		root = await fx.certs.root('sdk-root');
		inter = await fx.certs.intermediate('sdk-inter', { ca: root });
		const interRoot = await fx.certs.root('sdk-inter-root');
		// Group on a root, and a group on an intermediate of another root.
		await fx.svc.createGroup(x509Group('sdk-grp-root', root.pem));
		interOnly = await fx.certs.intermediate('sdk-inter-only', { ca: interRoot });
		await fx.svc.createGroup(x509Group('sdk-grp-inter', interOnly.pem));
	},
});

function assertState(state, registrationId, x509) {
	assert.ok(state, 'the SDK returns the registration state');
	assert.equal(state.assignedHub, HOSTNAME);
	assert.equal(state.deviceId, registrationId);
	assert.equal(state.registrationId, registrationId);
	assert.equal(state.status, 'assigned');
	assert.deepEqual(state.x509, x509);
}

/** Registers a device and asserts it is refused quickly with an SDK error. */
async function assertSdkRefuses(opts, errorName) {
	const start = Date.now();
	await assert.rejects(sdkRegister(fx.daemon, opts), (err) => {
		assert.doesNotMatch(err.message, /^timed out/, 'an answer, not a timeout');
		assert.notEqual(err.name, 'TimeoutError', `${err.name}: ${err.message}`);
		if (errorName) assert.equal(err.name, errorName, `${err.name}: ${err.message}`);
		return true;
	});
	assert.ok(Date.now() - start < REGISTER_TIMEOUT_MS / 2, 'refused promptly');
}

for (const transport of ['mqtt', 'http']) {
	test(`${transport}: individual enrollment, self-signed certificate`, async () => {
		const id = `sdk-${transport}-self`;
		const dev = await fx.certs.device(id, { selfSigned: true });
		await fx.svc.createEnrollment(x509Enrollment(id, dev.pem));
		const state = await sdkRegister(fx.daemon, { transport, registrationId: id, cert: dev.pem, key: dev.key });
		assertState(state, id, {});
	});

	test(`${transport}: group on a root, leaf certificate only`, async () => {
		const id = `sdk-${transport}-grp-root`;
		const dev = await fx.certs.device(id, { ca: root });
		const state = await sdkRegister(fx.daemon, { transport, registrationId: id, cert: dev.pem, key: dev.key });
		assertState(state, id, { enrollmentGroupId: 'sdk-grp-root' });
	});

	test(`${transport}: group on an intermediate, leaf + intermediate chain`, async () => {
		const id = `sdk-${transport}-grp-inter`;
		const dev = await fx.certs.device(id, { ca: interOnly });
		const state = await sdkRegister(fx.daemon, { transport, registrationId: id, cert: dev.chainPem, key: dev.key });
		assertState(state, id, { enrollmentGroupId: 'sdk-grp-inter' });
	});

	test(`${transport}: a device under an intermediate of an enrolled root, with its chain`, async () => {
		const id = `sdk-${transport}-via-inter`;
		const dev = await fx.certs.device(id, { ca: inter });
		const state = await sdkRegister(fx.daemon, { transport, registrationId: id, cert: dev.chainPem, key: dev.key });
		assertState(state, id, { enrollmentGroupId: 'sdk-grp-root' });
	});

	test(`${transport}: re-registration gives the same assignment`, async () => {
		const id = `sdk-${transport}-again`;
		const dev = await fx.certs.device(id, { ca: root });
		const opts = { transport, registrationId: id, cert: dev.pem, key: dev.key };
		const first = await sdkRegister(fx.daemon, opts);
		const second = await sdkRegister(fx.daemon, opts);
		assert.equal(second.assignedHub, first.assignedHub);
		assert.equal(second.deviceId, first.deviceId);
	});

	test(`${transport}: a refused device (CN mismatch) gets UnauthorizedError, not a timeout`, async () => {
		const dev = await fx.certs.device(`sdk-${transport}-liar`, { ca: root, cn: `sdk-${transport}-other` });
		await assertSdkRefuses({ transport, registrationId: `sdk-${transport}-liar`, cert: dev.pem, key: dev.key },
			'UnauthorizedError');
	});

	test(`${transport}: an unknown device gets UnauthorizedError, not a timeout`, async () => {
		const id = `sdk-${transport}-unknown`;
		const dev = await fx.certs.device(id, { selfSigned: true });
		await assertSdkRefuses({ transport, registrationId: id, cert: dev.pem, key: dev.key }, 'UnauthorizedError');
	});

	test(`${transport}: a disabled enrollment ends with an SDK error, not a timeout`, async () => {
		const id = `sdk-${transport}-disabled`;
		const dev = await fx.certs.device(id, { selfSigned: true });
		await fx.svc.createEnrollment(x509Enrollment(id, dev.pem, { provisioningStatus: 'disabled' }));
		// The Node SDK has no "disabled" result: it reports the unexpected status as an error.
		await assertSdkRefuses({ transport, registrationId: id, cert: dev.pem, key: dev.key });
	});
}
