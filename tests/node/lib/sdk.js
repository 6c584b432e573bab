'use strict';
// The official Azure IoT SDKs pointed at a test daemon, in-process:
// - MQTT: the provisioning transport takes an injected MqttBase carrying the CA; the
//   port goes in the host ("localhost:PORT"), which mqtt.js honours.
// - HTTP: the SDKs always connect to 443, so an https.Agent subclass (PortAgent)
//   rewrites the port; the CA rides in the injected HttpBase / RestApiClient options.
const https = require('node:https');
const { ProvisioningDeviceClient } = require('azure-iot-provisioning-device');
const { Mqtt: ProvMqtt } = require('azure-iot-provisioning-device-mqtt');
const { Http: ProvHttp } = require('azure-iot-provisioning-device-http');
const { MqttBase } = require('azure-iot-mqtt-base');
const { Http: HttpBase } = require('azure-iot-http-base');
const { X509Security } = require('azure-iot-security-x509');
const { ProvisioningServiceClient } = require('azure-iot-provisioning-service');
const { HOSTNAME } = require('./env');
const { DPS_CONNECTION_STRING } = require('./sas');
const { withTimeout } = require('./wait');

const POLLING_INTERVAL_MS = 100;
// Below the SDKs' own 30 s request timeout, so a hang shows up as our error, not theirs.
const REGISTER_TIMEOUT_MS = 20000;

/** An https.Agent that connects to `port` (and 127.0.0.1) whatever the request says. */
class PortAgent extends https.Agent {
	constructor(port, options) {
		super(options);
		this.port = port;
	}

	createConnection(options, callback) {
		// The server name was computed from the original host before this call.
		return super.createConnection({ ...options, host: '127.0.0.1', port: this.port }, callback);
	}
}

/** ProvisioningServiceClient with the well-known connection string, reaching daemon. */
function provisioningServiceClient(daemon, connectionString = DPS_CONNECTION_STRING) {
	const ca = daemon.ca;
	const svc = ProvisioningServiceClient.fromConnectionString(connectionString);
	svc._restApiClient.setOptions({ ca, http: { agent: new PortAgent(daemon.httpsPort, { keepAlive: false, ca }) } });
	return svc;
}

/**
 * A ProvisioningDeviceClient for an X.509 device.
 * opts: transport ('mqtt'|'http'), registrationId, cert (PEM, may be a chain), key (PEM).
 */
function provisioningDeviceClient(daemon, { transport, registrationId, cert, key }) {
	const ca = daemon.ca;
	let t;
	let host;
	if (transport === 'mqtt') {
		const base = new MqttBase();
		base.setOptions({ ca });
		t = new ProvMqtt(base);
		host = `${HOSTNAME}:${daemon.mqttPort}`;
	} else if (transport === 'http') {
		const base = new HttpBase();
		base.setOptions({ ca, http: { agent: new PortAgent(daemon.httpsPort, { ca }) } });
		t = new ProvHttp(base);
		host = HOSTNAME;
	} else {
		throw new Error(`unknown transport ${transport}`);
	}
	t.setTransportOptions({ pollingInterval: POLLING_INTERVAL_MS });
	const security = new X509Security(registrationId, { cert, key });
	return ProvisioningDeviceClient.create(host, daemon.scope, t, security);
}

/**
 * Registers with opts (see provisioningDeviceClient). Resolves with the
 * registrationState the SDK hands the application; rejects with the SDK's error, or
 * with a timeout error after REGISTER_TIMEOUT_MS.
 */
function sdkRegister(daemon, opts) {
	const client = provisioningDeviceClient(daemon, opts);
	const done = new Promise((resolve, reject) => {
		client.register((err, result) => (err ? reject(err) : resolve(result)));
	});
	const what = `SDK register of ${opts.registrationId} over ${opts.transport}`;
	return withTimeout(done, REGISTER_TIMEOUT_MS, what).catch((err) => {
		// Stop a hung client so its sockets and timers do not outlive the test.
		if (/^timed out/.test(err.message)) client.cancel(() => {});
		throw err;
	});
}

module.exports = {
	PortAgent,
	provisioningServiceClient,
	provisioningDeviceClient,
	sdkRegister,
	REGISTER_TIMEOUT_MS,
};
