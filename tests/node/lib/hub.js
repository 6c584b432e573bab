'use strict';
// The simulated IoT Hub from a test's side:
// - HubService: the hub service API and the emulator routes over raw HTTPS with an
//   iothubowner token, and checks for the hub's error envelope;
// - raw MQTT device connections (username, SAS password, subscriptions, replies);
// - the official azure-iot-device and azure-iothub clients pointed at a test daemon
//   (device MQTT: the port goes in HostName and the CA in one setOptions call; service
//   REST: the CA and a PortAgent in the RestApiClient options).
const assert = require('node:assert/strict');
const { request, describe } = require('./https-client');
const { mqttConnect, subscribePacket, publishPacket, TYPE } = require('./mqtt-raw');
const { HUB_KEY, HUB_KEY_NAME, HUB_CONNECTION_STRING, sasToken } = require('./sas');
const { HOSTNAME } = require('./env');
const { sleep, withTimeout } = require('./wait');

// What azure-iothub 1.16 and azure-iot-device 1.18 send.
const HUB_API_VERSION = '2021-04-12';
const NEVER = '0001-01-01T00:00:00Z';
// Each SDK call that waits for the daemon gets at most this long.
const SDK_CALL_TIMEOUT_MS = 15000;

/** An iothubowner token. opts: host (sr), key, keyName, expiry (unix seconds). */
function hubToken(opts = {}) {
	return sasToken({
		sr: opts.host || HOSTNAME,
		key: opts.key || HUB_KEY,
		keyName: opts.keyName || HUB_KEY_NAME,
		expiry: opts.expiry,
	});
}

/**
 * Asserts the hub's error envelope: status, iothub-errorcode header, JSON body
 * {Message: "ErrorCode:<code>;<text>", ExceptionMessage: "Tracking ID:..."}, parsed
 * the way azure-iothub parses it. Returns the text after the code.
 */
function assertHubError(res, status, code) {
	assert.equal(res.status, status, describe(res));
	assert.equal(res.headers['iothub-errorcode'], code, `iothub-errorcode header: ${describe(res)}`);
	assert.match(res.headers['content-type'] || '', /application\/json/, 'error content type');
	const body = res.json;
	assert.ok(body && typeof body.Message === 'string', `Message in ${res.text}`);
	assert.equal(body.Message.split(';')[0].split(':')[1], code, res.text);
	assert.match(body.ExceptionMessage, /^Tracking ID:[0-9a-f-]{36}-TimeStamp:\S+$/, res.text);
	return body.Message.slice(body.Message.indexOf(';') + 1);
}

/**
 * Asserts a direct-method failure: status, iothub-errorcode header, and Message holding
 * the JSON {errorCode, trackingId, message, info, timestampUtc}. Returns that object.
 */
function assertMethodError(res, status, errorCode, headerCode) {
	assert.equal(res.status, status, describe(res));
	if (headerCode) assert.equal(res.headers['iothub-errorcode'], headerCode, describe(res));
	assert.ok(res.json && typeof res.json.Message === 'string', `Message in ${res.text}`);
	let inner;
	try {
		inner = JSON.parse(res.json.Message);
	} catch {
		assert.fail(`Message is not JSON: ${res.text}`);
	}
	assert.equal(inner.errorCode, errorCode, res.text);
	assert.equal(typeof inner.message, 'string');
	return inner;
}

class HubService {
	/** daemon: a Daemon (its port and trust root are read on every call). */
	constructor(daemon) {
		this.daemon = daemon;
	}

	/**
	 * One hub call; api-version is appended. opts: body, headers, auth (a full
	 * Authorization value; null = none; default a fresh iothubowner token), timeoutMs.
	 */
	call(method, path, opts = {}) {
		const headers = { Accept: 'application/json', ...(opts.headers || {}) };
		const auth = opts.auth === undefined ? hubToken() : opts.auth;
		if (auth !== null) headers.Authorization = auth;
		const sep = path.includes('?') ? '&' : '?';
		return request(this.daemon.httpsPort, {
			method,
			path: `${path}${sep}api-version=${HUB_API_VERSION}`,
			headers,
			body: opts.body,
			ca: this.daemon.ca,
			timeoutMs: opts.timeoutMs,
		});
	}

	/**
	 * PUT /devices/{id}; asserts 200 and returns the device. extra: more Device JSON
	 * (authentication defaults to Node's "sas with empty keys", which generates keys).
	 */
	async createDevice(deviceId, extra = {}) {
		const body = {
			deviceId,
			...extra,
			authentication: extra.authentication || { type: 'sas', symmetricKey: { primaryKey: '', secondaryKey: '' } },
		};
		const res = await this.call('PUT', devicePath(deviceId), { body });
		assert.equal(res.status, 200, `create ${deviceId}: ${describe(res)}`);
		return res.json;
	}

