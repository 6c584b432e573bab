'use strict';
// Service credentials and SAS tokens, computed the way the Azure SDKs compute them:
// sig = base64(HMAC-SHA256(base64decode(key), sr + "\n" + se)), sr sent raw.
const crypto = require('node:crypto');

// The well-known keys every dpsemu starts with (like Azurite's), unless overridden.
const DPS_KEY_NAME = 'provisioningserviceowner';
const DPS_KEY = 'qfJM9SpiJwy/CDjRC6qrpH1y6dpusl850Cer3qtuEBw=';
const HUB_KEY_NAME = 'iothubowner';
const HUB_KEY = 'WCdbwTJRIhYWz5ifxUZTbHaebipHjXkPlFxahEEdpKM=';

function connectionString(host, keyName, key) {
	return `HostName=${host};SharedAccessKeyName=${keyName};SharedAccessKey=${key}`;
}

const DPS_CONNECTION_STRING = connectionString('localhost', DPS_KEY_NAME, DPS_KEY);
const HUB_CONNECTION_STRING = connectionString('localhost', HUB_KEY_NAME, HUB_KEY);

/**
 * Builds `SharedAccessSignature sr=..&sig=..&se=..&skn=..`.
 * opts: sr (resource, sent as given), key (base64), keyName (omitted when falsy),
 * expiry (unix seconds; default now + ttl), ttl (seconds, default 3600).
 */
function sasToken({ sr, key, keyName, expiry, ttl = 3600 }) {
	const se = expiry !== undefined ? expiry : Math.floor(Date.now() / 1000) + ttl;
	const sig = crypto
		.createHmac('sha256', Buffer.from(key, 'base64'))
		.update(`${sr}\n${se}`)
		.digest('base64');
	let token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
	if (keyName) token += `&skn=${keyName}`;
	return token;
}

/** A DPS service token for host (default localhost) with the well-known key. */
function dpsServiceToken(opts = {}) {
	return sasToken({
		sr: opts.host || 'localhost',
		key: opts.key || DPS_KEY,
		keyName: opts.keyName || DPS_KEY_NAME,
		expiry: opts.expiry,
		ttl: opts.ttl,
	});
}

module.exports = {
	DPS_KEY,
	DPS_KEY_NAME,
	HUB_KEY,
	HUB_KEY_NAME,
	DPS_CONNECTION_STRING,
	HUB_CONNECTION_STRING,
	connectionString,
	sasToken,
	dpsServiceToken,
};
