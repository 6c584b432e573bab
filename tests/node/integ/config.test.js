'use strict';
// Configuration is checked before anything listens: a bad setting or seed file
// stops the start with a message naming it, and `dpsemu --check` says so and exits.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { test, after } = require('node:test');
const { execFile } = require('node:child_process');
const { BIN } = require('../lib/env');

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpsemu-config-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function run(args, env) {
	const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DPSEMU_')));
	return new Promise((resolve) => {
		execFile(BIN, args, { env: { ...clean, DPSEMU_DATA_DIR: path.join(dir, 'data'), ...env }, timeout: 20000 },
			(err, stdout, stderr) => resolve({ code: err ? err.code : 0, out: stdout + stderr }));
	});
}

test('--check accepts a good configuration and exits 0 without touching the ports', async () => {
	const r = await run(['--check'], { DPSEMU_MQTT_PORT: '1', DPSEMU_HTTPS_PORT: '2' });
	assert.equal(r.code, 0, r.out);
	assert.match(r.out, /configuration OK/);
	assert.ok(fs.existsSync(path.join(dir, 'data', 'certs', 'server-ca.pem')));
	assert.ok(!fs.existsSync(path.join(dir, 'data', 'store')), 'the check must not create the store');
});

test('--check names a seed file that fails validation', async () => {
	const seeds = path.join(dir, 'seeds');
	fs.mkdirSync(seeds, { recursive: true });
	fs.writeFileSync(path.join(seeds, 'broken.json'), '{"registrationId":"bad id!"}');
	const r = await run(['--check'], { DPSEMU_ENROLLMENTS_DIR: seeds });
	assert.equal(r.code, 1, r.out);
	assert.match(r.out, /broken\.json/);
	assert.match(r.out, /configuration check failed/);
});

test('a start with a broken seed file stops before serving', async () => {
	const r = await run([], { DPSEMU_ENROLLMENTS_DIR: path.join(dir, 'seeds'), DPSEMU_MQTT_PORT: '0', DPSEMU_HTTPS_PORT: '0' });
	assert.equal(r.code, 1, r.out);
	assert.match(r.out, /broken\.json/);
	assert.doesNotMatch(r.out, /dpsemu is running/);
});

test('unknown DPSEMU_ variables, bad ports and bad values are refused, naming the setting', async () => {
	for (const [env, name] of [
		[{ DPSEMU_MQTT_PROT: '1' }, 'DPSEMU_MQTT_PROT'],
		[{ DPSEMU_HTTPS_PORT: '70000' }, 'DPSEMU_HTTPS_PORT'],
		[{ DPSEMU_SERVICES: 'dps,cloud' }, 'DPSEMU_SERVICES'],
		[{ DPSEMU_LOG_LEVEL: 'loud' }, 'DPSEMU_LOG_LEVEL'],
	]) {
		const r = await run(['--check'], env);
		assert.equal(r.code, 2, `${name}: ${r.out}`);
		assert.match(r.out, new RegExp(name), r.out);
	}
	const r = await run(['--check'], { DPSEMU_SERVER_CA_CERT: path.join(dir, 'missing.pem'), DPSEMU_SERVER_CA_KEY: path.join(dir, 'missing.key') });
	assert.equal(r.code, 1, r.out);
	assert.match(r.out, /DPSEMU_SERVER_CA_CERT/);
});
