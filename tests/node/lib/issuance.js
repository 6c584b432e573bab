'use strict';
// Certificate issuance (first boot) from a test's side: CSRs made at run time with the
// openssl command line (fresh keys, or deliberately broken requests), the register /
// poll exchange with a CSR over raw HTTPS and raw MQTT, the C device's first-boot mode
// (dps-device --csr-key-type ... --out-dir ... --hub-check), the issued chain decoded and
// inspected with openssl, the issued-certificate listing, and the hub routes the
// suites read telemetry and devices with.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { TOOLS, HOSTNAME } = require('./env');
const { request, describe } = require('./https-client');
const { mqttConnect, dpsUsername, subscribePacket, publishPacket, pubackPacket, TYPE } = require('./mqtt-raw');
const { HUB_KEY, HUB_KEY_NAME, sasToken } = require('./sas');

const CSR_API_VERSION = '2025-07-01-preview';
const HUB_API_VERSION = '2021-04-12';
const OPENSSL_TIMEOUT_MS = 30000;
const MAX_POLLS = 50;
const DEVICE_TIMEOUT_S = 15;

// dps-device exit codes (tools/dps_device.c).
const EXIT = Object.freeze({ ASSIGNED: 0, ERROR: 1, NOT_ASSIGNED: 2, SERVER_ERROR: 3, HUB_REFUSED: 4 });

// ---- openssl ------------------------------------------------------------------

/** Runs openssl ARGS; resolves { code, stdout, stderr } (stdout a Buffer when binary). */
function openssl(args, { input, binary = false, check = true } = {}) {
	return new Promise((resolve, reject) => {
		const child = execFile('openssl', args, {
			timeout: OPENSSL_TIMEOUT_MS,
			encoding: binary ? 'buffer' : 'utf8',
			maxBuffer: 16 * 1024 * 1024,
		}, (err, stdout, stderr) => {
			const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
			if (check && code !== 0) {
				reject(new Error(`openssl ${args.join(' ')} failed (${code}): ${stderr}`));
				return;
			}
			resolve({ code, stdout, stderr: stderr.toString() });
		});
		if (input !== undefined) child.stdin.end(input);
	});
}

// The key types a CSR can carry, as openssl genpkey options.
const KEY_ARGS = Object.freeze({
	p256: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
	p384: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
	secp256k1: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:secp256k1'],
	rsa1024: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
	rsa2048: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
	ed25519: ['-algorithm', 'ED25519'],
});

/** A fresh private key (PEM file dir/name.key); resolves its path. */
async function generateKey(dir, name, keyType) {
	const args = KEY_ARGS[keyType];
	if (!args) throw new Error(`unknown key type ${keyType}`);
	fs.mkdirSync(dir, { recursive: true });
	const keyPath = path.join(dir, `${name}.key`);
	await openssl(['genpkey', ...args, '-out', keyPath]);
	return keyPath;
}

/**
 * A PKCS#10 request, made by `openssl req`.
 * opts: subject (default /CN=cn), keyType (p256 default) or keyPath (reuse a key),
 * digest ('sha256' default; ignored for ed25519), addext (array of -addext values).
 * Resolves { keyPath, keyPem, der, b64, spki } (spki: the public key, DER SubjectPublicKeyInfo).
 */
async function makeCsr(dir, name, cn, opts = {}) {
	const keyType = opts.keyType || 'p256';
	const keyPath = opts.keyPath || await generateKey(dir, name, keyType);
	const derPath = path.join(dir, `${name}.csr.der`);
	const args = ['req', '-new', '-key', keyPath, '-subj', opts.subject || `/CN=${cn}`, '-outform', 'DER', '-out', derPath];
	if (keyType !== 'ed25519') args.push(`-${opts.digest || 'sha256'}`);
	for (const ext of opts.addext || []) args.push('-addext', ext);
	await openssl(args);
	const der = fs.readFileSync(derPath);
	const keyPem = fs.readFileSync(keyPath, 'utf8');
	return { keyPath, keyPem, der, b64: der.toString('base64'), spki: spkiOfKey(keyPem) };
}

