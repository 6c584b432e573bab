'use strict';
// The daemon harness: starts build/dpsemu on free ports with a temporary data dir,
// waits for /health, keeps its log, stops it with SIGTERM (asserting exit code 0) and
// restarts it on the same data dir.
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { BIN, SCOPE } = require('./env');
const { request } = require('./https-client');
const { sleep } = require('./wait');

const START_TIMEOUT_MS = 20000;
const STOP_TIMEOUT_MS = 10000;
const START_ATTEMPTS = 3; // a free port can be taken between probing and binding
const LOG_TAIL_LINES = 400;

/** Ports nobody listens on right now: bind to 0 on 127.0.0.1, note the port, close. */
async function freePorts(count) {
	const servers = [];
	try {
		for (let i = 0; i < count; i++) {
			const srv = net.createServer();
			await new Promise((resolve, reject) => {
				srv.once('error', reject);
				srv.listen(0, '127.0.0.1', resolve);
			});
			servers.push(srv);
		}
		return servers.map((s) => s.address().port);
	} finally {
		await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
	}
}

class Daemon {
	/**
	 * opts: dataDir (required; kept across restarts), env (extra DPSEMU_* variables).
	 * Use Daemon.start() rather than the constructor.
	 */
	constructor(opts) {
		this.dataDir = opts.dataDir;
		this.extraEnv = opts.env || {};
		this.scope = this.extraEnv.DPSEMU_ID_SCOPE || SCOPE;
		this.lines = []; // every line the daemon wrote, over all runs
		this.proc = null;
		this.exited = null; // promise of { code, signal } for the current process
		this.exitStatus = null;
	}

	static async start(opts) {
		const d = new Daemon(opts);
		await d.launch();
		return d;
	}

	get caPath() {
		return path.join(this.dataDir, 'certs', 'server-ca.pem');
	}

	/** The TLS trust root the daemon generated (read fresh: it may change on restart). */
	get ca() {
		return fs.readFileSync(this.caPath, 'utf8');
	}

	get running() {
		return this.proc !== null && this.exitStatus === null;
	}

	env() {
		// The caller's environment (sanitizer options included) minus any DPSEMU_* setting
		// of its own, so a developer's shell cannot change what the suites test.
		const inherited = Object.fromEntries(
			Object.entries(process.env).filter(([k]) => !k.startsWith('DPSEMU_')),
		);
		return {
			...inherited,
			DPSEMU_DATA_DIR: this.dataDir,
			DPSEMU_HOSTNAME: 'localhost',
			DPSEMU_BIND: '127.0.0.1',
			DPSEMU_MQTT_PORT: String(this.mqttPort),
			DPSEMU_HTTPS_PORT: String(this.httpsPort),
			DPSEMU_ID_SCOPE: this.scope,
			DPSEMU_RETRY_AFTER: '0',
			DPSEMU_LOG_LEVEL: 'debug',
			...this.extraEnv,
		};
	}

