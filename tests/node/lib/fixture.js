'use strict';
// useDaemon(): the per-file fixture. It registers node:test hooks that start one daemon
// for the test file (temporary dir, free ports), print the daemon's log for every
// failing test, and stop the daemon at the end asserting exit code 0. The temporary
// dir is removed when everything passed and kept (and named) otherwise.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { before, after, beforeEach, afterEach } = require('node:test');
const { CertFactory } = require('./certs');
const { Daemon } = require('./daemon');
const { ServiceClient } = require('./service');
const { runDevice } = require('./dps-device');

const HOOK_TIMEOUT_MS = 60000;

/**
 * opts: env (extra DPSEMU_* variables), beforeStart(fx) (async; runs after the temp dir
 * and cert factory exist and before the daemon starts; may return more env variables),
 * setup(fx) (async; runs once the daemon is healthy, for the file's own fixtures).
 * Returns fx, filled in by the `before` hook: { dir, certs, daemon, svc, device(opts) }.
 *
 * Put per-file setup in opts.setup rather than in another root-level before(): node 20
 * starts root-level before hooks concurrently, so a second hook could run before the
 * daemon is up.
 */
function useDaemon(opts = {}) {
	const fx = {
		dir: null,
		certs: null,
		daemon: null,
		svc: null,
		failed: false,
		mark: 0,
		/** Runs the C device client against this daemon (see lib/dps-device.js). */
		device(deviceOpts) {
			return runDevice(fx.daemon, deviceOpts);
		},
	};

	before(async () => {
		fx.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dpsemu-test-'));
		fx.certs = new CertFactory(path.join(fx.dir, 'pki'));
		const env = { ...(opts.env || {}) };
		if (opts.beforeStart) Object.assign(env, (await opts.beforeStart(fx)) || {});
		try {
			fx.daemon = await Daemon.start({ dataDir: path.join(fx.dir, 'data'), env });
		} catch (err) {
			fx.failed = true;
			throw err;
		}
		fx.svc = new ServiceClient(fx.daemon);
		if (opts.setup) {
			try {
				await opts.setup(fx);
			} catch (err) {
				fx.failed = true;
				fx.daemon.printLog('daemon log during the file\'s setup');
				throw err;
			}
		}
	}, { timeout: HOOK_TIMEOUT_MS });

	beforeEach(() => {
		fx.mark = fx.daemon ? fx.daemon.mark() : 0;
	});

	afterEach((t) => {
		if (t.passed) return;
		fx.failed = true;
		if (fx.daemon) fx.daemon.printLog(`daemon log during "${t.name}"`, fx.mark);
	});

	after(async () => {
		try {
			if (fx.daemon) await fx.daemon.stop();
		} catch (err) {
			fx.failed = true;
			fx.daemon.printLog('daemon log (stopping failed)', Math.max(0, fx.daemon.mark() - 100));
			throw err;
		} finally {
			if (fx.dir && !fx.failed) fs.rmSync(fx.dir, { recursive: true, force: true });
			else if (fx.dir) process.stderr.write(`kept test dir ${fx.dir}\n`);
		}
	}, { timeout: HOOK_TIMEOUT_MS });

	return fx;
}

module.exports = { useDaemon };
