'use strict';
// Runs tools/dps_device.c (build/tools/dps-device): a DPS device over MQTT/TLS on
// libmosquitto. Exit 0 assigned, 2 failed/disabled, 3 error response or CONNACK
// refusal, 1 other errors.
const path = require('node:path');
const { execFile } = require('node:child_process');
const { TOOLS, DEVICE_API_VERSION } = require('./env');

const EXIT = Object.freeze({ ASSIGNED: 0, ERROR: 1, NOT_ASSIGNED: 2, SERVER_ERROR: 3 });
const DEVICE_TIMEOUT_S = 15;

/**
 * Registers a device against daemon over MQTT.
 * opts: cert (a Cert; omit for no client certificate), chain (send cert.chainPem, the
 * default; false sends the leaf only), registrationId (default cert.cn), payload (object),
 * bodyMode ('json'|'empty'), qos, apiVersion, timeoutS, host (default 127.0.0.1).
 * Resolves to { code, stdout, stderr, json } (json = the final response, parsed).
 */
function runDevice(daemon, opts) {
	const regId = opts.registrationId || (opts.cert && opts.cert.cn);
	const timeoutS = opts.timeoutS || DEVICE_TIMEOUT_S;
	const args = [
		'--host', opts.host || '127.0.0.1',
		'--port', String(daemon.mqttPort),
		'--ca', daemon.caPath,
		'--scope', opts.scope || daemon.scope,
		'--registration-id', regId,
		'--api-version', opts.apiVersion || DEVICE_API_VERSION,
		'--timeout', String(timeoutS),
	];
	if (opts.cert) {
		args.push('--cert', opts.chain === false ? opts.cert.certPath : opts.cert.chainPath);
		args.push('--key', opts.cert.keyPath);
	}
	if (opts.payload !== undefined) args.push('--payload', JSON.stringify(opts.payload));
	if (opts.bodyMode) args.push('--body-mode', opts.bodyMode);
	if (opts.qos !== undefined) args.push('--qos', String(opts.qos));
	const bin = path.join(TOOLS, 'dps-device');
	return new Promise((resolve, reject) => {
		// The tool has its own deadline; the extra seconds only catch a hung tool.
		execFile(bin, args, { timeout: (timeoutS + 5) * 1000 }, (err, stdout, stderr) => {
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

/** One line describing a run, for assertion messages. */
function describeRun(run) {
	return `dps-device exit ${run.code}\nstdout: ${run.stdout.trim()}\nstderr: ${run.stderr.trim()}`;
}

module.exports = { runDevice, describeRun, EXIT };
