'use strict';
// The DPS service API over raw HTTPS with SAS auth, plus builders for the JSON bodies
// the suites send (enrollments, groups) and checks for Azure error bodies.
const assert = require('node:assert/strict');
const { SERVICE_API_VERSION } = require('./env');
const { request, describe } = require('./https-client');
const { dpsServiceToken } = require('./sas');

class ServiceClient {
	/** daemon: a Daemon (its port and trust root are read on every call). */
	constructor(daemon) {
		this.daemon = daemon;
	}

	/**
	 * Sends method path (api-version appended unless the path has a query).
	 * opts: body, headers, auth (a full Authorization value; null = no header;
	 * default a fresh token with the well-known key).
	 */
	call(method, path, opts = {}) {
		const headers = { Accept: 'application/json', ...(opts.headers || {}) };
		const auth = opts.auth === undefined ? dpsServiceToken() : opts.auth;
		if (auth !== null) headers.Authorization = auth;
		const sep = path.includes('?') ? '' : `?api-version=${SERVICE_API_VERSION}`;
		return request(this.daemon.httpsPort, {
			method,
			path: path + sep,
			headers,
			body: opts.body,
			ca: this.daemon.ca,
		});
	}

	get(path, opts) {
		return this.call('GET', path, opts);
	}

	put(path, body, opts = {}) {
		return this.call('PUT', path, { ...opts, body });
	}

	post(path, body, opts = {}) {
		return this.call('POST', path, { ...opts, body });
	}

	delete(path, opts) {
		return this.call('DELETE', path, opts);
	}

	/** PUT /enrollments/{id}; asserts 200 and returns the stored enrollment. */
	async createEnrollment(enrollment) {
		const res = await this.put(`/enrollments/${encodeURIComponent(enrollment.registrationId)}`, enrollment);
		assert.equal(res.status, 200, `create enrollment ${enrollment.registrationId}: ${describe(res)}`);
		return res.json;
	}

	/** PUT /enrollmentGroups/{id}; asserts 200 and returns the stored group. */
	async createGroup(group) {
		const res = await this.put(`/enrollmentGroups/${encodeURIComponent(group.enrollmentGroupId)}`, group);
		assert.equal(res.status, 200, `create group ${group.enrollmentGroupId}: ${describe(res)}`);
		return res.json;
	}

	/** PUT a CA, generate its verification code, prove possession. Returns the final record. */
	async registerVerifiedCa(name, ca, certs) {
		let res = await this.put(`/certificates/${name}`, { certificate: ca.pem });
		assert.equal(res.status, 200, `PUT /certificates/${name}: ${describe(res)}`);
		res = await this.post(`/certificates/${name}/generateVerificationCode`, {});
		assert.equal(res.status, 200, `generateVerificationCode: ${describe(res)}`);
		const code = res.json.properties.verificationCode;
		const proof = await certs.verification(`${name}-proof`, { code, ca });
		res = await this.post(`/certificates/${name}/verify`, { certificate: proof.pem });
		assert.equal(res.status, 200, `verify: ${describe(res)}`);
		assert.equal(res.json.properties.isVerified, true);
		return res.json;
	}
}

/** An individual X.509 enrollment for a device certificate (PEM). */
function x509Enrollment(registrationId, certPem, extra = {}) {
	return {
		registrationId,
		attestation: { type: 'x509', x509: { clientCertificates: { primary: { certificate: certPem } } } },
		provisioningStatus: 'enabled',
		...extra,
	};
}

/** An X.509 enrollment group on a signing certificate (PEM of a root or intermediate). */
function x509Group(enrollmentGroupId, signingPem, extra = {}) {
	return {
		enrollmentGroupId,
		attestation: { type: 'x509', x509: { signingCertificates: { primary: { certificate: signingPem } } } },
		provisioningStatus: 'enabled',
		...extra,
	};
}

/** An X.509 enrollment group on a CA registered under /certificates/{caName}. */
function caReferenceGroup(enrollmentGroupId, caName, extra = {}) {
	return {
		enrollmentGroupId,
		attestation: { type: 'x509', x509: { caReferences: { primary: caName } } },
		provisioningStatus: 'enabled',
		...extra,
	};
}

/** Asserts a successful DELETE: 200 or 204 (Azure answers either, per resource). */
function assertDeleted(res) {
	assert.ok([200, 204].includes(res.status), `DELETE: ${describe(res)}`);
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const TIMESTAMP_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,7})?Z$/;

/**
 * Asserts res is an Azure error: the status, JSON content type, and the body
 * {errorCode, trackingId, message, timestampUtc} with errorCode/1000 == status
 * (or exactly errorCode when given).
 */
function assertAzureError(res, status, errorCode) {
	assert.equal(res.status, status, describe(res));
	assert.match(res.headers['content-type'] || '', /^application\/json/, 'error content type');
	const body = res.json;
	assert.ok(body && typeof body === 'object', `error body is JSON: ${res.text}`);
	assert.ok(Number.isInteger(body.errorCode), `errorCode is an integer: ${res.text}`);
	if (errorCode !== undefined) assert.equal(body.errorCode, errorCode, res.text);
	else assert.equal(Math.floor(body.errorCode / 1000), status, `errorCode ${body.errorCode} matches HTTP ${status}`);
	assert.match(String(body.trackingId), UUID_RE, 'trackingId is a uuid');
	assert.equal(typeof body.message, 'string');
	assert.ok(body.message.length > 0, 'message is not empty');
	assert.match(String(body.timestampUtc), TIMESTAMP_RE, 'timestampUtc');
	return body;
}

module.exports = {
	ServiceClient,
	x509Enrollment,
	x509Group,
	caReferenceGroup,
	assertAzureError,
	assertDeleted,
	UUID_RE,
	TIMESTAMP_RE,
};
