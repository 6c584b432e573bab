'use strict';
// Telemetry forwarding (DPSEMU_FORWARD_MQTT) to a real mosquitto broker: each message a
// device sends arrives on dpsemu/telemetry/{deviceId} as the JSON the telemetry API
// shows, plus deviceId; with the broker stopped the device still gets its PUBACKs and
// the telemetry is still stored (the copies are dropped, not delayed); the forwarder
// reconnects by itself when the broker comes back.
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { test, after } = require('node:test');
const mqtt = require('mqtt');
const { useDaemon } = require('../lib/fixture');
const { freePorts } = require('../lib/daemon');
const { describe } = require('../lib/https-client');
const { HUB_KEY, HUB_KEY_NAME, sasToken } = require('../lib/sas');
const { sleep, waitFor, withTimeout } = require('../lib/wait');

const API = 'api-version=2021-04-12';
const TOPIC_FILTER = 'dpsemu/telemetry/#';
const BROKER_START_MS = 10000;
const BROKER_STOP_MS = 5000;
// The forwarder's reconnection delay grows to 5 s; allow for one full wait and more.
const RECONNECT_MS = 15000;

/** A mosquitto broker on 127.0.0.1:port, anonymous, no persistence, its own config file. */
class Broker {
	constructor(dir, port) {
		this.dir = dir;
		this.port = port;
		this.proc = null;
		this.exited = null;
		this.log = [];
		fs.mkdirSync(dir, { recursive: true });
		this.conf = path.join(dir, 'mosquitto.conf');
		fs.writeFileSync(this.conf, [
			`listener ${port} 127.0.0.1`,
			'allow_anonymous true',
			'persistence false',
			'log_dest stderr',
			'log_type error',
			'log_type warning',
			'log_type notice',
			'log_type information',
			'connection_messages true',
			'',
		].join('\n'));
	}

	get running() {
		return this.proc !== null && this.proc.exitCode === null && this.proc.signalCode === null;
	}

	/** Starts mosquitto and resolves once the port accepts connections. */
	async start() {
		const proc = spawn('mosquitto', ['-c', this.conf], { stdio: ['ignore', 'pipe', 'pipe'] });
		this.proc = proc;
		this.exited = new Promise((resolve) => {
			proc.on('exit', (code, signal) => resolve({ code, signal }));
			proc.on('error', (err) => resolve({ error: err }));
		});
		for (const s of [proc.stdout, proc.stderr]) {
			s.setEncoding('utf8');
			s.on('data', (d) => this.log.push(...d.split('\n').filter(Boolean)));
		}
		const deadline = Date.now() + BROKER_START_MS;
		for (;;) {
			const status = await Promise.race([this.exited, sleep(50).then(() => null)]);
			if (status) {
				const why = status.error
					? `${status.error.message} (install it: scripts/deps.sh test)`
					: `exit ${status.code} signal ${status.signal}`;
				throw new Error(`mosquitto did not start: ${why}\n${this.log.join('\n')}`);
			}
			if (await portOpen(this.port)) return;
			if (Date.now() >= deadline) {
				throw new Error(`mosquitto not listening on ${this.port} after ${BROKER_START_MS} ms\n` +
					this.log.join('\n'));
			}
		}
	}

	/** Stops it (SIGTERM, SIGKILL after BROKER_STOP_MS) and waits for the exit. */
	async stop() {
		if (!this.running) return;
		this.proc.kill('SIGTERM');
		const status = await Promise.race([this.exited, sleep(BROKER_STOP_MS).then(() => null)]);
		if (!status) {
			this.proc.kill('SIGKILL');
			await this.exited;
		}
	}
}

function portOpen(port) {
	return new Promise((resolve) => {
		const s = net.connect({ host: '127.0.0.1', port });
		s.once('connect', () => {
			s.destroy();
			resolve(true);
		});
		s.once('error', () => resolve(false));
	});
}

let broker;

const fx = useDaemon({
	async beforeStart(f) {
		const [port] = await freePorts(1);
		broker = new Broker(path.join(f.dir, 'broker'), port);
		await broker.start();
		return { DPSEMU_FORWARD_MQTT: `127.0.0.1:${port}` };
	},
	async setup(f) {
		await f.daemon.waitForLog(/forward: connected to the broker 127\.0\.0\.1:\d+/, { timeoutMs: 10000 });
	},
});