	/** A selfSigned device accepting cert (a Cert) by its SHA-256 thumbprint. */
	createThumbprintDevice(deviceId, cert, extra = {}) {
		return this.createDevice(deviceId, {
			...extra,
			authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: cert.sha256 } },
		});
	}

	/** A certificateAuthority device. */
	createCaDevice(deviceId, extra = {}) {
		return this.createDevice(deviceId, { ...extra, authentication: { type: 'certificateAuthority' } });
	}

	/** GET /devices/{id}; asserts 200. */
	async getDevice(deviceId) {
		const res = await this.call('GET', devicePath(deviceId));
		assert.equal(res.status, 200, `get ${deviceId}: ${describe(res)}`);
		return res.json;
	}

	/** GET /twins/{id}; asserts 200. */
	async getTwin(deviceId) {
		const res = await this.call('GET', twinPath(deviceId));
		assert.equal(res.status, 200, `get twin ${deviceId}: ${describe(res)}`);
		return res.json;
	}

	/** PATCH /twins/{id} with If-Match "*"; asserts 200 and returns the twin. */
	async patchTwin(deviceId, patch) {
		const res = await this.call('PATCH', twinPath(deviceId), { body: patch, headers: { 'If-Match': '"*"' } });
		assert.equal(res.status, 200, `patch twin ${deviceId}: ${describe(res)}`);
		return res.json;
	}

	/**
	 * GET /_emulator/telemetry. opts: since, wait (s), max, timeoutMs. Resolves the raw
	 * response (status, json ...).
	 */
	telemetryRaw(deviceId, opts = {}) {
		const q = [`deviceId=${encodeURIComponent(deviceId)}`];
		for (const k of ['since', 'wait', 'max']) if (opts[k] !== undefined) q.push(`${k}=${opts[k]}`);
		const waitMs = (opts.wait || 0) * 1000;
		return this.call('GET', `/_emulator/telemetry?${q.join('&')}`, {
			auth: opts.auth,
			timeoutMs: opts.timeoutMs || waitMs + 10000,
		});
	}

	/** The device's telemetry messages (asserts 200); opts as telemetryRaw. */
	async telemetry(deviceId, opts) {
		const res = await this.telemetryRaw(deviceId, opts);
		assert.equal(res.status, 200, `telemetry of ${deviceId}: ${describe(res)}`);
		assert.equal(res.json.deviceId, deviceId);
		assert.ok(Array.isArray(res.json.messages), res.text);
		return res.json.messages;
	}

	/** POST /_emulator/devices/{id}/messages; resolves the raw response. */
	sendC2dRaw(deviceId, message, opts = {}) {
		return this.call('POST', `/_emulator/devices/${encodeURIComponent(deviceId)}/messages`, {
			body: message,
			auth: opts.auth,
		});
	}

	/** Queues a C2D message (asserts 200); returns {deviceId, messageId, sequenceNumber}. */
	async sendC2d(deviceId, message) {
		const res = await this.sendC2dRaw(deviceId, message);
		assert.equal(res.status, 200, `queue C2D for ${deviceId}: ${describe(res)}`);
		return res.json;
	}

	/** GET /_emulator/devices/{id}/messages (asserts 200): the queued messages. */
	async c2dQueue(deviceId) {
		const res = await this.call('GET', `/_emulator/devices/${encodeURIComponent(deviceId)}/messages`);
		assert.equal(res.status, 200, `C2D queue of ${deviceId}: ${describe(res)}`);
		return res.json.messages;
	}

	/**
	 * POST /twins/{id}/methods; resolves the raw response. body: {methodName, payload,
	 * responseTimeoutInSeconds, connectTimeoutInSeconds}. The HTTP timeout covers both.
	 */
	invokeMethod(deviceId, body, opts = {}) {
		const waitS = (body.responseTimeoutInSeconds || 30) + (body.connectTimeoutInSeconds || 0);
		return this.call('POST', `${twinPath(deviceId)}/methods`, {
			body,
			auth: opts.auth,
			timeoutMs: opts.timeoutMs || waitS * 1000 + 10000,
		});
	}
}

// ---- modules ------------------------------------------------------------------------

/** /devices/{id}/modules/{mid} */
function modulePath(deviceId, moduleId) {
	return `${devicePath(deviceId)}/modules/${encodeURIComponent(moduleId)}`;
}

