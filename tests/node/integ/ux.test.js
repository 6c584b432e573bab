'use strict';
// Everyday runtime features: GET /metrics (Prometheus), GET /_emulator/auth-log, JSON logs
// (DPSEMU_LOG_FORMAT=json), POST /_emulator/reset and deterministic ids
// (DPSEMU_DETERMINISTIC / DPSEMU_SEED).
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { Daemon } = require('../lib/daemon');
const { ServiceClient, x509Enrollment } = require('../lib/service');
const { request, describe } = require('../lib/https-client');
const { runDevice, describeRun, EXIT } = require('../lib/dps-device');
const { mqttConnect, subscribePacket, TYPE } = require('../lib/mqtt-raw');
const { HUB_KEY, HUB_KEY_NAME, sasToken } = require('../lib/sas');
const { HOSTNAME } = require('../lib/env');
const { sleep, waitFor } = require('../lib/wait');

const HUB_API = '2021-04-12';
const certs = {};
let seedDir;

const fx = useDaemon({
	async beforeStart(f) {
		for (const name of ['ux-dev', 'ux-stranger', 'ux-reset', 'ux-det', 'ux-seed']) {
			certs[name] = await f.certs.device(name);
		}
		// A certificate whose CN is not the registration id it is used for.
		certs.wrongCn = await f.certs.device('ux-wrong-cn', { cn: 'somebody-else' });
		seedDir = path.join(f.dir, 'seed');
		fs.mkdirSync(seedDir);
		fs.writeFileSync(path.join(seedDir, 'ux-seed.json'),
			JSON.stringify(x509Enrollment('ux-seed', certs['ux-seed'].pem)));
		return { DPSEMU_ENROLLMENTS_DIR: seedDir };
	},
});

function hubToken() {
	return sasToken({ sr: HOSTNAME, key: HUB_KEY, keyName: HUB_KEY_NAME });
}

/** GET path on daemon with an optional Authorization value. */
function get(daemon, p, auth) {
	const headers = auth ? { Authorization: auth } : {};
	return request(daemon.httpsPort, { path: p, headers, ca: daemon.ca });
}

function hubGet(daemon, p) {
	return get(daemon, `${p}${p.includes('?') ? '&' : '?'}api-version=${HUB_API}`, hubToken());
}

async function scrape(daemon = fx.daemon) {
	const res = await get(daemon, '/metrics');
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4');
	return res.text;
}

/** The value of one sample (labels in the order the family declares them); 0 if absent. */
function sample(text, name, labels = {}) {
	const inner = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(',');
	const prefix = inner ? `${name}{${inner}} ` : `${name} `;
	const line = text.split('\n').find((l) => l.startsWith(prefix));
	return line === undefined ? 0 : Number(line.slice(prefix.length));
}

/** GET /_emulator/auth-log{query} with the DPS owner key; returns its entries. */
async function authLog(query) {
	const res = await fx.svc.get(`/_emulator/auth-log${query}`);
	assert.equal(res.status, 200, describe(res));
	assert.ok(Array.isArray(res.json.value), res.text);
	return res.json.value;
}

/** A hub MQTT CONNECT for deviceId with cert; resolves { conn, connack }. */
function hubConnect(daemon, deviceId, cert) {
	return mqttConnect(daemon.mqttPort, {
		ca: daemon.ca,
		cert: cert.chainPem,
		key: cert.key,
		clientId: deviceId,
		username: `${HOSTNAME}/${deviceId}/?api-version=${HUB_API}`,
	});
}

