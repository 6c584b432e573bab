'use strict';
// The service API really verifies SAS tokens: the HMAC, the expiry and the key name.
const assert = require('node:assert/strict');
const path = require('node:path');
const { test } = require('node:test');
const { Daemon } = require('../lib/daemon');
const { useDaemon } = require('../lib/fixture');
const { ServiceClient, assertAzureError } = require('../lib/service');
const { DPS_KEY_NAME, HUB_KEY, sasToken, dpsServiceToken } = require('../lib/sas');

const fx = useDaemon();

// A route every case below can use: listing enrollments through a query.
const QUERY = '/enrollments/query';
const QUERY_BODY = { query: '*' };

test('a token signed with the well-known key is accepted', async () => {
	const res = await fx.svc.post(QUERY, QUERY_BODY);
	assert.equal(res.status, 200, res.text);
	assert.deepEqual(res.json, []);
});

test('a token whose se is in milliseconds (as the Node service SDK sends) is accepted', async () => {
	const res = await fx.svc.post(QUERY, QUERY_BODY, { auth: dpsServiceToken({ expiry: Date.now() }) });
	assert.equal(res.status, 200, res.text);
});

const refusals = [
	['no Authorization header', () => null],
	['a token signed with the wrong key', () => dpsServiceToken({ key: Buffer.alloc(32, 7).toString('base64') })],
	['a token signed with the hub key under the DPS key name', () => dpsServiceToken({ key: HUB_KEY })],
	['an expired token', () => dpsServiceToken({ expiry: Math.floor(Date.now() / 1000) - 60 })],
	['an unknown key name', () => dpsServiceToken({ keyName: 'someoneelse' })],
	['a token for another host', () => dpsServiceToken({ host: 'other.azure-devices-provisioning.net' })],
	['a tampered signature', () => dpsServiceToken().replace(/sig=[^&]+/, 'sig=AAAA')],
	['a token without a signature', () => dpsServiceToken().replace(/&?sig=[^&]+/, '')],
	['not a SAS token at all', () => 'Basic dXNlcjpwYXNz'],
];

for (const [what, token] of refusals) {
	test(`401 with an Azure error body for ${what}`, async () => {
		const routes = [
			['POST', QUERY, QUERY_BODY],
			['GET', '/enrollments/anything'],
			['GET', '/enrollmentGroups/anything'],
			['GET', '/registrations/anything'],
			['GET', '/certificates'],
		];
		for (const [method, route, body] of routes) {
			const res = await fx.svc.call(method, route, { auth: token(), body });
			assertAzureError(res, 401);
		}
	});
}

test('the key can be replaced with DPSEMU_DPS_KEY', async () => {
	// A second daemon with another key: the well-known key must stop working there.
	const key = Buffer.alloc(32, 9).toString('base64');
	const d = await Daemon.start({ dataDir: path.join(fx.dir, 'data-other-key'), env: { DPSEMU_DPS_KEY: key } });
	let ok = false;
	try {
		const svc = new ServiceClient(d);
		assertAzureError(await svc.post(QUERY, QUERY_BODY), 401);
		const good = sasToken({ sr: 'localhost', key, keyName: DPS_KEY_NAME });
		const res = await svc.post(QUERY, QUERY_BODY, { auth: good });
		assert.equal(res.status, 200, res.text);
		ok = true;
	} finally {
		if (!ok) d.printLog('daemon log (DPSEMU_DPS_KEY)');
		await d.stop();
	}
});