// Never leave a broker behind, whatever happened to the test.
process.on('exit', () => {
	if (broker && broker.running) broker.proc.kill('SIGKILL');
});
after(async () => {
	if (broker) await broker.stop();
});

function hubToken() {
	return sasToken({ sr: 'localhost', key: HUB_KEY, keyName: HUB_KEY_NAME });
}

function hubCall(method, p, body) {
	return fx.svc.call(method, `${p}${p.includes('?') ? '&' : '?'}${API}`, { auth: hubToken(), body });
}

/** A device with a self-signed certificate, registered in the hub by thumbprint. */
async function createDevice(deviceId) {
	const cert = await fx.certs.device(deviceId, { selfSigned: true });
	const res = await hubCall('PUT', `/devices/${encodeURIComponent(deviceId)}`, {
		deviceId,
		authentication: {
			type: 'selfSigned',
			x509Thumbprint: { primaryThumbprint: cert.sha1, secondaryThumbprint: cert.sha256 },
		},
	});
	assert.equal(res.status, 200, `create ${deviceId}: ${describe(res)}`);
	return cert;
}

/** Connects deviceId over MQTT/TLS with its certificate (mqtt.js); resolves the client. */
function connectDevice(deviceId, cert) {
	const client = mqtt.connect({
		protocol: 'mqtts',
		host: '127.0.0.1',
		port: fx.daemon.mqttPort,
		servername: 'localhost',
		ca: fx.daemon.ca,
		cert: cert.chainPem,
		key: cert.key,
		clientId: deviceId,
		username: `localhost/${deviceId}/?${API}`,
		protocolVersion: 4,
		clean: true,
		keepalive: 60,
		reconnectPeriod: 0,
		connectTimeout: 10000,
	});
	return withTimeout(new Promise((resolve, reject) => {
		client.once('connect', () => resolve(client));
		client.once('error', (err) => {
			client.end(true);
			reject(err);
		});
	}), 15000, `device ${deviceId} connecting`);
}

/** Publishes telemetry at QoS 1; resolves with the time the PUBACK took (ms). */
function sendTelemetry(client, deviceId, body, props = '') {
	const started = Date.now();
	return withTimeout(new Promise((resolve, reject) => {
		client.publish(`devices/${deviceId}/messages/events/${props}`, body, { qos: 1 }, (err) => {
			if (err) reject(err);
			else resolve(Date.now() - started);
		});
	}), 5000, `PUBACK for telemetry of ${deviceId}`);
}

/** The device's stored messages, from the telemetry observation API. */
async function storedMessages(deviceId) {
	const res = await hubCall('GET', `/_emulator/telemetry?deviceId=${encodeURIComponent(deviceId)}`);
	assert.equal(res.status, 200, describe(res));
	return res.json.messages;
}

/** A subscriber on dpsemu/telemetry/# that keeps what it receives. */
async function subscribe() {
	const client = mqtt.connect({
		host: '127.0.0.1',
		port: broker.port,
		protocolVersion: 4,
		clientId: `forward-test-${process.pid}-${Date.now()}`,
		clean: true,
		reconnectPeriod: 0,
		connectTimeout: 5000,
	});
	const received = [];
	client.on('message', (topic, payload) => {
		let json;
		try {
			json = JSON.parse(payload.toString('utf8'));
		} catch {
			json = undefined;
		}
		received.push({ topic, text: payload.toString('utf8'), json });
	});
	await withTimeout(new Promise((resolve, reject) => {
		client.once('connect', resolve);
		client.once('error', reject);
	}), 10000, 'subscriber connecting to mosquitto');
	const granted = await withTimeout(new Promise((resolve, reject) => {
		client.subscribe(TOPIC_FILTER, { qos: 0 }, (err, g) => (err ? reject(err) : resolve(g)));
	}), 5000, 'SUBACK from mosquitto');
	assert.equal(granted[0].qos, 0);
	return {
		client,
		received,
		/** Waits for a forwarded message of deviceId with sequence number seq. */
		waitFor(deviceId, seq, timeoutMs = 5000) {
			return waitFor(
				() => received.find((m) => m.json && m.json.deviceId === deviceId && m.json.sequenceNumber === seq),
				{ timeoutMs, what: `forwarded message #${seq} of ${deviceId} on the broker` },
			);
		},
		close() {
			return new Promise((resolve) => client.end(true, {}, resolve));
		},
	};
}