test('GET /metrics needs no credentials and counts registrations and refusals', async () => {
	const before = await scrape();
	for (const line of before.split('\n').filter((l) => l && !l.startsWith('#'))) {
		assert.match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? \S+$/, `exposition line: ${line}`);
	}
	for (const family of ['dpsemu_registrations_total counter', 'dpsemu_connected_devices gauge',
		'dpsemu_mqtt_connections gauge', 'dpsemu_telemetry_messages_total counter',
		'dpsemu_c2d_messages_total counter', 'dpsemu_direct_methods_total counter',
		'dpsemu_auth_refusals_total counter', 'dpsemu_http_request_duration_seconds histogram']) {
		assert.ok(before.includes(`# TYPE ${family}\n`), `# TYPE ${family}`);
	}
	const assigned = { transport: 'mqtt', outcome: 'assigned' };
	const refused = { transport: 'mqtt', outcome: 'refused' };
	const unknown = { service: 'dps', reason: 'unknown_device' };

	await fx.svc.createEnrollment(x509Enrollment('ux-dev', certs['ux-dev'].pem));
	let run = await fx.device({ cert: certs['ux-dev'] });
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	run = await fx.device({ cert: certs['ux-stranger'] });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));

	const after = await scrape();
	assert.equal(sample(after, 'dpsemu_registrations_total', assigned),
		sample(before, 'dpsemu_registrations_total', assigned) + 1, after);
	assert.equal(sample(after, 'dpsemu_registrations_total', refused),
		sample(before, 'dpsemu_registrations_total', refused) + 1, after);
	assert.equal(sample(after, 'dpsemu_auth_refusals_total', unknown),
		sample(before, 'dpsemu_auth_refusals_total', unknown) + 1, after);
	// The scrape before this one was timed, as a GET answered 2xx.
	const count = sample(after, 'dpsemu_http_request_duration_seconds_count', { method: 'GET', status: '2xx' });
	assert.ok(count >= 1, after);
	assert.equal(sample(after, 'dpsemu_http_request_duration_seconds_bucket',
		{ method: 'GET', status: '2xx', le: '+Inf' }), count);
});

test('GET /_emulator/auth-log: a refused device with its reason, filtered by registrationId', async () => {
	// Either owner key; nothing without one.
	const none = await fx.svc.get('/_emulator/auth-log', { auth: null });
	assert.equal(none.status, 401, describe(none));
	const asHub = await get(fx.daemon, '/_emulator/auth-log', hubToken());
	assert.equal(asHub.status, 200, describe(asHub));

	const run = await fx.device({ cert: certs.wrongCn, registrationId: 'ux-cn-check' });
	assert.equal(run.code, EXIT.SERVER_ERROR, describeRun(run));
	const entries = await authLog('?registrationId=UX-CN-CHECK');
	assert.ok(entries.length >= 1, JSON.stringify(entries));
	for (const e of entries) assert.equal(e.registrationId, 'ux-cn-check');
	const last = entries[entries.length - 1];
	assert.equal(last.service, 'dps');
	assert.equal(last.accepted, false);
	assert.equal(last.reasonClass, 'cn_mismatch');
	assert.match(last.reason, /CN 'somebody-else' does not match registration ID 'ux-cn-check'/);
	assert.match(last.peer, /^127\.0\.0\.1:\d+$/);
	assert.ok(!Number.isNaN(Date.parse(last.timeUtc)), last.timeUtc);

	// The device registered in the first test was accepted.
	const ok = await authLog('?registrationId=ux-dev');
	assert.ok(ok.length >= 1);
	assert.ok(ok.every((e) => e.registrationId === 'ux-dev'));
	assert.equal(ok[ok.length - 1].accepted, true);
	assert.equal(ok[ok.length - 1].reasonClass, 'accepted');

	// The hub: an unknown device refused, the assigned one accepted.
	let { conn, connack } = await hubConnect(fx.daemon, 'ux-ghost', certs['ux-stranger']);
	conn.close();
	assert.equal(connack.returnCode, 5);
	({ conn, connack } = await hubConnect(fx.daemon, 'ux-dev', certs['ux-dev']));
	conn.close();
	assert.equal(connack.returnCode, 0);
	const ghost = await authLog('?deviceId=ux-ghost');
	assert.equal(ghost.length, 1, JSON.stringify(ghost));
	assert.equal(ghost[0].service, 'hub');
	assert.equal(ghost[0].accepted, false);
	assert.equal(ghost[0].reasonClass, 'unknown_device');
	const dev = await authLog('?deviceId=ux-dev');
	assert.equal(dev[dev.length - 1].accepted, true);
	assert.equal(dev[dev.length - 1].reason, 'X.509 thumbprint');

	// Newest last; max keeps the newest.
	const all = await authLog('');
	assert.ok(all.length >= 4);
	const one = await authLog('?max=1');
	assert.deepEqual(one, all.slice(-1));
	const bad = await fx.svc.get('/_emulator/auth-log?max=0');
	assert.equal(bad.status, 400, describe(bad));

	const metrics = await scrape();
	assert.ok(sample(metrics, 'dpsemu_auth_refusals_total', { service: 'dps', reason: 'cn_mismatch' }) >= 1);
	assert.ok(sample(metrics, 'dpsemu_auth_refusals_total', { service: 'hub', reason: 'unknown_device' }) >= 1);
});