	/** Starts the process and waits until /health answers 200 (retrying busy ports). */
	async launch() {
		let lastErr;
		for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
			[this.mqttPort, this.httpsPort] = await freePorts(2);
			try {
				await this.spawnAndWait();
				return;
			} catch (err) {
				lastErr = err;
				const portBusy = /in use|EADDRINUSE/i.test(this.logText(this.runStart));
				if (this.running || !portBusy) break;
			}
		}
		if (this.running) await this.kill('SIGKILL');
		throw lastErr;
	}

	async spawnAndWait() {
		this.runStart = this.lines.length;
		this.exitStatus = null;
		const proc = spawn(BIN, [], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
		this.proc = proc;
		this.exited = new Promise((resolve) => {
			proc.on('exit', (code, signal) => {
				this.exitStatus = { code, signal };
				resolve(this.exitStatus);
			});
			proc.on('error', (err) => {
				this.record(`[harness] cannot start ${BIN}: ${err.message}`);
				this.exitStatus = { code: null, signal: null, error: err };
				resolve(this.exitStatus);
			});
		});
		this.capture(proc.stdout);
		this.capture(proc.stderr);
		this.record(`[harness] started ${BIN} pid ${proc.pid}: mqtt ${this.mqttPort}, https ${this.httpsPort}`);

		const deadline = Date.now() + START_TIMEOUT_MS;
		let lastErr = 'no answer yet';
		while (Date.now() < deadline) {
			if (this.exitStatus) {
				throw new Error(`dpsemu exited before it was healthy (${describeExit(this.exitStatus)})` +
					`\n${this.logText(this.runStart)}`);
			}
			if (fs.existsSync(this.caPath)) {
				try {
					const res = await request(this.httpsPort, { path: '/health', ca: this.ca, timeoutMs: 2000 });
					if (res.status === 200) return;
					lastErr = `HTTP ${res.status}`;
				} catch (err) {
					lastErr = err.message;
				}
			} else {
				lastErr = `${this.caPath} not written yet`;
			}
			await sleep(50);
		}
		throw new Error(`dpsemu not healthy after ${START_TIMEOUT_MS} ms (${lastErr})` +
			`\n${this.logText(this.runStart)}`);
	}

	capture(stream) {
		let partial = '';
		stream.setEncoding('utf8');
		stream.on('data', (chunk) => {
			const parts = (partial + chunk).split('\n');
			partial = parts.pop();
			for (const line of parts) this.record(line);
		});
		stream.on('end', () => {
			if (partial) this.record(partial);
			partial = '';
		});
	}

	record(line) {
		this.lines.push(line);
	}

	/** A position in the log, for logText(mark) / waitForLog(re, {since: mark}). */
	mark() {
		return this.lines.length;
	}

	logText(since = 0) {
		return this.lines.slice(since).join('\n');
	}

	/** Resolves with the first line at or after `since` matching re; rejects after timeoutMs. */
	async waitForLog(re, { since = 0, timeoutMs = 5000 } = {}) {
		const deadline = Date.now() + timeoutMs;
		for (;;) {
			const line = this.lines.slice(since).find((l) => re.test(l));
			if (line !== undefined) return line;
			if (Date.now() >= deadline) {
				throw new Error(`no daemon log line matching ${re} within ${timeoutMs} ms`);
			}
			await sleep(25);
		}
	}

	/** Writes the log (from `since`, at most the last LOG_TAIL_LINES lines) to stderr. */
	printLog(title, since = 0) {
		let lines = this.lines.slice(since);
		const dropped = Math.max(0, lines.length - LOG_TAIL_LINES);
		lines = lines.slice(dropped);
		const state = this.exitStatus ? `exited: ${describeExit(this.exitStatus)}` : 'running';
		const head = `----- ${title} (dpsemu ${state}, data dir ${this.dataDir})`;
		const skipped = dropped ? `\n[... ${dropped} earlier lines]` : '';
		process.stderr.write(`${head}${skipped}\n${lines.join('\n')}\n----- end of daemon log\n`);
	}

	/** Sends a signal (SIGHUP reloads the seed directory). */
	signal(sig) {
		if (!this.running) throw new Error(`dpsemu is not running (${describeExit(this.exitStatus)})`);
		this.proc.kill(sig);
	}

	/** Sends sig and waits for the exit; escalates to SIGKILL after STOP_TIMEOUT_MS. */
	async kill(sig) {
		if (!this.proc) return null;
		if (this.running) this.proc.kill(sig);
		let timer;
		const timedOut = new Promise((resolve) => {
			timer = setTimeout(() => resolve(null), STOP_TIMEOUT_MS);
		});
		let status = await Promise.race([this.exited, timedOut]);
		clearTimeout(timer);
		if (status === null) {
			this.record(`[harness] no exit ${STOP_TIMEOUT_MS} ms after ${sig}: SIGKILL`);
			this.proc.kill('SIGKILL');
			await this.exited;
			status = { ...this.exitStatus, hung: true };
		}
		return status;
	}

	/** Stops the daemon with sig (SIGTERM) and throws unless it exited with code 0. */
	async stop(sig = 'SIGTERM') {
		const wasRunning = this.running;
		const status = await this.kill(sig);
		if (!status) return;
		if (status.hung || status.code !== 0) {
			const what = wasRunning ? `after ${sig}` : 'before the test stopped it';
			throw new Error(`dpsemu exited ${what} with ${describeExit(status)}` +
				`${status.hung ? ' (did not exit by itself: killed)' : ''}; expected exit code 0`);
		}
	}

	/** Stops (asserting exit 0) and starts again on the same data dir, on new ports. */
	async restart() {
		await this.stop();
		await this.launch();
	}
}

function describeExit(status) {
	if (!status) return 'still running';
	if (status.error) return status.error.message;
	return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

module.exports = { Daemon, freePorts };
