'use strict';
// DPS and the hub as two processes, the way docker-compose runs them: DPS reaches
// its linked hub through the hub's service API (DPSEMU_LINKED_HUBS=name@host:port),
// both chain to one server CA (DPSEMU_SERVER_CA_CERT/KEY), and a device provisioned
// by DPS sends telemetry through the separate hub.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test, before, after } = require('node:test');
const mqtt = require('mqtt');
const { CertFactory } = require('../lib/certs');
const { Daemon, freePorts } = require('../lib/daemon');
const { ServiceClient, x509Group } = require('../lib/service');
const { runDevice, describeRun } = require('../lib/dps-device');
const { request } = require('../lib/https-client');
const { sasToken, HUB_KEY, HUB_KEY_NAME } = require('../lib/sas');

const HUB_NAME = 'hub.local';
let dir, certs, serverCa, hub, dps, failed = false;

before(async () => {
	dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpsemu-split-'));
	certs = new CertFactory(path.join(dir, 'pki'));
	serverCa = await certs.root('shared-server-ca');
	const shared = { DPSEMU_SERVER_CA_CERT: serverCa.certPath, DPSEMU_SERVER_CA_KEY: serverCa.keyPath };
	hub = await Daemon.start({
		dataDir: path.join(dir, 'hub'),
		env: { ...shared, DPSEMU_SERVICES: 'hub', DPSEMU_HOSTNAME: HUB_NAME },
	});
	dps = await Daemon.start({
		dataDir: path.join(dir, 'dps'),
		env: {
			...shared,
			DPSEMU_SERVICES: 'dps',
			DPSEMU_LINKED_HUBS: `${HUB_NAME}@127.0.0.1:${hub.httpsPort}`,
		},
	});
});

after(async () => {
	for (const d of [dps, hub]) {
		if (!d) continue;
		if (failed) d.printLog(`split deployment: ${d.dataDir}`);
		await d.stop(); // throws unless dpsemu exits with code 0

	}
	if (!failed) fs.rmSync(dir, { recursive: true, force: true });
});

function hubGet(p) {
	return request(hub.httpsPort, {
		path: p,
		ca: hub.ca,
		headers: { Authorization: sasToken({ sr: HUB_NAME, key: HUB_KEY, keyName: HUB_KEY_NAME }) },
	});
}

function publishTelemetry(device, body) {
	return new Promise((resolve, reject) => {
		const c = mqtt.connect(`mqtts://127.0.0.1:${hub.mqttPort}`, {
			ca: hub.ca,
			cert: fs.readFileSync(device.chainPath),
			key: device.key,
			servername: HUB_NAME,
			clientId: device.cn,
			username: `${HUB_NAME}/${device.cn}/?api-version=2021-04-12`,
			protocolVersion: 4,
			clean: false,
			reconnectPeriod: 0,
			connectTimeout: 5000,
		});
		const timer = setTimeout(() => { c.end(true); reject(new Error('telemetry timed out')); }, 10000);
		c.on('error', (err) => { clearTimeout(timer); c.end(true); reject(err); });
		c.on('connect', () => {
			c.publish(`devices/${device.cn}/messages/events/%24.mid=split-1`, body, { qos: 1 }, (err) => {
				clearTimeout(timer);
				c.end();
				if (err) reject(err); else resolve();
			});
		});
	});
}

test('both services chain to the shared server CA', () => {
	assert.equal(dps.ca, hub.ca);
	assert.equal(dps.ca, serverCa.pem);
});

test('a device provisioned by DPS is registered in the separate hub and sends telemetry there', async (t) => {
	t.after(() => { if (t.passed === false) failed = true; });
	const root = await certs.root('split-root');
	const device = await certs.device('split-dev-1', { ca: root });
	const svc = new ServiceClient(dps);
	await svc.createGroup(x509Group('split-group', root.pem));

	const run = await runDevice(dps, { cert: device });
	assert.equal(run.code, 0, describeRun(run));
	assert.equal(run.json.registrationState.assignedHub, HUB_NAME);
	assert.equal(run.json.registrationState.deviceId, 'split-dev-1');

	const registered = await hubGet('/devices/split-dev-1?api-version=2021-04-12');
	assert.equal(registered.status, 200, registered.text);
	assert.equal(registered.json.authentication.type, 'selfSigned');
	assert.equal(registered.json.authentication.x509Thumbprint.primaryThumbprint, device.sha256);

	await publishTelemetry(device, '{"split":true}');
	const seen = await hubGet('/_emulator/telemetry?deviceId=split-dev-1');
	assert.equal(seen.status, 200, seen.text);
	assert.equal(seen.json.messages.length, 1);
	assert.equal(seen.json.messages[0].body, '{"split":true}');
	assert.equal(seen.json.messages[0].systemProperties.messageId, 'split-1');
});

test('a group naming a hub that is not linked ends failed with 400208, not a hang', async (t) => {
	t.after(() => { if (t.passed === false) failed = true; });
	const root = await certs.root('split-root-2');
	const device = await certs.device('split-dev-2', { ca: root });
	const svc = new ServiceClient(dps);
	await svc.createGroup(x509Group('split-group-2', root.pem, { iotHubs: ['unlinked.local'] }));
	const run = await runDevice(dps, { cert: device });
	assert.equal(run.code, 2, describeRun(run));
	assert.equal(run.json.status, 'failed');
	assert.equal(run.json.registrationState.errorCode, 400208);
});

test('a linked hub that does not answer ends the registration failed with 400209 and the reason', async (t) => {
	t.after(() => { if (t.passed === false) failed = true; });
	const [deadPort] = await freePorts(1); // nobody listens there
	const lonely = await Daemon.start({
		dataDir: path.join(dir, 'lonely'),
		env: {
			DPSEMU_SERVER_CA_CERT: serverCa.certPath,
			DPSEMU_SERVER_CA_KEY: serverCa.keyPath,
			DPSEMU_SERVICES: 'dps',
			DPSEMU_LINKED_HUBS: `${HUB_NAME}@127.0.0.1:${deadPort}`,
		},
	});
	try {
		const root = await certs.root('split-root-3');
		const device = await certs.device('split-dev-3', { ca: root });
		await new ServiceClient(lonely).createGroup(x509Group('split-group-3', root.pem));
		const run = await runDevice(lonely, { cert: device });
		assert.equal(run.code, 2, describeRun(run));
		assert.equal(run.json.status, 'failed');
		assert.equal(run.json.registrationState.errorCode, 400209);
		assert.match(run.json.registrationState.errorMessage, /did not answer/);
	} finally {
		await lonely.stop();
	}
});