/** /twins/{id}/modules/{mid} */
function moduleTwinPath(deviceId, moduleId) {
	return `${twinPath(deviceId)}/modules/${encodeURIComponent(moduleId)}`;
}

/**
 * PUT /devices/{id}/modules/{mid} without If-Match; asserts 200 and returns the module.
 * extra: more Module JSON (authentication defaults to sas with generated keys).
 */
HubService.prototype.createModule = async function createModule(deviceId, moduleId, extra = {}) {
	const body = {
		deviceId,
		moduleId,
		...extra,
		authentication: extra.authentication || { type: 'sas', symmetricKey: { primaryKey: '', secondaryKey: '' } },
	};
	const res = await this.call('PUT', modulePath(deviceId, moduleId), { body });
	assert.equal(res.status, 200, `create ${deviceId}/${moduleId}: ${describe(res)}`);
	return res.json;
};

/** A selfSigned module accepting cert (a Cert) by its SHA-256 thumbprint. */
HubService.prototype.createThumbprintModule = function createThumbprintModule(deviceId, moduleId, cert) {
	return this.createModule(deviceId, moduleId, {
		authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: cert.sha256 } },
	});
};

/** GET /devices/{id}/modules/{mid}; asserts 200. */
HubService.prototype.getModule = async function getModule(deviceId, moduleId) {
	const res = await this.call('GET', modulePath(deviceId, moduleId));
	assert.equal(res.status, 200, `get ${deviceId}/${moduleId}: ${describe(res)}`);
	return res.json;
};

/** GET /twins/{id}/modules/{mid}; asserts 200. */
HubService.prototype.getModuleTwin = async function getModuleTwin(deviceId, moduleId) {
	const res = await this.call('GET', moduleTwinPath(deviceId, moduleId));
	assert.equal(res.status, 200, `get twin ${deviceId}/${moduleId}: ${describe(res)}`);
	return res.json;
};

/** PATCH /twins/{id}/modules/{mid} with If-Match "*"; asserts 200 and returns the twin. */
HubService.prototype.patchModuleTwin = async function patchModuleTwin(deviceId, moduleId, patch) {
	const res = await this.call('PATCH', moduleTwinPath(deviceId, moduleId), {
		body: patch,
		headers: { 'If-Match': '"*"' },
	});
	assert.equal(res.status, 200, `patch twin ${deviceId}/${moduleId}: ${describe(res)}`);
	return res.json;
};

/** POST /twins/{id}/modules/{mid}/methods; resolves the raw response (body as invokeMethod). */
HubService.prototype.invokeModuleMethod = function invokeModuleMethod(deviceId, moduleId, body, opts = {}) {
	const waitS = (body.responseTimeoutInSeconds || 30) + (body.connectTimeoutInSeconds || 0);
	return this.call('POST', `${moduleTwinPath(deviceId, moduleId)}/methods`, {
		body,
		auth: opts.auth,
		timeoutMs: opts.timeoutMs || waitS * 1000 + 10000,
	});
};

/** The hub CONNECT username of a module: {host}/{device}/{module}/?api-version=... */
function hubModuleUsername(deviceId, moduleId, host = HOSTNAME, clientType = 'dpsemu-tests') {
	return `${host}/${deviceId}/${moduleId}/?api-version=${HUB_API_VERSION}&DeviceClientType=${encodeURIComponent(clientType)}`;
}

/**
 * connectHubDevice for a module: client id {device}/{module} and the module username.
 * opts: deviceId, moduleId, and connectHubDevice's (cert, password, ...).
 */
function connectHubModule(daemon, opts) {
	return connectHubDevice(daemon, {
		...opts,
		clientId: opts.clientId || `${opts.deviceId}/${opts.moduleId}`,
		username: opts.username || hubModuleUsername(opts.deviceId, opts.moduleId),
	});
}

/** connectHubModule, asserting CONNACK 0; returns the connection. */
async function openHubModule(daemon, opts) {
	const { conn, connack } = await connectHubModule(daemon, opts);
	if (connack.returnCode !== 0) {
		conn.close();
		assert.fail(`module ${opts.deviceId}/${opts.moduleId}: CONNACK ${connack.returnCode}, expected 0`);
	}
	return conn;
}

function devicePath(deviceId) {
	return `/devices/${encodeURIComponent(deviceId)}`;
}

function twinPath(deviceId) {
	return `/twins/${encodeURIComponent(deviceId)}`;
}

