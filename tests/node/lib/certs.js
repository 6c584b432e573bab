'use strict';
// Test PKI made at run time with the emulator's own certificate tool (`dpsemu certs`),
// so no private key is ever committed. Each call writes PREFIX.pem, PREFIX.key and
// PREFIX-chain.pem into the factory's directory and returns a Cert.
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const { execFile } = require('node:child_process');
const { BIN } = require('./env');

const TOOL_TIMEOUT_MS = 30000;

/** A certificate written by `dpsemu certs`: paths, PEM texts and thumbprints. */
class Cert {
	constructor(prefix, cn) {
		this.prefix = prefix;
		this.cn = cn;
		this.certPath = `${prefix}.pem`;
		this.keyPath = `${prefix}.key`;
		this.chainPath = `${prefix}-chain.pem`;
	}

	get pem() {
		return fs.readFileSync(this.certPath, 'utf8');
	}

	get key() {
		return fs.readFileSync(this.keyPath, 'utf8');
	}

	/** The cert followed by its issuers except the root (what a device presents). */
	get chainPem() {
		return fs.readFileSync(this.chainPath, 'utf8');
	}

	get x509() {
		return new crypto.X509Certificate(this.pem);
	}

	/** SHA-1 / SHA-256 thumbprints as upper-case hex without separators. */
	get sha1() {
		return this.x509.fingerprint.replace(/:/g, '').toUpperCase();
	}

	get sha256() {
		return this.x509.fingerprint256.replace(/:/g, '').toUpperCase();
	}
}

class CertFactory {
	/** dir: where the files go (created if needed). */
	constructor(dir) {
		this.dir = dir;
		fs.mkdirSync(dir, { recursive: true });
	}

	/** Runs `dpsemu certs ARGS...`; rejects with the tool's output on failure. */
	run(args) {
		return new Promise((resolve, reject) => {
			execFile(BIN, ['certs', ...args], { timeout: TOOL_TIMEOUT_MS }, (err, stdout, stderr) => {
				if (err) {
					err.message = `dpsemu certs ${args.join(' ')} failed: ${err.message}\n${stdout}${stderr}`;
					reject(err);
					return;
				}
				resolve({ stdout, stderr });
			});
		});
	}

	prefix(name) {
		return path.join(this.dir, name);
	}

	/** opts: cn (default name), keyType (p256|p384|rsa2048), days. */
	async root(name, opts = {}) {
		const cn = opts.cn || name;
		const args = ['root', '--cn', cn, '--out', this.prefix(name)];
		if (opts.keyType) args.push('--key-type', opts.keyType);
		if (opts.days !== undefined) args.push('--days', String(opts.days));
		await this.run(args);
		return new Cert(this.prefix(name), cn);
	}

	/** opts: cn, ca (a Cert), pathlen. */
	async intermediate(name, opts) {
		const cn = opts.cn || name;
		const args = ['intermediate', '--cn', cn, '--ca', opts.ca.prefix, '--out', this.prefix(name)];
		if (opts.pathlen !== undefined) args.push('--pathlen', String(opts.pathlen));
		await this.run(args);
		return new Cert(this.prefix(name), cn);
	}

	/** opts: cn (default name), ca (a Cert) or selfSigned: true, days, startOffsetDays. */
	async device(name, opts = {}) {
		const cn = opts.cn || name;
		const args = ['device', '--cn', cn, '--out', this.prefix(name)];
		if (opts.ca) args.push('--ca', opts.ca.prefix);
		else args.push('--self-signed');
		if (opts.days !== undefined) args.push('--days', String(opts.days));
		if (opts.startOffsetDays !== undefined) {
			args.push('--start-offset-days', String(opts.startOffsetDays));
		}
		await this.run(args);
		return new Cert(this.prefix(name), cn);
	}

	/** A proof-of-possession certificate: CN = code, signed by ca's key. */
	async verification(name, opts) {
		await this.run(['verification', '--code', opts.code, '--ca', opts.ca.prefix, '--out', this.prefix(name)]);
		return new Cert(this.prefix(name), opts.code);
	}
}

module.exports = { Cert, CertFactory };
