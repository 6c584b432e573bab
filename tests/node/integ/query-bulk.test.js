'use strict';
// Queries with paging (x-ms-max-item-count / x-ms-continuation / x-ms-item-type) and
// bulk operations, for individual enrollments and groups.
const assert = require('node:assert/strict');
const { test } = require('node:test');
const { useDaemon } = require('../lib/fixture');
const { describe } = require('../lib/https-client');
const { x509Enrollment, x509Group, assertAzureError } = require('../lib/service');

const IDS = ['q-dev-1', 'q-dev-2', 'q-dev-3', 'q-dev-4', 'q-dev-5'];
const GROUP_IDS = ['q-grp-1', 'q-grp-2', 'q-grp-3'];
let certs; // registrationId -> Cert
let root;

const fx = useDaemon({
	async setup() {
		certs = {};
		for (const id of [...IDS, 'bulk-1', 'bulk-2', 'bulk-3']) {
			certs[id] = await fx.certs.device(id, { selfSigned: true });
		}
		root = await fx.certs.root('q-root');
	},
});

/** Runs a query to the end; returns { pages: [[ids]], itemTypes: Set }. Bounded to 20 pages. */
async function queryAll(path, body, pageSize, idField) {
	const pages = [];
	const itemTypes = new Set();
	let continuation;
	for (let i = 0; i < 20; i++) {
		const headers = { 'x-ms-max-item-count': String(pageSize) };
		if (continuation !== undefined) headers['x-ms-continuation'] = continuation;
		const res = await fx.svc.post(path, body, { headers });
		assert.equal(res.status, 200, describe(res));
		assert.ok(Array.isArray(res.json), `query answers a JSON array: ${res.text}`);
		assert.ok(res.json.length <= pageSize, `page of ${res.json.length} > ${pageSize}`);
		itemTypes.add(res.headers['x-ms-item-type']);
		pages.push(res.json.map((e) => e[idField]));
		continuation = res.headers['x-ms-continuation'];
		if (continuation === undefined) return { pages, itemTypes };
		assert.notEqual(continuation, '', 'x-ms-continuation is never sent empty');
	}
	throw new Error('query did not end within 20 pages');
}

test('enrollment query pages: 5 items by 2 -> 3 pages, last page without x-ms-continuation', async () => {
	for (const id of IDS) await fx.svc.createEnrollment(x509Enrollment(id, certs[id].pem));
	for (const body of [{ query: '*' }, { query: 'SELECT * FROM enrollments' }]) {
		const { pages, itemTypes } = await queryAll('/enrollments/query', body, 2, 'registrationId');
		assert.deepEqual(pages.map((p) => p.length), [2, 2, 1], `pages for ${body.query}`);
		assert.deepEqual(pages.flat().sort(), [...IDS].sort(), 'every enrollment exactly once');
		assert.deepEqual([...itemTypes], ['Enrollment']);
	}
	// Without a page size everything comes at once.
	const res = await fx.svc.post('/enrollments/query', { query: '*' });
	assert.equal(res.status, 200, describe(res));
	assert.deepEqual(res.json.map((e) => e.registrationId).sort(), [...IDS].sort());
	assert.equal(res.headers['x-ms-continuation'], undefined);
	assert.equal(res.headers['x-ms-item-type'], 'Enrollment');
});

test('enrollment group query pages and says EnrollmentGroup', async () => {
	for (const id of GROUP_IDS) await fx.svc.createGroup(x509Group(id, root.pem));
	const { pages, itemTypes } = await queryAll('/enrollmentGroups/query', { query: '*' }, 2, 'enrollmentGroupId');
	assert.deepEqual(pages.map((p) => p.length), [2, 1]);
	assert.deepEqual(pages.flat().sort(), [...GROUP_IDS].sort());
	assert.deepEqual([...itemTypes], ['EnrollmentGroup']);
	const lower = await queryAll('/enrollmentgroups/query', { query: 'SELECT * FROM enrollmentGroups' }, 10, 'enrollmentGroupId');
	assert.deepEqual(lower.pages.flat().sort(), [...GROUP_IDS].sort());
});