/** The DER SubjectPublicKeyInfo of a private or public key (PEM). */
function spkiOfKey(pem) {
	return crypto.createPublicKey(pem).export({ type: 'spki', format: 'der' });
}

/** The DER SubjectPublicKeyInfo of a certificate (an X509Certificate). */
function spkiOfCert(x509) {
	return x509.publicKey.export({ type: 'spki', format: 'der' });
}

/** [length, header size] of the DER element at off. */
function derHeader(buf, off) {
	const first = buf[off + 1];
	if (first < 0x80) return [first, 2];
	const n = first & 0x7f;
	let len = 0;
	for (let i = 0; i < n; i++) len = len * 256 + buf[off + 2 + i];
	return [len, 2 + n];
}

/**
 * The key identifier RFC 5280 (4.2.1.2, method 1) describes and OpenSSL computes: the
 * SHA-1 of the subjectPublicKey BIT STRING's value, as upper-case hex.
 */
function keyIdentifier(spki) {
	let [, head] = derHeader(spki, 0); // SubjectPublicKeyInfo SEQUENCE
	let off = head;
	const [algLen, algHead] = derHeader(spki, off); // AlgorithmIdentifier
	off += algHead + algLen;
	assert.equal(spki[off], 0x03, 'subjectPublicKey is a BIT STRING');
	const [bitsLen, bitsHead] = derHeader(spki, off);
	head = off + bitsHead + 1; // after the unused-bits byte
	const bits = spki.subarray(head, off + bitsHead + bitsLen);
	return crypto.createHash('sha1').update(bits).digest('hex').toUpperCase();
}

// ---- the issued chain ---------------------------------------------------------