/** The hub CONNECT username a Node device sends (host may carry a port). */
function hubUsername(deviceId, host = HOSTNAME, clientType = 'dpsemu-tests') {
	return `${host}/${deviceId}/?api-version=${HUB_API_VERSION}&DeviceClientType=${encodeURIComponent(clientType)}`;
}

/**
 * A device SAS token as azure-iot-device makes it: sr = encodeURIComponent(host/devices/id),
 * no key name. opts: host, expiry (unix seconds), ttl.
 */
function deviceSasToken(deviceId, key, opts = {}) {
	return sasToken({
		sr: encodeURIComponent(`${opts.host || HOSTNAME}/devices/${deviceId}`),
		key,
		expiry: opts.expiry,
		ttl: opts.ttl,
	});
}

/**
 * Opens a raw MQTT connection for a hub device and sends CONNECT.
 * opts: deviceId, cert (a Cert: its chain is presented unless chain === false), or
 * certPem/keyPem, password (a SAS token), username/clientId (defaults from deviceId),
 * clean. Resolves { conn, connack } whatever the CONNACK says.
 */
function connectHubDevice(daemon, opts) {
	let cert = opts.certPem;
	let key = opts.keyPem;
	if (opts.cert) {
		cert = opts.chain === false ? opts.cert.pem : opts.cert.chainPem;
		key = opts.cert.key;
	}
	return mqttConnect(daemon.mqttPort, {
		ca: daemon.ca,
		cert,
		key,
		clientId: opts.clientId || opts.deviceId,
		username: opts.username || hubUsername(opts.deviceId),
		password: opts.password,
		clean: opts.clean === undefined ? false : opts.clean,
	});
}

/** connectHubDevice, asserting CONNACK 0; returns the connection. */
async function openHubDevice(daemon, opts) {
	const { conn, connack } = await connectHubDevice(daemon, opts);
	if (connack.returnCode !== 0) {
		conn.close();
		assert.fail(`device ${opts.deviceId}: CONNACK ${connack.returnCode}, expected 0`);
	}
	return conn;
}

let nextPid = 100;

/** Sends SUBSCRIBE topic and resolves with the SUBACK's granted codes. */
async function subscribe(conn, topic, qos = 1) {
	const pid = nextPid++;
	conn.send(subscribePacket({ pid, topic, qos }));
	const suback = await conn.next((p) => p.type === TYPE.SUBACK && p.pid === pid, 5000, `SUBACK for ${topic}`);
	return suback.granted;
}

/** Publishes at QoS 1 and resolves once the PUBACK for it arrives. */
async function publishAcked(conn, topic, payload) {
	const pid = nextPid++;
	conn.send(publishPacket({ topic, payload, qos: 1, pid }));
	await conn.next((p) => p.type === TYPE.PUBACK && p.pid === pid, 5000, `PUBACK for ${topic}`);
	return pid;
}

/** The telemetry topic of deviceId with an encoded property bag (string, may be ''). */
function eventsTopic(deviceId, bag = '') {
	return `devices/${deviceId}/messages/events/${bag}`;
}

/** Parses "$iothub/.../?a=1&b=2" into { path, query: {a: '1', b: '2'} }. */
function splitTopic(topic) {
	const i = topic.indexOf('/?');
	const path = i < 0 ? topic : topic.slice(0, i);
	const query = {};
	if (i >= 0) {
		for (const pair of topic.slice(i + 2).split('&')) {
			const eq = pair.indexOf('=');
			if (eq < 0) query[decodeURIComponent(pair)] = null;
			else query[decodeURIComponent(pair.slice(0, eq))] = decodeURIComponent(pair.slice(eq + 1));
		}
	}
	return { path, query };
}

/**
 * Sends a twin request (GET, or a reported PATCH when body is given) with a fresh $rid
 * and resolves with the response { status, version, body (parsed or text), rid }.
 * The caller has subscribed to $iothub/twin/res/#.
 */
async function twinRequest(conn, { method = 'GET', body, version } = {}) {
	const rid = String(nextPid++);
	let topic = method === 'GET'
		? `$iothub/twin/GET/?$rid=${rid}`
		: `$iothub/twin/PATCH/properties/reported/?$rid=${rid}`;
	if (version !== undefined) topic += `&$version=${version}`;
	conn.send(publishPacket({ topic, payload: body === undefined ? '' : body, qos: 0 }));
	const res = await conn.next((p) => p.type === TYPE.PUBLISH && p.topic.startsWith('$iothub/twin/res/') &&
		splitTopic(p.topic).query.$rid === rid, 5000, `twin response for $rid ${rid}`);
	const m = /^\$iothub\/twin\/res\/(\d+)$/.exec(splitTopic(res.topic).path);
	assert.ok(m, `twin response topic ${res.topic}`);
	const text = res.payload.toString('utf8');
	let parsed = text;
	try {
		parsed = text.length ? JSON.parse(text) : undefined;
	} catch {
		// left as text
	}
	const q = splitTopic(res.topic).query;
	return {
		status: Number(m[1]),
		version: q.$version === undefined ? undefined : Number(q.$version),
		body: parsed,
		rid,
		topic: res.topic,
	};
}

