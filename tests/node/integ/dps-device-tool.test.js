'use strict';
// The C device client's own contract (tools/dps_device.c): exit codes for usage errors,
// unreachable servers, an untrusted server certificate and a server that never answers.
const assert = require('node:assert/strict');
const net = require('node:net');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { EXIT, describeRun } = require('../lib/dps-device');
const { freePorts } = require('../lib/daemon');
const { TOOLS } = require('../lib/env');

let dev;

const fx = useDaemon({
	async setup() {
		dev = await fx.certs.device('tool-dev', { selfSigned: true });
	},
});

function tool(args, timeoutMs = 20000) {
	return new Promise((resolve, reject) => {
		execFile(path.join(TOOLS, 'dps-device'), args, { timeout: timeoutMs }, (err, stdout, stderr) => {
			if (err && typeof err.code !== 'number') return reject(err);
			resolve({ code: err ? err.code : 0, stdout, stderr });
		});
	});
}

function baseArgs(port, ca) {
	return ['--host', '127.0.0.1', '--port', String(port), '--ca', ca, '--scope', fx.daemon.scope,
		'--registration-id', 'tool-dev', '--cert', dev.chainPath, '--key', dev.keyPath];
}

test('usage errors exit 1 with a message', async () => {
	for (const args of [
		[],
		['--port', 'eighty'],
		[...baseArgs(1, fx.daemon.caPath), '--qos', '2'],
		[...baseArgs(1, fx.daemon.caPath), '--body-mode', 'xml'],
		[...baseArgs(1, fx.daemon.caPath), '--payload', '{not json'],
		['--host', 'h', '--port', '1', '--ca', 'c', '--scope', 's', '--registration-id', 'r', '--cert', 'only-cert'],
		[...baseArgs(1, fx.daemon.caPath).slice(0, -4), '--ca', path.join(fx.dir, 'no-such-ca.pem')],
	]) {
		const run = await tool(args);
		assert.equal(run.code, EXIT.ERROR, `${args.join(' ')}\n${describeRun(run)}`);
		assert.match(run.stderr, /dps-device: /);
		assert.equal(run.stdout, '');
	}
	const missing = await tool([...baseArgs(1, path.join(fx.dir, 'no-such-ca.pem'))]);
	assert.match(missing.stderr, /--ca .*no-such-ca\.pem: No such file/, describeRun(missing));
});

test('nothing listening: exit 1', async () => {
	const [port] = await freePorts(1);
	const run = await tool(baseArgs(port, fx.daemon.caPath));
	assert.equal(run.code, EXIT.ERROR, describeRun(run));
	assert.match(run.stderr, /cannot connect|connection lost/);
});

test('a server certificate the CA file does not vouch for: exit 1, TLS error shown', async () => {
	// The device's own certificate is no trust root for the emulator's server certificate.
	const run = await tool(baseArgs(fx.daemon.mqttPort, dev.certPath));
	assert.equal(run.code, EXIT.ERROR, describeRun(run));
	assert.match(run.stderr, /certificate verify failed|TLS/i, describeRun(run));
});

test('a server that never answers: exit 1 after --timeout', async () => {
	const sockets = new Set();
	const silent = net.createServer((s) => sockets.add(s));
	await new Promise((resolve) => silent.listen(0, '127.0.0.1', resolve));
	try {
		const start = Date.now();
		const run = await tool([...baseArgs(silent.address().port, fx.daemon.caPath), '--timeout', '1']);
		const took = Date.now() - start;
		assert.equal(run.code, EXIT.ERROR, describeRun(run));
		assert.match(run.stderr, /timed out after 1 s/, describeRun(run));
		assert.ok(took < 3000, `gave up after ${took} ms`);
	} finally {
		for (const s of sockets) s.destroy();
		await new Promise((resolve) => silent.close(resolve));
	}
});