function pemOfDer(der) {
	const b64 = der.toString('base64').match(/.{1,64}/g).join('\n');
	return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`;
}

/** The PEM blocks of a file's text, in order. */
function splitPem(text) {
	return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) || [];
}

/**
 * Decodes registrationState.issuedCertificateChain: asserts an array of strict base64
 * strings (no line breaks) and returns [{ der, pem, x509 }] in the order given.
 */
function decodeChain(chain) {
	assert.ok(Array.isArray(chain), `issuedCertificateChain is an array: ${JSON.stringify(chain)}`);
	return chain.map((b64, i) => {
		assert.equal(typeof b64, 'string', `issuedCertificateChain[${i}] is a string`);
		assert.match(b64, /^[A-Za-z0-9+/]+={0,2}$/, `issuedCertificateChain[${i}] is base64 without line breaks`);
		const der = Buffer.from(b64, 'base64');
		assert.equal(der.toString('base64'), b64, `issuedCertificateChain[${i}] is canonical base64`);
		const x509 = new crypto.X509Certificate(der);
		return { der, pem: pemOfDer(der), x509 };
	});
}

/** Upper-case hex thumbprints of an X509Certificate. */
function thumbprints(x509) {
	return {
		sha1: x509.fingerprint.replace(/:/g, ''),
		sha256: x509.fingerprint256.replace(/:/g, ''),
	};
}

/**
 * The extensions of a certificate as `openssl x509 -ext` prints them, parsed:
 * { basicConstraints: {critical, text}, keyUsage, extendedKeyUsage, ski, aki } (each
 * {critical, text} or undefined; ski/aki text is upper-case hex without colons or
 * "keyid:").
 */
async function certExtensions(pem) {
	const { stdout } = await openssl(['x509', '-noout', '-ext',
		'basicConstraints,keyUsage,extendedKeyUsage,subjectKeyIdentifier,authorityKeyIdentifier'], { input: pem });
	const out = {};
	const names = {
		'X509v3 Basic Constraints': 'basicConstraints',
		'X509v3 Key Usage': 'keyUsage',
		'X509v3 Extended Key Usage': 'extendedKeyUsage',
		'X509v3 Subject Key Identifier': 'ski',
		'X509v3 Authority Key Identifier': 'aki',
	};
	let current;
	for (const line of stdout.split('\n')) {
		const head = /^(X509v3 [^:]+):\s*(critical)?\s*$/.exec(line);
		if (head && names[head[1]]) {
			current = { critical: head[2] === 'critical', text: '' };
			out[names[head[1]]] = current;
		} else if (current && line.trim()) {
			current.text += (current.text ? '\n' : '') + line.trim();
		}
	}
	for (const k of ['ski', 'aki']) {
		if (out[k]) out[k].text = out[k].text.replace(/^keyid:/, '').replace(/:/g, '').toUpperCase();
	}
	return out;
}

/** `openssl verify -CAfile root -untrusted issuing leaf` (files); resolves { code, stdout, stderr }. */
function opensslVerify(rootPath, issuingPath, leafPath, extra = []) {
	return openssl(['verify', '-CAfile', rootPath, '-untrusted', issuingPath, ...extra, leafPath], { check: false });
}

// ---- register with a CSR: raw HTTPS and raw MQTT ----------------------------------

/**
 * The device API over HTTPS: PUT .../register with body (object or string) and the TLS
 * client certificate cert (a Cert: its chain is presented), api-version apiVersion.
 * A 202 is followed with polls until the operation ends. Resolves
 * { register (the first response), final (the terminal body, or undefined when the
 * register answer was not 202) }.
 */
async function httpsRegister(daemon, { cert, registrationId = cert.cn, body, apiVersion = CSR_API_VERSION }) {
	const base = `/${daemon.scope}/registrations/${encodeURIComponent(registrationId)}`;
	const tls = { ca: daemon.ca, cert: cert.chainPem, key: cert.key };
	const register = await request(daemon.httpsPort, {
		method: 'PUT',
		path: `${base}/register?api-version=${apiVersion}`,
		headers: { Accept: 'application/json' },
		body,
		...tls,
	});
	if (register.status !== 202) return { register, final: undefined };
	const opId = register.json.operationId;
	for (let i = 0; i < MAX_POLLS; i++) {
		const res = await request(daemon.httpsPort, {
			method: 'GET',
			path: `${base}/operations/${encodeURIComponent(opId)}?api-version=${apiVersion}`,
			headers: { Accept: 'application/json' },
			...tls,
		});
		if (res.status === 200) return { register, final: res.json };
		assert.equal(res.status, 202, `poll: ${describe(res)}`);
		await new Promise((r) => setTimeout(r, 20));
	}
	throw new Error(`operation ${opId} of ${registrationId} still pending after ${MAX_POLLS} polls`);
}

/**
 * The device API over raw MQTT: CONNECT with the DPS username (apiVersion), SUBSCRIBE,
 * PUBLISH the register request with body (object or string), then poll while the answer
 * is 202. Resolves { status (of the first answer), body (parsed), final (terminal body,
 * or undefined when the first answer was an error) }.
 */
async function mqttRegister(daemon, { cert, registrationId = cert.cn, body, apiVersion = CSR_API_VERSION }) {
	const { conn, connack } = await mqttConnect(daemon.mqttPort, {
		ca: daemon.ca,
		cert: cert.chainPem,
		key: cert.key,
		clientId: registrationId,
		username: dpsUsername(daemon.scope, registrationId, apiVersion),
	});
	try {
		assert.equal(connack.returnCode, 0, 'DPS CONNACK');
		conn.send(subscribePacket({ pid: 1, topic: '$dps/registrations/res/#', qos: 1 }));
		await conn.nextOfType(TYPE.SUBACK);
		const ask = async (topic, payload, rid) => {
			conn.send(publishPacket({ topic, payload, qos: 1, pid: Number(rid) + 10 }));
			const p = await conn.next((x) => x.type === TYPE.PUBLISH && x.topic.includes(`$rid=${rid}`), 10000,
				`the answer to $rid=${rid}`);
			if (p.qos > 0) conn.send(pubackPacket(p.pid));
			const m = /^\$dps\/registrations\/res\/(\d+)\//.exec(p.topic);
			assert.ok(m, `response topic ${p.topic}`);
			const text = p.payload.toString('utf8');
			return { status: Number(m[1]), topic: p.topic, body: text ? JSON.parse(text) : undefined };
		};
		const payload = typeof body === 'string' ? body : JSON.stringify(body);
		const first = await ask('$dps/registrations/PUT/iotdps-register/?$rid=1', payload, 1);
		if (first.status !== 202) return { ...first, final: undefined };
		let rid = 2;
		for (let i = 0; i < MAX_POLLS; i++, rid++) {
			const res = await ask(`$dps/registrations/GET/iotdps-get-operationstatus/?$rid=${rid}` +
				`&operationId=${encodeURIComponent(first.body.operationId)}`, '', rid);
			if (res.status === 200) return { ...first, final: res.body };
			assert.equal(res.status, 202, `poll answer ${res.topic}: ${JSON.stringify(res.body)}`);
		}
		throw new Error(`MQTT registration of ${registrationId} still pending after ${MAX_POLLS} polls`);
	} finally {
		conn.close();
	}
}

// ---- the C device in first-boot mode ---------------------------------------------

/**
 * Runs build/tools/dps-device against daemon.
 * opts: cert (the bootstrap Cert), registrationId (default cert.cn), csrKeyType
 * (p256|p384|rsa2048; omit for no CSR), csr (true: the --csr shorthand), outDir,
 * hubCheck, message, apiVersion (default: the tool's own), payload (object), timeoutS,
 * args (more raw arguments). Resolves { code, stdout, stderr, json, args }.
 */
function runFirstBoot(daemon, opts) {
	const regId = opts.registrationId || opts.cert.cn;
	const timeoutS = opts.timeoutS || DEVICE_TIMEOUT_S;
	const args = [
		'--host', '127.0.0.1',
		'--port', String(daemon.mqttPort),
		'--ca', daemon.caPath,
		'--scope', daemon.scope,
		'--registration-id', regId,
		'--timeout', String(timeoutS),
		'--cert', opts.cert.chainPath,
		'--key', opts.cert.keyPath,
	];
	if (opts.csrKeyType) args.push('--csr-key-type', opts.csrKeyType);
	if (opts.csr) args.push('--csr');
	if (opts.outDir) args.push('--out-dir', opts.outDir);
	if (opts.hubCheck) args.push('--hub-check');
	if (opts.message !== undefined) args.push('--message', opts.message);
	if (opts.apiVersion) args.push('--api-version', opts.apiVersion);
	if (opts.payload !== undefined) args.push('--payload', JSON.stringify(opts.payload));
	args.push(...(opts.args || []));
	const bin = path.join(TOOLS, 'dps-device');
	return new Promise((resolve, reject) => {
		// Registration and hub check each have the tool's deadline.
		execFile(bin, args, { timeout: (2 * timeoutS + 5) * 1000 }, (err, stdout, stderr) => {
			if (err && typeof err.code !== 'number') {
				err.message = `dps-device ${args.join(' ')}: ${err.message}\n${stderr}`;
				reject(err);
				return;
			}
			let json;
			const line = stdout.trim().split('\n').pop();
			try {
				json = line ? JSON.parse(line) : undefined;
			} catch {
				json = undefined;
			}
			resolve({ code: err ? err.code : 0, stdout, stderr, json, args });
		});
	});
}

function describeRun(run) {
	return `dps-device exit ${run.code}\nargs: ${run.args.join(' ')}\nstdout: ${run.stdout.trim()}\n` +
		`stderr: ${run.stderr.trim()}`;
}

// ---- DPS and hub emulator routes ---------------------------------------------------

/** GET /_emulator/issuedCertificates[?registrationId=]; asserts 200, returns value[]. */
async function issuedList(svc, registrationId) {
	const q = registrationId === undefined ? '' : `?registrationId=${encodeURIComponent(registrationId)}`;
	const res = await svc.get(`/_emulator/issuedCertificates${q}`);
	assert.equal(res.status, 200, `issued certificates: ${describe(res)}`);
	assert.ok(Array.isArray(res.json.value), res.text);
	return res.json.value;
}

/** An iothubowner token for the emulator's host name. */
function hubToken() {
	return sasToken({ sr: HOSTNAME, key: HUB_KEY, keyName: HUB_KEY_NAME });
}

/** One hub service call (api-version appended). Resolves the raw response. */
function hubCall(daemon, method, urlPath, opts = {}) {
	const sep = urlPath.includes('?') ? '&' : '?';
	return request(daemon.httpsPort, {
		method,
		path: `${urlPath}${sep}api-version=${HUB_API_VERSION}`,
		headers: { Accept: 'application/json', Authorization: hubToken() },
		ca: daemon.ca,
		timeoutMs: opts.timeoutMs,
	});
}

/** The hub's device record (asserts 200). */
async function hubDevice(daemon, deviceId) {
	const res = await hubCall(daemon, 'GET', `/devices/${encodeURIComponent(deviceId)}`);
	assert.equal(res.status, 200, `hub device ${deviceId}: ${describe(res)}`);
	return res.json;
}

/** The telemetry the hub kept for deviceId (asserts 200). opts: since, wait (s). */
async function hubTelemetry(daemon, deviceId, opts = {}) {
	const q = [`deviceId=${encodeURIComponent(deviceId)}`];
	if (opts.since !== undefined) q.push(`since=${opts.since}`);
	if (opts.wait !== undefined) q.push(`wait=${opts.wait}`);
	const res = await hubCall(daemon, 'GET', `/_emulator/telemetry?${q.join('&')}`,
		{ timeoutMs: ((opts.wait || 0) + 10) * 1000 });
	assert.equal(res.status, 200, `telemetry of ${deviceId}: ${describe(res)}`);
	return res.json.messages;
}

/** The hub CONNECT username. */
function hubUsername(deviceId, host = HOSTNAME) {
	return `${host}/${deviceId}/?api-version=${HUB_API_VERSION}`;
}

/**
 * Connects to the hub with mqtt.js (MQTT 3.1.1, clean session, no reconnects) as
 * deviceId, presenting certPem (leaf first, then intermediates) with keyPem. Resolves
 * the connected client; rejects with mqtt.js's error (err.code = the CONNACK code when
 * refused).
 */
function mqttjsHubConnect(daemon, { deviceId, certPem, keyPem, timeoutMs = 10000 }) {
	const mqtt = require('mqtt');
	const client = mqtt.connect({
		protocol: 'mqtts',
		host: '127.0.0.1',
		port: daemon.mqttPort,
		servername: 'localhost',
		ca: daemon.ca,
		cert: certPem,
		key: keyPem,
		clientId: deviceId,
		username: hubUsername(deviceId),
		protocolVersion: 4,
		clean: true,
		reconnectPeriod: 0,
		connectTimeout: timeoutMs,
	});
	return new Promise((resolve, reject) => {
		const onConnect = () => {
			client.off('error', onError);
			client.off('close', onClose);
			resolve(client);
		};
		const fail = (err) => {
			client.off('connect', onConnect);
			client.off('error', onError);
			client.off('close', onClose);
			client.end(true);
			reject(err);
		};
		const onError = (err) => fail(err);
		const onClose = () => fail(new Error(`the hub closed the connection of ${deviceId} before CONNACK`));
		client.once('connect', onConnect);
		client.once('error', onError);
		client.once('close', onClose);
	});
}

/** Publishes at QoS 1 with mqtt.js; resolves once the PUBACK arrived. */
function mqttjsPublish(client, topic, body) {
	return new Promise((resolve, reject) => {
		client.publish(topic, body, { qos: 1 }, (err) => (err ? reject(err) : resolve()));
	});
}

/** Sends DISCONNECT and waits for the socket to close. */
function mqttjsEnd(client) {
	return new Promise((resolve) => client.end(false, {}, () => resolve()));
}

module.exports = {
	CSR_API_VERSION,
	EXIT,
	openssl,
	generateKey,
	makeCsr,
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
	hubToken,
	hubDevice,
	hubTelemetry,
	hubUsername,
	mqttjsHubConnect,
	mqttjsPublish,
	mqttjsEnd,
};