// ---- the official SDKs --------------------------------------------------------
// Required lazily, so the raw-protocol suite loads no SDK package.

/** azure-iothub's RestApiClient options reaching daemon: its CA and a PortAgent. */
function restOptions(daemon) {
	const { PortAgent } = require('./sdk');
	const ca = daemon.ca;
	return { ca, http: { agent: new PortAgent(daemon.httpsPort, { keepAlive: false, ca }) } };
}

/** azure-iothub Registry with the well-known connection string, reaching daemon. */
function hubRegistry(daemon, connectionString = HUB_CONNECTION_STRING) {
	const { Registry } = require('azure-iothub');
	const registry = Registry.fromConnectionString(connectionString);
	registry._restApiClient.setOptions(restOptions(daemon));
	return registry;
}

/**
 * azure-iothub Client (REST calls only: direct methods) reaching daemon; its retry
 * policy is NoRetry so a failure surfaces as the service's answer.
 */
function hubServiceClient(daemon, connectionString = HUB_CONNECTION_STRING) {
	const { Client } = require('azure-iothub');
	const client = Client.fromConnectionString(connectionString);
	client._restApiClient.setOptions(restOptions(daemon));
	client.setRetryPolicy({ shouldRetry: () => false, nextRetryTimeout: () => 0 });
	return client;
}

/**
 * An azure-iot-device Client over MQTT with X.509, options set (not opened).
 * opts: deviceId, cert (PEM, may be a chain), key (PEM), host (the hub's name, e.g. a
 * registration's assignedHub; default localhost): the daemon's MQTT port is appended.
 */
async function deviceClient(daemon, { deviceId, cert, key, host = HOSTNAME }) {
	const { Client } = require('azure-iot-device');
	const { Mqtt } = require('azure-iot-device-mqtt');
	const cs = `HostName=${host}:${daemon.mqttPort};DeviceId=${deviceId};x509=true`;
	const client = Client.fromConnectionString(cs, Mqtt);
	// One call: each setOptions replaces the earlier options.
	await client.setOptions({ cert, key, ca: daemon.ca });
	return client;
}

/** Runs a callback-style SDK call as a promise with a bounded wait. */
function sdkCall(what, fn, timeoutMs = SDK_CALL_TIMEOUT_MS) {
	return withTimeout(new Promise((resolve, reject) => {
		fn((err, ...rest) => (err ? reject(err) : resolve(rest.length > 1 ? rest : rest[0])));
	}), timeoutMs, what);
}

/**
 * Invokes a direct method through azure-iothub, retrying 404103 (the device SDK
 * subscribes to methods lazily, after onDeviceMethod) for up to timeoutMs.
 * Resolves with the SDK's result ({status, payload}).
 */
async function invokeWhenSubscribed(serviceClient, deviceId, params, timeoutMs = 10000) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		try {
			const r = await withTimeout(serviceClient.invokeDeviceMethod(deviceId, params), SDK_CALL_TIMEOUT_MS,
				`invokeDeviceMethod ${params.methodName}`);
			return r.result;
		} catch (err) {
			const offline = err.response && err.response.statusCode === 404 && /404103/.test(err.responseBody || err.message);
			if (!offline || Date.now() >= deadline) throw err;
			await sleep(100);
		}
	}
}

module.exports = {
	HUB_API_VERSION,
	NEVER,
	SDK_CALL_TIMEOUT_MS,
	HubService,
	hubToken,
	assertHubError,
	assertMethodError,
	devicePath,
	twinPath,
	hubUsername,
	deviceSasToken,
	connectHubDevice,
	openHubDevice,
	subscribe,
	publishAcked,
	eventsTopic,
	splitTopic,
	twinRequest,
	hubRegistry,
	hubServiceClient,
	deviceClient,
	sdkCall,
	invokeWhenSubscribed,
	modulePath,
	moduleTwinPath,
	hubModuleUsername,
	connectHubModule,
	openHubModule,
};