test('DPSEMU_LOG_FORMAT=json: every line the daemon writes is a JSON object', async () => {
	const d = await Daemon.start({ dataDir: path.join(fx.dir, 'json-logs'), env: { DPSEMU_LOG_FORMAT: 'json' } });
	let ok = false;
	try {
		const svc = new ServiceClient(d);
		// Messages with quotes, a refusal, a 404 and a registration.
		await svc.createEnrollment(x509Enrollment('ux-dev', certs['ux-dev'].pem));
		let run = await runDevice(d, { cert: certs['ux-dev'] });
		assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
		run = await runDevice(d, { cert: certs.wrongCn, registrationId: 'ux-json "quoted"' });
		assert.notEqual(run.code, EXIT.ASSIGNED, describeRun(run));
		assert.equal((await svc.get('/no/such/"path"')).status, 404);
		await d.stop();
		const lines = d.lines.filter((l) => !l.startsWith('[harness]'));
		assert.ok(lines.length > 10, `${lines.length} lines`);
		for (const line of lines) {
			let obj;
			assert.doesNotThrow(() => {
				obj = JSON.parse(line);
			}, `not JSON: ${line}`);
			assert.deepEqual(Object.keys(obj), ['time', 'level', 'component', 'message'], line);
			assert.match(obj.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
			assert.ok(['debug', 'info', 'warn', 'error'].includes(obj.level), line);
		}
		const messages = lines.map((l) => JSON.parse(l).message);
		assert.ok(messages.some((m) => m.startsWith('dpsemu is running')), 'the banner is logged too');
		assert.ok(messages.some((m) => m.includes('ux-json "quoted"')), 'quotes survive escaping');
		ok = true;
	} finally {
		if (!ok) d.printLog('JSON-log daemon');
		if (d.running) await d.kill('SIGKILL');
	}
});

test('two daemons with DPSEMU_DETERMINISTIC=1 hand out the same ids for the same requests', async () => {
	async function session(name, env) {
		const d = await Daemon.start({ dataDir: path.join(fx.dir, name), env });
		try {
			const svc = new ServiceClient(d);
			const e1 = await svc.createEnrollment(x509Enrollment('ux-det', certs['ux-det'].pem));
			const e2 = await svc.createEnrollment(x509Enrollment('ux-other', certs['ux-dev'].pem));
			const first = await runDevice(d, { cert: certs['ux-det'] });
			assert.equal(first.code, EXIT.ASSIGNED, describeRun(first));
			const second = await runDevice(d, { cert: certs['ux-det'] });
			assert.equal(second.code, EXIT.ASSIGNED, describeRun(second));
			const state = await svc.get('/registrations/ux-det');
			assert.equal(state.status, 200, describe(state));
			const device = await hubGet(d, '/devices/ux-det');
			assert.equal(device.status, 200, describe(device));
			await d.stop();
			return {
				etags: [e1.etag, e2.etag],
				operations: [first.json.operationId, second.json.operationId],
				stateEtag: state.json.etag,
				generationId: device.json.generationId,
			};
		} catch (err) {
			d.printLog(`daemon ${name}`);
			if (d.running) await d.kill('SIGKILL');
			throw err;
		}
	}
	const a = await session('det-a', { DPSEMU_DETERMINISTIC: '1' });
	const b = await session('det-b', { DPSEMU_DETERMINISTIC: '1' });
	assert.deepEqual(b, a);
	assert.notEqual(a.etags[0], a.etags[1]);
	assert.notEqual(a.operations[0], a.operations[1]);
	assert.match(a.operations[0], /^4\.[0-9a-f]{16}\.[0-9a-f-]{36}$/);
	// Another seed, other ids; and the shared daemon (random ids) differs too.
	const c = await session('det-c', { DPSEMU_SEED: '12345' });
	assert.notEqual(c.etags[0], a.etags[0]);
	assert.notEqual(c.operations[0], a.operations[0]);
	const mine = await fx.svc.createEnrollment(x509Enrollment('ux-det', certs['ux-det'].pem));
	assert.notEqual(mine.etag, a.etags[0]);
});

test('POST /_emulator/reset empties the store, keeps the PKI, and reseed=true reloads the seed files', async () => {
	const caBefore = fx.daemon.ca;
	assert.equal((await fx.svc.get('/enrollments/ux-seed')).status, 200, 'seeded at start');
	await fx.svc.createEnrollment(x509Enrollment('ux-reset', certs['ux-reset'].pem));
	const run = await fx.device({ cert: certs['ux-reset'] });
	assert.equal(run.code, EXIT.ASSIGNED, describeRun(run));
	assert.equal((await fx.svc.get('/registrations/ux-reset')).status, 200);
	assert.equal((await hubGet(fx.daemon, '/devices/ux-reset')).status, 200);
	// A connected device is disconnected by the reset; a direct method waiting for its
	// answer and a telemetry reader waiting for a message are answered.
	const { conn, connack } = await hubConnect(fx.daemon, 'ux-reset', certs['ux-reset']);
	assert.equal(connack.returnCode, 0);
	conn.send(subscribePacket({ pid: 7, topic: '$iothub/methods/POST/#', qos: 0 }));
	await conn.nextOfType(TYPE.SUBACK);
	const started = Date.now();
	// The reader goes first; the method reaching the device (and a pause) gives it
	// time to be waiting when the reset comes.
	const reader = hubGet(fx.daemon, '/_emulator/telemetry?deviceId=ux-reset&wait=60');
	const method = request(fx.daemon.httpsPort, {
		method: 'POST',
		path: `/twins/ux-reset/methods?api-version=${HUB_API}`,
		headers: { Authorization: hubToken() },
		body: { methodName: 'never-answered', payload: {}, responseTimeoutInSeconds: 60 },
		ca: fx.daemon.ca,
		timeoutMs: 30000,
	});
	await conn.next((p) => p.type === TYPE.PUBLISH, 5000, 'the method request');
	await sleep(300);

	const unauth = await fx.svc.post('/_emulator/reset', {}, { auth: null });
	assert.equal(unauth.status, 401, describe(unauth));
	let res = await fx.svc.post('/_emulator/reset', {});
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json, { reset: true, reseeded: false });

	await conn.waitClosed(5000);
	const [methodRes, readerRes] = await Promise.all([method, reader]);
	assert.equal(methodRes.status, 503, describe(methodRes));
	assert.equal(readerRes.status, 503, describe(readerRes));
	assert.ok(Date.now() - started < 20000, 'answered at the reset, not at their timeouts');
	const metrics = await scrape();
	assert.ok(sample(metrics, 'dpsemu_direct_methods_total', { result: 'cancelled' }) >= 1, metrics);
	await waitFor(async () => sample(await scrape(), 'dpsemu_connected_devices') === 0, {
		timeoutMs: 5000, what: 'no connected device in the metrics',
	});
	for (const p of ['/enrollments/ux-reset', '/enrollments/ux-seed', '/enrollments/ux-dev',
		'/registrations/ux-reset', '/registrations/ux-dev']) {
		assert.equal((await fx.svc.get(p)).status, 404, `${p} is gone`);
	}
	for (const id of ['ux-reset', 'ux-dev']) {
		assert.equal((await hubGet(fx.daemon, `/devices/${id}`)).status, 404, `hub device ${id} is gone`);
	}
	assert.deepEqual((await authLog('')), [], 'the auth log starts over');
	assert.equal(fx.daemon.ca, caBefore, 'server-ca.pem is kept');
	assert.ok(fs.existsSync(fx.daemon.caPath));

	// The emulator works as before: enroll and register again.
	await fx.svc.createEnrollment(x509Enrollment('ux-reset', certs['ux-reset'].pem));
	const again = await fx.device({ cert: certs['ux-reset'] });
	assert.equal(again.code, EXIT.ASSIGNED, describeRun(again));

	// reseed=true with the hub owner key: the seed files are back, the rest is not.
	res = await request(fx.daemon.httpsPort, {
		method: 'POST', path: '/_emulator/reset?reseed=true', headers: { Authorization: hubToken() }, ca: fx.daemon.ca,
	});
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json, { reset: true, reseeded: true });
	assert.equal((await fx.svc.get('/enrollments/ux-seed')).status, 200, 'seed enrollment reloaded');
	assert.equal((await fx.svc.get('/enrollments/ux-reset')).status, 404);
	const seeded = await fx.device({ cert: certs['ux-seed'] });
	assert.equal(seeded.code, EXIT.ASSIGNED, describeRun(seeded));
	await waitFor(async () => (await hubGet(fx.daemon, '/devices/ux-seed')).status === 200, {
		timeoutMs: 5000, what: 'ux-seed in the hub',
	});
	const bad = await fx.svc.post('/_emulator/reset?reseed=maybe', {});
	assert.equal(bad.status, 400, describe(bad));
});
