'use strict';
// A raw HTTPS JSON client: node's https with the emulator's trust root, optionally a
// client certificate. One connection per request (no agent), so TLS state never leaks
// from one test into another.
const https = require('node:https');

const DEFAULT_TIMEOUT_MS = 10000;

/**
 * Sends one request to 127.0.0.1:port (TLS server name "localhost").
 * opts: method, path, headers, body (object -> JSON; string/Buffer sent as is),
 * ca (PEM), cert/key (PEM; cert may be a chain), servername, timeoutMs, agent (default
 * none: a fresh connection and TLS session per request).
 * Resolves to { status, headers, text, json } where json is the parsed body or
 * undefined when the body is empty or not JSON. Never rejects on an HTTP status.
 */
function request(port, opts) {
	const headers = { ...(opts.headers || {}) };
	let payload;
	if (opts.body !== undefined) {
		if (typeof opts.body === 'string' || Buffer.isBuffer(opts.body)) {
			payload = Buffer.from(opts.body);
		} else {
			payload = Buffer.from(JSON.stringify(opts.body));
			if (!hasHeader(headers, 'content-type')) headers['Content-Type'] = 'application/json';
		}
		headers['Content-Length'] = String(payload.length);
	}
	const timeoutMs = opts.timeoutMs || DEFAULT_TIMEOUT_MS;
	return new Promise((resolve, reject) => {
		const req = https.request(
			{
				host: '127.0.0.1',
				port,
				servername: opts.servername || 'localhost',
				method: opts.method || 'GET',
				path: opts.path,
				headers,
				ca: opts.ca,
				cert: opts.cert,
				key: opts.key,
				agent: opts.agent || false,
				timeout: timeoutMs,
			},
			(res) => {
				const chunks = [];
				res.on('data', (c) => chunks.push(c));
				res.on('error', reject);
				res.on('end', () => {
					const text = Buffer.concat(chunks).toString('utf8');
					let json;
					try {
						json = text.length ? JSON.parse(text) : undefined;
					} catch {
						json = undefined;
					}
					resolve({ status: res.statusCode, headers: res.headers, text, json });
				});
			},
		);
		req.on('timeout', () =>
			req.destroy(new Error(`${opts.method || 'GET'} ${opts.path}: no answer in ${timeoutMs} ms`)),
		);
		req.on('error', reject);
		req.end(payload);
	});
}

function hasHeader(headers, name) {
	return Object.keys(headers).some((h) => h.toLowerCase() === name);
}

/** One line describing a response, for assertion messages. */
function describe(res) {
	return `HTTP ${res.status} ${res.text.slice(0, 500)}`;
}

module.exports = { request, describe };