test('a query that is not JSON is refused with 400', async () => {
	assertAzureError(await fx.svc.post('/enrollments/query', '{nope', {
		headers: { 'Content-Type': 'application/json' },
	}), 400);
});

test('bulk create, then create again: per-item errors for the existing ones', async () => {
	const e1 = x509Enrollment('bulk-1', certs['bulk-1'].pem);
	const e2 = x509Enrollment('bulk-2', certs['bulk-2'].pem);
	let res = await fx.svc.post('/enrollments', { mode: 'create', enrollments: [e1, e2] });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.isSuccessful, true, res.text);
	assert.deepEqual(res.json.errors || [], []);
	for (const id of ['bulk-1', 'bulk-2']) {
		assert.equal((await fx.svc.get(`/enrollments/${id}`)).status, 200, `${id} created`);
	}

	const e3 = x509Enrollment('bulk-3', certs['bulk-3'].pem);
	res = await fx.svc.post('/enrollments', { mode: 'create', enrollments: [e1, e3] });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.isSuccessful, false, res.text);
	assert.equal(res.json.errors.length, 1, res.text);
	const err = res.json.errors[0];
	assert.equal(err.registrationId, 'bulk-1');
	assert.ok(Number.isInteger(err.errorCode), res.text);
	assert.equal(typeof err.errorStatus, 'string');
});

test('bulk update upserts and bulk delete removes', async () => {
	const e1 = x509Enrollment('bulk-1', certs['bulk-1'].pem, { provisioningStatus: 'disabled' });
	let res = await fx.svc.post('/enrollments', { mode: 'update', enrollments: [e1] });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.isSuccessful, true, res.text);
	assert.equal((await fx.svc.get('/enrollments/bulk-1')).json.provisioningStatus, 'disabled');

	const ids = ['bulk-1', 'bulk-2'];
	res = await fx.svc.post('/enrollments', {
		mode: 'delete',
		enrollments: ids.map((id) => x509Enrollment(id, certs[id].pem)),
	});
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.isSuccessful, true, res.text);
	for (const id of ids) assertAzureError(await fx.svc.get(`/enrollments/${id}`), 404);
});

test('bulk operations on groups', async () => {
	const groups = ['bulk-grp-1', 'bulk-grp-2'].map((id) => x509Group(id, root.pem));
	let res = await fx.svc.post('/enrollmentGroups', { mode: 'create', enrollmentGroups: groups });
	assert.equal(res.status, 200, describe(res));
	assert.equal(res.json.isSuccessful, true, res.text);
	res = await fx.svc.post('/enrollmentGroups', { mode: 'create', enrollmentGroups: groups.slice(0, 1) });
	assert.equal(res.json.isSuccessful, false, res.text);
	assert.equal(res.json.errors[0].enrollmentGroupId, 'bulk-grp-1');
	res = await fx.svc.post('/enrollmentGroups', { mode: 'delete', enrollmentGroups: groups });
	assert.equal(res.json.isSuccessful, true, res.text);
	assertAzureError(await fx.svc.get('/enrollmentGroups/bulk-grp-1'), 404);
});

test('bulk requests with a bad mode or bad JSON are refused with 400', async () => {
	const e = x509Enrollment('bulk-x', certs['bulk-3'].pem);
	assertAzureError(await fx.svc.post('/enrollments', { mode: 'explode', enrollments: [e] }), 400);
	assertAzureError(await fx.svc.post('/enrollments', { mode: 'create', enrollments: 'e' }), 400);
	assertAzureError(await fx.svc.post('/enrollments', '[', { headers: { 'Content-Type': 'application/json' } }), 400);
	assertAzureError(await fx.svc.get('/enrollments/bulk-x'), 404);
});