test('every accepted telemetry message arrives on the broker as its envelope', async () => {
	const sub = await subscribe();
	const cert = await createDevice('fwd-dev-1');
	const dev = await connectDevice('fwd-dev-1', cert);
	try {
		await sendTelemetry(dev, 'fwd-dev-1', JSON.stringify({ t: 21.5, unit: '°C' }),
			'%24.ct=application%2Fjson&%24.ce=utf-8&alert=on');
		await sendTelemetry(dev, 'fwd-dev-1', Buffer.from([0xff, 0x00, 0xfe]));

		const first = await sub.waitFor('fwd-dev-1', 1);
		const second = await sub.waitFor('fwd-dev-1', 2);
		assert.equal(first.topic, 'dpsemu/telemetry/fwd-dev-1');
		assert.equal(second.topic, 'dpsemu/telemetry/fwd-dev-1');

		// The same JSON as the telemetry API, with deviceId first.
		const stored = await storedMessages('fwd-dev-1');
		assert.equal(stored.length, 2);
		assert.deepEqual(first.json, { deviceId: 'fwd-dev-1', ...stored[0] });
		assert.deepEqual(second.json, { deviceId: 'fwd-dev-1', ...stored[1] });
		assert.equal(Object.keys(first.json)[0], 'deviceId');
		assert.equal(first.json.moduleId, undefined);

		// UTF-8 text as is; anything else in base64.
		assert.deepEqual(JSON.parse(first.json.body), { t: 21.5, unit: '°C' });
		assert.equal(first.json.bodyEncoding, undefined);
		assert.equal(first.json.properties.alert, 'on');
		assert.equal(first.json.systemProperties.contentType, 'application/json');
		assert.equal(first.json.systemProperties.contentEncoding, 'utf-8');
		assert.match(first.json.enqueuedTimeUtc, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$/);
		assert.equal(second.json.body, '/wD+');
		assert.equal(second.json.bodyEncoding, 'base64');

		// Exactly one copy of each.
		await sleep(200);
		assert.equal(sub.received.length, 2, JSON.stringify(sub.received));
	} finally {
		dev.end(true);
		await sub.close();
	}
});

test('broker down: devices still get PUBACKs, telemetry is stored, the forwarder reconnects', async () => {
	const cert = await createDevice('fwd-dev-2');
	const dev = await connectDevice('fwd-dev-2', cert);
	let sub;
	try {
		let mark = fx.daemon.mark();
		await broker.stop();
		await fx.daemon.waitForLog(/forward: connection to the broker 127\.0\.0\.1:\d+ lost/, { since: mark });

		// The device path does not wait for the broker.
		for (let i = 1; i <= 3; i++) {
			const ms = await sendTelemetry(dev, 'fwd-dev-2', `while down ${i}`);
			assert.ok(ms < 2000, `PUBACK took ${ms} ms with the broker down`);
		}
		const stored = await storedMessages('fwd-dev-2');
		assert.deepEqual(stored.map((m) => m.body), ['while down 1', 'while down 2', 'while down 3']);
		// A warning, or a debug line when one was logged less than 10 s ago.
		await fx.daemon.waitForLog(
			/forward: telemetry (not forwarded to 127\.0\.0\.1:\d+|of 'fwd-dev-2' not forwarded): not connected/,
			{ since: mark },
		);

		// The broker comes back: the forwarder reconnects without help.
		mark = fx.daemon.mark();
		await broker.start();
		await fx.daemon.waitForLog(/forward: connected to the broker 127\.0\.0\.1:\d+/, { since: mark, timeoutMs: RECONNECT_MS });
		sub = await subscribe();
		await sendTelemetry(dev, 'fwd-dev-2', 'after the restart');
		const back = await sub.waitFor('fwd-dev-2', 4);
		assert.equal(back.topic, 'dpsemu/telemetry/fwd-dev-2');
		assert.equal(back.json.body, 'after the restart');

		// What was dropped stays dropped (QoS 0 copies are not queued for later).
		await sleep(200);
		assert.deepEqual(sub.received.map((m) => m.json && m.json.sequenceNumber), [4]);
	} finally {
		dev.end(true);
		if (sub) await sub.close();
	}
});
