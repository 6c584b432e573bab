'use strict';
// Start-up, /health, the generated trust root, and clean shutdown on SIGINT/SIGTERM.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { Daemon } = require('../lib/daemon');
const { request } = require('../lib/https-client');
const { RawMqtt } = require('../lib/mqtt-raw');

const fx = useDaemon();

test('GET /health answers 200 JSON without authentication', async () => {
	const res = await request(fx.daemon.httpsPort, { path: '/health', ca: fx.daemon.ca });
	assert.equal(res.status, 200, res.text);
	assert.match(res.headers['content-type'], /^application\/json/);
	assert.ok(res.json && typeof res.json === 'object', `health body is a JSON object: ${res.text}`);
});

test('server-ca.pem is a CA that signed the certificate served for localhost and 127.0.0.1', async () => {
	const ca = new crypto.X509Certificate(fx.daemon.ca);
	assert.equal(ca.ca, true, 'server-ca.pem has CA:TRUE');
	for (const name of ['localhost', '127.0.0.1']) {
		// The CA option makes node verify the chain and the name; a mismatch rejects.
		const conn = await RawMqtt.connect(fx.daemon.mqttPort, { ca: fx.daemon.ca });
		const served = conn.sock.getPeerX509Certificate();
		conn.close();
		assert.ok(served.checkIssued(ca), 'MQTT server certificate is issued by server-ca.pem');
		const res = await request(fx.daemon.httpsPort, { path: '/health', ca: fx.daemon.ca, servername: name });
		assert.equal(res.status, 200, `HTTPS with server name ${name}`);
		if (name === 'localhost') assert.equal(served.checkHost('localhost'), 'localhost');
		else assert.equal(served.checkIP('127.0.0.1'), '127.0.0.1');
	}
});

test('an unknown HTTPS path gets 404 and the daemon stays healthy', async () => {
	const res = await request(fx.daemon.httpsPort, { path: '/no/such/route', ca: fx.daemon.ca });
	assert.equal(res.status, 404, res.text);
	const again = await request(fx.daemon.httpsPort, { path: '/health', ca: fx.daemon.ca });
	assert.equal(again.status, 200);
});

test('SIGINT stops a daemon cleanly (exit code 0) and the trust root survives a restart', async () => {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpsemu-test-'));
	const d = await Daemon.start({ dataDir: path.join(dir, 'data') });
	let ok = false;
	try {
		const before = d.ca;
		await d.stop('SIGINT');
		await d.launch();
		assert.equal(d.ca, before, 'server-ca.pem unchanged after a restart');
		await d.stop('SIGTERM');
		ok = true;
	} finally {
		if (!ok) d.printLog('daemon log (SIGINT test)');
		if (d.running) await d.kill('SIGKILL');
		fs.rmSync(dir, { recursive: true, force: true });
	}
});
