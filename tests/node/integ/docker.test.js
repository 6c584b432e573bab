'use strict';
// The container recipe, tested on the host: CI machines have no Docker engine, so this
// file runs what the image build runs (docker/build.sh) and what the containers run (the
// staged programs, with the environment the Dockerfile and the compose files give them):
//   * build.sh stages dpsemu and dps-device with exactly the libraries they load;
//   * the staged dpsemu runs from the stage, and `dpsemu health` (the image's HEALTHCHECK)
//     tells a healthy daemon from a stopped, missing or untrusted one;
//   * the compose files are valid (docker compose config, else docker-compose config,
//     else the YAML reading below) and consistent with the image and the daemon;
//   * the deployment docker/docker-compose.yml describes works: the pki service's script,
//     DPS and hub as two processes with the compose environment, the seed enrollment, the
//     example device provisioning with a CSR and sending telemetry to its hub, and the
//     hub forwarding it to an MQTT broker.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { test, before, after } = require('node:test');
const mqtt = require('mqtt');
const { BIN } = require('../lib/env');
const { Daemon, freePorts } = require('../lib/daemon');
const { request } = require('../lib/https-client');
const { sasToken, HUB_KEY, HUB_KEY_NAME } = require('../lib/sas');
const { sleep, waitFor, withTimeout } = require('../lib/wait');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const DOCKER = path.join(ROOT, 'docker');
const STAGE = path.join(ROOT, 'build', 'image-stage');
const DEVICE_STAGE = path.join(ROOT, 'build', 'image-stage-device');
const LIBDIR = 'usr/local/lib/dpsemu';
const STAGED_DPSEMU = path.join(STAGE, 'usr/local/bin/dpsemu');
const STAGED_DEVICE = path.join(DEVICE_STAGE, 'usr/local/bin/dps-device');
const COMPOSE_FILES = ['docker-compose.yml', 'docker-compose.all-in-one.yml'];

// A first build compiles everything and may install packages: be generous.
const BUILD_TIMEOUT_MS = 20 * 60 * 1000;
const HEALTHY_TIMEOUT_MS = 30000;
const DEVICE_TIMEOUT_S = 30;

let tmp;
let failed = false;
const builds = [];

before(async () => {
	tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dpsemu-docker-'));
	// As the Dockerfile's build stage does: the emulator, then the device, each its own stage.
	for (const [dir, prog] of [[STAGE, 'dpsemu'], [DEVICE_STAGE, 'dps-device']]) {
		const started = Date.now();
		const r = await run(path.join(DOCKER, 'build.sh'), [dir, prog], {
			env: buildEnv(),
			timeoutMs: BUILD_TIMEOUT_MS,
		});
		builds.push({ prog, ms: Date.now() - started, ...r });
		assert.equal(r.code, 0, `docker/build.sh ${dir} ${prog}: ${describe(r)}`);
	}
});

after(() => {
	if (!failed && tmp) fs.rmSync(tmp, { recursive: true, force: true });
	else if (tmp) process.stderr.write(`docker tests: kept ${tmp}\n`);
});

function markFailure(t) {
	t.after(() => {
		if (t.passed === false) failed = true;
	});
}

// ---- processes -------------------------------------------------------------------

/** Runs cmd to completion: { code, signal, stdout, stderr, timedOut }. Never rejects on
 * an exit status; a process still running after timeoutMs is killed. */
function run(cmd, args, { env, timeoutMs = 30000, cwd } = {}) {
	return new Promise((resolve, reject) => {
		const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
		const out = [];
		const err = [];
		let timedOut = false;
		const timer = setTimeout(() => {
			timedOut = true;
			child.kill('SIGKILL');
		}, timeoutMs);
		child.stdout.on('data', (c) => out.push(c));
		child.stderr.on('data', (c) => err.push(c));
		child.on('error', (e) => {
			clearTimeout(timer);
			reject(new Error(`cannot run ${cmd}: ${e.message}`));
		});
		child.on('close', (code, signal) => {
			clearTimeout(timer);
			resolve({
				code,
				signal,
				timedOut,
				stdout: Buffer.concat(out).toString('utf8'),
				stderr: Buffer.concat(err).toString('utf8'),
				cmd: [cmd, ...args].join(' '),
			});
		});
	});
}

function describe(r) {
	const how = r.timedOut ? 'timed out' : r.signal ? `signal ${r.signal}` : `exit ${r.code}`;
	return `${r.cmd}: ${how}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

/** The caller's environment without make's (build.sh must not depend on them). */
function buildEnv() {
	const env = { ...process.env };
	for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES']) delete env[k];
	return env;
}

/** A container-like environment for staged programs: nothing inherited but PATH; the
 * stage's library folder stands in for the image's /etc/ld.so.conf.d entry. */
function stagedEnv(extra = {}) {
	return {
		PATH: `${path.join(STAGE, 'usr/local/bin')}:/usr/bin:/bin`,
		LD_LIBRARY_PATH: [path.join(STAGE, LIBDIR), path.join(DEVICE_STAGE, LIBDIR)].join(':'),
		...extra,
	};
}

/** A long-running staged process with its output kept for failure messages. */
class Proc {
	constructor(name, cmd, args, env) {
		this.name = name;
		this.lines = [];
		this.child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
		this.exited = new Promise((resolve) => {
			this.child.on('exit', (code, signal) => {
				this.status = { code, signal };
				resolve(this.status);
			});
			this.child.on('error', (e) => {
				this.status = { code: null, error: e.message };
				resolve(this.status);
			});
		});
		for (const s of [this.child.stdout, this.child.stderr]) {
			s.setEncoding('utf8');
			s.on('data', (c) => this.lines.push(...c.split('\n').filter(Boolean)));
		}
	}

	get log() {
		return `----- ${this.name}\n${this.lines.slice(-200).join('\n')}\n-----`;
	}

	/** SIGTERM, then the exit status (SIGKILL after 10 s). */
	async stop() {
		if (!this.status) this.child.kill('SIGTERM');
		const status = await Promise.race([this.exited, sleep(10000).then(() => null)]);
		if (status) return status;
		this.child.kill('SIGKILL');
		await this.exited;
		return { ...this.status, hung: true };
	}
}

/** Runs `dpsemu health` (staged unless bin says otherwise) as Docker's HEALTHCHECK does. */
function health(env, args = [], bin = STAGED_DPSEMU) {
	return run(bin, ['health', ...args], { env, timeoutMs: 20000 });
}

/** Waits until `dpsemu health` with env answers 0, as a compose service_healthy wait. */
async function waitHealthy(proc, env) {
	let last;
	await waitFor(
		async () => {
			if (proc.status) throw new Error(`${proc.name} exited: ${JSON.stringify(proc.status)}`);
			last = await health(env);
			return last.code === 0;
		},
		{ timeoutMs: HEALTHY_TIMEOUT_MS, intervalMs: 200, what: `${proc.name} healthy` },
	).catch((e) => {
		throw new Error(`${e.message}\n${last ? describe(last) : ''}\n${proc.log}`);
	});
	return last;
}

/** One line on stderr, nothing on stdout, exit 1: what Docker records as unhealthy. */
function assertUnhealthy(r, re) {
	assert.equal(r.code, 1, describe(r));
	assert.equal(r.stdout, '', describe(r));
	const lines = r.stderr.trim().split('\n');
	assert.equal(lines.length, 1, `one line of reason: ${describe(r)}`);
	assert.match(lines[0], /^dpsemu health: /);
	assert.match(lines[0], re);
}

// ---- the stage -------------------------------------------------------------------

/** Every file under dir, as paths relative to it. */
function listFiles(dir, rel = '') {
	const out = [];
	for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
		const r = path.join(rel, e.name);
		if (e.isDirectory()) out.push(...listFiles(dir, r));
		else out.push(r);
	}
	return out.sort();
}

function sha256(file) {
	return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

let glibcFiles;
/** glibc's files (package libc6), resolved: the base image provides them. */
async function isGlibc(file) {
	if (!glibcFiles) {
		const r = await run('dpkg-query', ['-L', 'libc6']);
		assert.equal(r.code, 0, describe(r));
		glibcFiles = new Set();
		for (const f of r.stdout.split('\n')) {
			try {
				if (fs.statSync(f).isFile()) glibcFiles.add(fs.realpathSync(f));
			} catch {
				// dpkg lists folders and diversions too
			}
		}
	}
	return glibcFiles.has(fs.realpathSync(file));
}

/** ldd of bin with the stage's libraries first: [{ name, path }] ("not found" -> null). */
async function libraries(bin, stage) {
	const r = await run('ldd', [bin], { env: { PATH: process.env.PATH, LD_LIBRARY_PATH: path.join(stage, LIBDIR) } });
	assert.equal(r.code, 0, describe(r));
	const libs = [];
	for (const line of r.stdout.split('\n')) {
		const m = /^\s*(\S+) => (.+?)(?: \(0x[0-9a-f]+\))?$/.exec(line);
		if (m) libs.push({ name: m[1], path: m[2] === 'not found' ? null : m[2] });
	}
	return libs;
}

async function assertExactStage(dir, prog) {
	const bin = path.join(dir, 'usr/local/bin', prog);
	fs.accessSync(bin, fs.constants.X_OK);
	const libs = await libraries(bin, dir);
	assert.ok(libs.length > 0, `ldd lists libraries of ${bin}`);
	const staged = new Set();
	for (const lib of libs) {
		assert.ok(lib.path, `${prog} needs ${lib.name}, which resolves nowhere`);
		if (lib.path.startsWith(path.join(dir, LIBDIR) + '/')) staged.add(lib.name);
		else assert.ok(await isGlibc(lib.path), `${prog} loads ${lib.name} from ${lib.path}, outside the stage`);
	}
	const expected = ['.dpsemu-stage', path.join('usr/local/bin', prog),
		...[...staged].map((n) => path.join(LIBDIR, n))].sort();
	assert.deepEqual(listFiles(dir), expected, `${dir} holds ${prog} and the libraries it loads, nothing else`);
	return staged;
}

test('build.sh stages dpsemu and dps-device with exactly the libraries they load (glibc excepted)', async (t) => {
	markFailure(t);
	for (const b of builds) t.diagnostic(`build.sh ${b.prog}: ${b.ms} ms; ${b.stdout.trim()}`);
	const server = await assertExactStage(STAGE, 'dpsemu');
	for (const lib of ['libmicrohttpd.so.12', 'liblmdb.so.0', 'libjansson.so.4', 'libcurl.so.4',
		'libmosquitto.so.1', 'libssl.so.3', 'libcrypto.so.3']) {
		assert.ok(server.has(lib), `dpsemu's stage has ${lib}`);
	}
	assert.ok(!server.has('libc.so.6'), 'glibc comes from the base image');
	const device = await assertExactStage(DEVICE_STAGE, 'dps-device');
	for (const lib of ['libmosquitto.so.1', 'libjansson.so.4', 'libssl.so.3', 'libcrypto.so.3']) {
		assert.ok(device.has(lib), `dps-device's stage has ${lib}`);
	}
	assert.ok(!device.has('libmicrohttpd.so.12'), 'the device stage has the device\'s libraries only');
});

test('build.sh is idempotent and never replaces a folder it did not make', async (t) => {
	markFailure(t);
	const before = Object.fromEntries(listFiles(STAGE).map((f) => [f, sha256(path.join(STAGE, f))]));
	const again = await run(path.join(DOCKER, 'build.sh'), [STAGE, 'dpsemu'], {
		env: buildEnv(),
		timeoutMs: BUILD_TIMEOUT_MS,
	});
	assert.equal(again.code, 0, describe(again));
	const after = Object.fromEntries(listFiles(STAGE).map((f) => [f, sha256(path.join(STAGE, f))]));
	assert.deepEqual(after, before, 'a second run stages the same files');

	const foreign = path.join(tmp, 'not-a-stage');
	fs.mkdirSync(foreign);
	fs.writeFileSync(path.join(foreign, 'keep.txt'), 'mine');
	const refused = await run(path.join(DOCKER, 'build.sh'), [foreign], { env: buildEnv(), timeoutMs: 60000 });
	assert.equal(refused.code, 2, describe(refused));
	assert.match(refused.stderr, /not a stage made by this script/);
	assert.equal(fs.readFileSync(path.join(foreign, 'keep.txt'), 'utf8'), 'mine');

	const unknown = await run(path.join(DOCKER, 'build.sh'), [path.join(tmp, 'x'), 'nothing'], {
		env: buildEnv(),
	});
	assert.equal(unknown.code, 2, describe(unknown));
	assert.match(unknown.stderr, /unknown program 'nothing'/);
});

test('the staged programs run from the stage alone', async (t) => {
	markFailure(t);
	const help = await run(STAGED_DPSEMU, ['--help'], { env: stagedEnv() });
	assert.equal(help.code, 0, describe(help));
	// The variables the image sets must be settings the daemon knows.
	for (const v of Object.keys(await imageEnv())) assert.match(help.stdout, new RegExp(`\\b${v}\\b`));
	const hhelp = await run(STAGED_DPSEMU, ['health', '--help'], { env: stagedEnv() });
	assert.equal(hhelp.code, 0, describe(hhelp));
	assert.match(hhelp.stdout, /--url URL/);
	const dev = await run(STAGED_DEVICE, ['--help'], { env: stagedEnv() });
	assert.equal(dev.code, 0, describe(dev));
	assert.match(dev.stdout + dev.stderr, /--csr-key-type/);
});

// ---- the Dockerfile ---------------------------------------------------------------

/** Stages of docker/Dockerfile: { name: { from, env: {K: V} } } (ENV lines joined). */
function dockerfileStages() {
	const text = fs.readFileSync(path.join(DOCKER, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
	const stages = {};
	let cur = null;
	let n = 0;
	for (const raw of text.split('\n')) {
		const line = raw.trim();
		let m;
		if ((m = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line))) {
			const name = m[2] || `#${n}`;
			n++;
			cur = stages[name] = { from: m[1], env: { ...(stages[m[1]] ? stages[m[1]].env : {}) } };
		} else if (cur && (m = /^ENV\s+(.*)$/i.exec(line))) {
			for (const kv of m[1].trim().split(/\s+/)) {
				const eq = kv.indexOf('=');
				assert.ok(eq > 0, `ENV uses KEY=value: ${line}`);
				cur.env[kv.slice(0, eq)] = kv.slice(eq + 1);
			}
		}
	}
	return stages;
}

/** The DPSEMU_* settings the runtime image sets. */
async function imageEnv() {
	const stages = dockerfileStages();
	assert.ok(stages.runtime, 'the Dockerfile has a runtime stage');
	return Object.fromEntries(Object.entries(stages.runtime.env).filter(([k]) => k.startsWith('DPSEMU_')));
}

test('the image\'s settings: 0.0.0.0, /data, /enrollments, a HEALTHCHECK on dpsemu health', async (t) => {
	markFailure(t);
	const env = await imageEnv();
	assert.equal(env.DPSEMU_BIND, '0.0.0.0');
	assert.equal(env.DPSEMU_DATA_DIR, '/data');
	assert.equal(env.DPSEMU_ENROLLMENTS_DIR, '/enrollments');
	const text = fs.readFileSync(path.join(DOCKER, 'Dockerfile'), 'utf8');
	assert.match(text, /^HEALTHCHECK .*CMD \["dpsemu", "health"\]$/m);
	assert.match(text, /^USER 10001:10001$/m, 'the runtime runs as a non-root user');
	assert.match(text, /^RUN bash docker\/build\.sh \/stage dpsemu /m, 'the build stage runs build.sh');
	assert.match(text, /^COPY --from=build \/stage\/usr\/local\/ \/usr\/local\/$/m, 'the runtime copies the stage');
	assert.ok(text.includes(`echo /${LIBDIR} >/etc/ld.so.conf.d/dpsemu.conf && ldconfig`),
		'the runtime finds the staged libraries through ldconfig');
	const stages = dockerfileStages();
	assert.equal(stages.device.from, 'runtime');
});

// ---- dpsemu health ----------------------------------------------------------------

/** A staged daemon with the image's environment (bind 0.0.0.0), on free ports. */
async function startStagedDaemon(name, dir) {
	const [mqttPort, httpsPort] = await freePorts(2);
	fs.mkdirSync(path.join(dir, 'enrollments'), { recursive: true });
	const env = stagedEnv({
		...(await imageEnv()),
		DPSEMU_DATA_DIR: path.join(dir, 'data'),
		DPSEMU_ENROLLMENTS_DIR: path.join(dir, 'enrollments'), // empty, as in the image
		DPSEMU_MQTT_PORT: String(mqttPort),
		DPSEMU_HTTPS_PORT: String(httpsPort),
	});
	const proc = new Proc(name, STAGED_DPSEMU, [], env);
	return { proc, env, mqttPort, httpsPort };
}

test('dpsemu health: 0 and the answer for a healthy daemon, 1 and one line of reason otherwise', async (t) => {
	markFailure(t);
	const dir = path.join(tmp, 'health');
	const d = await startStagedDaemon('staged dpsemu', dir);
	try {
		const ok = await waitHealthy(d.proc, d.env);
		const body = JSON.parse(ok.stdout);
		assert.equal(body.status, 'ok');
		assert.equal(body.httpsPort, d.httpsPort);
		assert.deepEqual(body.services, ['dps', 'hub']);
		assert.equal(ok.stderr, '');

		// The daemon's flags work as they do for the daemon.
		const flags = await health(stagedEnv(), ['--https-port', String(d.httpsPort), '--data-dir',
			d.env.DPSEMU_DATA_DIR, '--bind=0.0.0.0', '--timeout', '3']);
		assert.equal(flags.code, 0, describe(flags));

		const [idle] = await freePorts(1);
		assertUnhealthy(await health({ ...d.env, DPSEMU_HTTPS_PORT: String(idle) }),
			new RegExp(`:${idle}/health \\(connecting to 127\\.0\\.0\\.1\\): .*connect`, 'i'));
		const other = path.join(dir, 'other-ca');
		const made = await run(STAGED_DPSEMU, ['certs', 'root', '--cn', 'another CA', '--out', other],
			{ env: stagedEnv() });
		assert.equal(made.code, 0, describe(made));
		assertUnhealthy(await health(d.env, ['--ca', `${other}.pem`]), /\): .*certificate/i);
		assertUnhealthy(await health({ ...d.env, DPSEMU_HOSTNAME: 'not-in-the-certificate' }),
			/^dpsemu health: https:\/\/not-in-the-certificate:\d+\/health .*\): .*certificate/i);
		assertUnhealthy(await health(d.env, ['--url', `https://127.0.0.1:${d.httpsPort}/no-such-route`]),
			/HTTP 404$/);
		assertUnhealthy(await health({ ...d.env, DPSEMU_DATA_DIR: path.join(dir, 'empty') }),
			/cannot read the trust root .*server-ca\.pem/);
		// Docker reserves exit code 2: bad settings and usage errors are 1 too.
		assertUnhealthy(await health({ ...d.env, DPSEMU_NO_SUCH_SETTING: '1' }),
			/unknown setting DPSEMU_NO_SUCH_SETTING/);
		assertUnhealthy(await health(d.env, ['--timeout', '0']), /--timeout/);
		assertUnhealthy(await health(d.env, ['--url']), /--url needs a value/);

		const stopped = await d.proc.stop();
		assert.deepEqual(stopped, { code: 0, signal: null }, 'SIGTERM stops the staged daemon cleanly');
		assertUnhealthy(await health(d.env), /connect/i);
	} catch (err) {
		process.stderr.write(`${d.proc.log}\n`);
		throw err;
	} finally {
		await d.proc.stop();
	}
});

test('dpsemu health of the binary under test agrees with the test harness', async (t) => {
	markFailure(t);
	const d = await Daemon.start({ dataDir: path.join(tmp, 'harness') });
	let ok = false;
	try {
		// The caller's environment (sanitizer options) without DPSEMU_*, plus the daemon's.
		const inherited = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DPSEMU_')));
		const env = { ...inherited, ...d.env() };
		const r = await health(env, [], BIN);
		assert.equal(r.code, 0, describe(r));
		assert.equal(JSON.parse(r.stdout).httpsPort, d.httpsPort);
		await d.stop();
		assertUnhealthy(await health(env, [], BIN), /connect/i);
		ok = true;
	} finally {
		if (!ok) d.printLog('daemon log (health with the binary under test)');
		if (d.running) await d.kill('SIGKILL');
	}
});

// ---- compose files ----------------------------------------------------------------

/**
 * Reads the YAML the compose files use: block mappings and sequences, flow sequences
 * of scalars, {} and flow mappings of scalars, plain, single- and double-quoted scalars,
 * comments. Anything else (anchors, tags, multi-line scalars, tabs) throws: the compose
 * files keep to this subset so that they can be checked without Docker.
 */
function parseYaml(text, file) {
	const lines = [];
	text.split('\n').forEach((raw, i) => {
		const where = `${file}:${i + 1}`;
		const body = stripComment(raw, where).replace(/\s+$/, '');
		if (!body.trim()) return;
		const indent = body.length - body.trimStart().length;
		if (/^\s*\t/.test(body) || body.slice(0, indent).includes('\t')) throw new Error(`${where}: tab in indentation`);
		if (/^\s*(---|\.\.\.)\s*$/.test(body)) throw new Error(`${where}: one document only`);
		lines.push({ indent, text: body.trim(), where });
	});
	let pos = 0;

	function block(indent) {
		const first = lines[pos];
		if (first.text.startsWith('- ') || first.text === '-') return sequence(indent);
		return mapping(indent);
	}

	function mapping(indent) {
		const out = {};
		while (pos < lines.length && lines[pos].indent === indent && !lines[pos].text.startsWith('-')) {
			const { text: t, where } = lines[pos];
			const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s'"{}[\],#&*!|>%@`][^:]*?)\s*:(?:\s+(.*))?$/.exec(t);
			if (!m) throw new Error(`${where}: not a "key: value" line: ${t}`);
			const key = scalar(m[1], where);
			if (Object.prototype.hasOwnProperty.call(out, key)) throw new Error(`${where}: duplicate key ${key}`);
			pos++;
			if (m[2] !== undefined && m[2] !== '') {
				out[key] = value(m[2], where);
			} else if (pos < lines.length && lines[pos].indent > indent) {
				out[key] = block(lines[pos].indent);
			} else if (pos < lines.length && lines[pos].indent === indent && lines[pos].text.startsWith('- ')) {
				out[key] = sequence(indent); // a sequence may sit at its key's indentation
			} else {
				out[key] = null;
			}
		}
		if (pos < lines.length && lines[pos].indent > indent) {
			throw new Error(`${lines[pos].where}: unexpected indentation`);
		}
		return out;
	}

	function sequence(indent) {
		const out = [];
		while (pos < lines.length && lines[pos].indent === indent && lines[pos].text.startsWith('-')) {
			const { text: t, where } = lines[pos];
			const rest = t.slice(1).trim();
			pos++;
			if (rest === '') {
				if (pos < lines.length && lines[pos].indent > indent) out.push(block(lines[pos].indent));
				else out.push(null);
			} else if (/^[^'"[{][^:]*:(\s|$)/.test(rest)) {
				throw new Error(`${where}: mappings inside sequences are not used by the compose files`);
			} else {
				out.push(value(rest, where));
			}
		}
		return out;
	}

	function value(t, where) {
		if (t.startsWith('[')) {
			if (!t.endsWith(']')) throw new Error(`${where}: unterminated flow sequence`);
			const inner = t.slice(1, -1).trim();
			return inner ? splitFlow(inner, where).map((s) => scalar(s, where)) : [];
		}
		if (t.startsWith('{')) {
			if (!t.endsWith('}')) throw new Error(`${where}: unterminated flow mapping`);
			const inner = t.slice(1, -1).trim();
			const out = {};
			for (const part of inner ? splitFlow(inner, where) : []) {
				const m = /^([^:]+):\s+(.+)$/.exec(part);
				if (!m) throw new Error(`${where}: not "key: value" in a flow mapping: ${part}`);
				out[scalar(m[1].trim(), where)] = scalar(m[2].trim(), where);
			}
			return out;
		}
		if (/^[|>&*!]/.test(t)) throw new Error(`${where}: block scalars, anchors and tags are not used`);
		return scalar(t, where);
	}

	return block(0);
}

function stripComment(raw, where) {
	let quote = null;
	for (let i = 0; i < raw.length; i++) {
		const c = raw[i];
		if (quote) {
			if (c === '\\' && quote === '"') i++;
			else if (c === quote) quote = null;
		} else if (c === '"' || c === "'") {
			quote = c;
		} else if (c === '#' && (i === 0 || /\s/.test(raw[i - 1]))) {
			return raw.slice(0, i);
		}
	}
	if (quote) throw new Error(`${where}: unterminated quote`);
	return raw;
}

function splitFlow(inner, where) {
	const parts = [];
	let quote = null;
	let cur = '';
	for (const c of inner) {
		if (quote) {
			if (c === quote) quote = null;
		} else if (c === '"' || c === "'") {
			quote = c;
		} else if (c === ',') {
			parts.push(cur.trim());
			cur = '';
			continue;
		} else if ('[]{}'.includes(c)) {
			throw new Error(`${where}: nested flow collections are not used`);
		}
		cur += c;
	}
	parts.push(cur.trim());
	return parts;
}

function scalar(t, where) {
	if (t.startsWith('"')) {
		if (!t.endsWith('"') || t.length < 2) throw new Error(`${where}: bad double-quoted scalar ${t}`);
		return JSON.parse(t);
	}
	if (t.startsWith("'")) {
		if (!t.endsWith("'") || t.length < 2) throw new Error(`${where}: bad single-quoted scalar ${t}`);
		return t.slice(1, -1).replace(/''/g, "'");
	}
	return t; // plain scalars stay text: compose itself converts where it must
}

function readCompose(file) {
	return parseYaml(fs.readFileSync(path.join(DOCKER, file), 'utf8'), `docker/${file}`);
}

/** Resolves ${VAR:-default} and ${VAR} as compose does when VAR is not set: what a user
 * without an .env file gets (the test's own environment is not consulted). */
function interpolate(v) {
	return String(v).replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_, name, def) => def || '');
}

/** The compose environment of a service as a plain object, interpolated. */
function serviceEnv(svc) {
	const e = svc.environment || {};
	assert.ok(!Array.isArray(e), 'environment is written as a mapping');
	return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, interpolate(v)]));
}

const SERVICE_KEYS = new Set(['image', 'build', 'user', 'entrypoint', 'command', 'volumes', 'healthcheck',
	'network_mode', 'hostname', 'environment', 'ports', 'sysctls', 'networks', 'depends_on', 'restart']);

/** The structure docker compose checks, for hosts without it: known keys and references. */
function checkComposeStructure(doc, file) {
	for (const k of Object.keys(doc)) {
		assert.ok(['services', 'networks', 'volumes'].includes(k) || k.startsWith('x-'), `${file}: top-level ${k}`);
	}
	assert.ok(doc.services && Object.keys(doc.services).length, `${file} has services`);
	const hostPorts = new Set();
	for (const [name, svc] of Object.entries(doc.services)) {
		const where = `${file}: service ${name}`;
		for (const k of Object.keys(svc)) assert.ok(SERVICE_KEYS.has(k), `${where}: key ${k}`);
		assert.ok(svc.image || svc.build, `${where} has an image or a build`);
		if (svc.build) {
			assert.equal(path.resolve(DOCKER, svc.build.context), ROOT, `${where}: builds from the repository root`);
			const df = path.join(ROOT, svc.build.dockerfile);
			assert.ok(fs.existsSync(df), `${where}: ${df} exists`);
			assert.ok(dockerfileStages()[svc.build.target], `${where}: target ${svc.build.target} is a stage`);
		}
		for (const v of svc.volumes || []) {
			const [src, target, mode] = String(v).split(':');
			assert.ok(target && target.startsWith('/'), `${where}: volume ${v} mounts at an absolute path`);
			assert.ok(mode === undefined || mode === 'ro' || mode === 'rw', `${where}: volume mode ${mode}`);
			if (src.startsWith('.') || src.startsWith('/')) {
				assert.ok(fs.existsSync(path.resolve(DOCKER, src)), `${where}: ${src} exists`);
			} else {
				assert.ok(doc.volumes && src in doc.volumes, `${where}: volume ${src} is declared`);
			}
		}
		for (const p of svc.ports || []) {
			const m = /^(\d+):(\d+)$/.exec(String(p));
			assert.ok(m, `${where}: port ${p} is HOST:CONTAINER`);
			assert.ok(!hostPorts.has(m[1]), `${file}: host port ${m[1]} is published once`);
			hostPorts.add(m[1]);
		}
		for (const n of svc.networks || []) assert.ok(doc.networks && n in doc.networks, `${where}: network ${n}`);
		for (const [dep, how] of Object.entries(svc.depends_on || {})) {
			assert.ok(dep in doc.services, `${where}: depends on ${dep}, a service`);
			assert.ok(['service_started', 'service_healthy', 'service_completed_successfully'].includes(how.condition),
				`${where}: condition ${how.condition}`);
		}
		for (const k of Object.keys(svc.sysctls || {})) {
			assert.ok(k.startsWith('net.'), `${where}: sysctl ${k} is one a container may set`);
		}
	}
}

/** `docker compose` when the CLI has it, else `docker-compose`, else null. */
async function composeCommand() {
	const candidates = [['docker', ['compose']], ['docker-compose', []]];
	for (const [cmd, pre] of candidates) {
		try {
			const r = await run(cmd, [...pre, 'version'], { timeoutMs: 20000 });
			if (r.code === 0) return [cmd, pre];
		} catch {
			// not installed
		}
	}
	return null;
}

test('the compose files are valid', async (t) => {
	markFailure(t);
	const compose = await composeCommand();
	const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DPSEMU_')));
	for (const file of COMPOSE_FILES) {
		const doc = readCompose(file);
		checkComposeStructure(doc, file);
		if (compose) {
			const [cmd, pre] = compose;
			const r = await run(cmd, [...pre, '-f', path.join(DOCKER, file), 'config', '-q'], { env, timeoutMs: 60000 });
			assert.equal(r.code, 0, describe(r));
			t.diagnostic(`${file}: ${[cmd, ...pre].join(' ')} config accepts it`);
		} else {
			t.diagnostic(`${file}: no docker compose here; checked by the YAML reading of this test`);
		}
	}
});

test('the compose files are consistent with the image, the daemon and each other', async (t) => {
	markFailure(t);
	const help = await run(STAGED_DPSEMU, ['--help'], { env: stagedEnv() });
	const known = new Set(help.stdout.match(/\bDPSEMU_[A-Z0-9_]+/g));
	for (const file of COMPOSE_FILES) {
		for (const [name, svc] of Object.entries(readCompose(file).services)) {
			for (const k of Object.keys(serviceEnv(svc))) {
				if (k.startsWith('DPSEMU_')) assert.ok(known.has(k), `${file}: ${name} sets ${k}, which dpsemu --help lists`);
			}
		}
	}
	const { services: s } = readCompose('docker-compose.yml');
	assert.deepEqual(Object.keys(s).sort(), ['device', 'dps', 'hub', 'mosquitto', 'pki']);
	const dps = serviceEnv(s.dps);
	const hub = serviceEnv(s.hub);
	assert.equal(dps.DPSEMU_SERVICES, 'dps');
	assert.equal(hub.DPSEMU_SERVICES, 'hub');
	// DPS assigns devices to the hub by the hub's name and reaches its service API.
	const linked = /^([^@,]+)@([^:,]+):(\d+)$/.exec(dps.DPSEMU_LINKED_HUBS);
	assert.ok(linked, `DPSEMU_LINKED_HUBS is name@host:port: ${dps.DPSEMU_LINKED_HUBS}`);
	assert.equal(linked[1], hub.DPSEMU_HOSTNAME);
	assert.ok(linked[2] in s, `${linked[2]} is a service`);
	assert.equal(linked[3], '443', 'the hub listens on the image\'s HTTPS port');
	assert.equal(dps.DPSEMU_HUB_KEY, hub.DPSEMU_HUB_KEY, 'DPS signs with the hub\'s key');
	for (const k of ['SERVER_CA_CERT', 'SERVER_CA_KEY', 'ISSUING_CA_CERT', 'ISSUING_CA_KEY', 'ISSUING_CA_CHAIN']) {
		assert.ok(dps[`DPSEMU_${k}`], `DPS sets DPSEMU_${k}`);
		assert.equal(dps[`DPSEMU_${k}`], hub[`DPSEMU_${k}`], `DPS and hub share DPSEMU_${k}`);
	}
	const fwd = /^([^:]+):(\d+)$/.exec(hub.DPSEMU_FORWARD_MQTT);
	assert.ok(fwd && fwd[1] in s, 'the hub forwards telemetry to a service of the file');
	const conf = fs.readFileSync(path.join(DOCKER, 'mosquitto.conf'), 'utf8');
	assert.match(conf, new RegExp(`^listener ${fwd[2]}$`, 'm'), 'the broker listens where the hub sends');
	const cmd = s.device.command;
	assert.equal(cmd[cmd.indexOf('--host') + 1], 'dps');
	assert.equal(cmd[cmd.indexOf('--hub-host') + 1], 'hub');
	assert.equal(s.pki.user, 'root', 'the pki service hands its files to the image\'s user');
});

// ---- the compose deployment on the host -------------------------------------------

/**
 * One compose service run on the host. Its container file system is a folder: named
 * volumes are shared folders (symlinked), bind mounts are copies of docker/ files, so
 * relative paths between mounts ("/enrollments/../pki") resolve as in the container.
 * Addresses "service:port" become 127.0.0.1 and the host port the service got.
 */
class HostService {
	constructor(deployment, name) {
		this.d = deployment;
		this.name = name;
		this.svc = deployment.doc.services[name];
		this.root = path.join(deployment.dir, 'containers', name);
		this.mounts = [];
		fs.mkdirSync(this.root, { recursive: true });
		for (const v of this.svc.volumes || []) {
			const [src, target] = String(v).split(':');
			const where = path.join(this.root, target);
			fs.mkdirSync(path.dirname(where), { recursive: true });
			if (src.startsWith('.')) {
				fs.cpSync(path.resolve(DOCKER, src), where, { recursive: true });
			} else {
				const vol = path.join(deployment.dir, 'volumes', src);
				fs.mkdirSync(vol, { recursive: true });
				fs.symlinkSync(vol, where);
			}
			this.mounts.push(target);
		}
	}

	/** A container path as a host path (unchanged when no mount holds it). */
	path(p) {
		for (const m of this.mounts) {
			if (p === m || p.startsWith(`${m}/`)) return path.join(this.root, p);
		}
		return p;
	}

	/** A setting's value with container paths and service addresses translated. */
	translate(v) {
		if (v.startsWith('/')) return this.path(v);
		return v.replace(/([@,]|^)([a-z][a-z0-9-]*):(\d+)/g, (all, pre, host, port) => {
			const mapped = this.d.address(host, port);
			return mapped ? `${pre}${mapped}` : all;
		});
	}

	/** The environment the container would have: the image's, the file's, then ports. */
	async env(ports) {
		const env = { ...(await imageEnv()), ...serviceEnv(this.svc) };
		for (const k of Object.keys(env)) env[k] = this.translate(env[k]);
		env.DPSEMU_MQTT_PORT = String(ports.mqtt);
		env.DPSEMU_HTTPS_PORT = String(ports.https);
		return stagedEnv(env);
	}
}

class HostDeployment {
	constructor(dir) {
		this.dir = dir;
		this.doc = readCompose('docker-compose.yml');
		this.ports = {}; // "service:containerPort" -> host port
		this.procs = [];
	}

	address(host, port) {
		const p = this.ports[`${host}:${port}`];
		return p ? `127.0.0.1:${p}` : null;
	}

	async assign(name, containerPorts) {
		const free = await freePorts(containerPorts.length);
		containerPorts.forEach((cp, i) => { this.ports[`${name}:${cp}`] = free[i]; });
		return free;
	}

	/** Stops every process, the last started first: [{ name, code, signal, hung? }]. */
	async stopAll() {
		const out = [];
		for (const p of [...this.procs].reverse()) out.push({ name: p.name, ...(await p.stop()) });
		return out;
	}
}

function mqttSubscribe(port, filter) {
	return new Promise((resolve, reject) => {
		const c = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000 });
		const messages = [];
		c.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString('utf8') }));
		c.on('error', (e) => { c.end(true); reject(e); });
		c.on('connect', () => {
			c.subscribe(filter, { qos: 0 }, (err) => {
				if (err) { c.end(true); reject(err); } else resolve({ client: c, messages });
			});
		});
	});
}

test('the compose deployment runs on the host: shared PKI, DPS and hub apart, a CSR device, forwarded telemetry', async (t) => {
	markFailure(t);
	const dep = new HostDeployment(path.join(tmp, 'compose'));
	const s = dep.doc.services;
	let sub;
	let ok = false;
	try {
		// pki: its entrypoint, with the image's PATH; run as root it chowns to PKI_OWNER.
		const pki = new HostService(dep, 'pki');
		const [shell, script, ...args] = s.pki.entrypoint;
		const owner = `${process.getuid()}:${process.getgid()}`;
		const init = () => run(shell, [pki.path(script), ...args.map((a) => pki.path(a))],
			{ env: stagedEnv({ PKI_OWNER: owner }), timeoutMs: 60000 });
		const first = await init();
		assert.equal(first.code, 0, describe(first));
		const pkiDir = pki.path('/pki');
		const files = listFiles(pkiDir);
		for (const f of ['server-ca.pem', 'server-ca.key', 'issuing-ca.pem', 'issuing-ca.key', 'device-ca-chain.pem',
			'bootstrap-ca.pem', 'device-001-chain.pem', 'device-001.key', '.complete']) {
			assert.ok(files.includes(f), `the pki volume has ${f}`);
		}
		assert.equal(fs.statSync(path.join(pkiDir, 'server-ca.key')).mode & 0o077, 0, 'keys are private');
		const snapshot = Object.fromEntries(files.map((f) => [f, sha256(path.join(pkiDir, f))]));
		const second = await init();
		assert.equal(second.code, 0, describe(second));
		assert.match(second.stdout, /nothing to do/);
		assert.deepEqual(Object.fromEntries(listFiles(pkiDir).map((f) => [f, sha256(path.join(pkiDir, f))])),
			snapshot, 'a second start keeps the PKI');
		const issuing = new crypto.X509Certificate(fs.readFileSync(path.join(pkiDir, 'issuing-ca.pem')));
		const root = new crypto.X509Certificate(fs.readFileSync(path.join(pkiDir, 'device-root.pem')));
		assert.ok(issuing.ca && issuing.verify(root.publicKey), 'the issuing CA sits directly under its root');

		// mosquitto: the file's configuration on a free port.
		const broker = new HostService(dep, 'mosquitto');
		const [brokerPort] = await dep.assign('mosquitto', [1883]);
		const conf = fs.readFileSync(broker.path('/mosquitto/config/mosquitto.conf'), 'utf8')
			.replace(/^listener 1883$/m, `listener ${brokerPort} 127.0.0.1`);
		const confPath = path.join(broker.root, 'host.conf');
		fs.writeFileSync(confPath, conf);
		const mosq = new Proc('mosquitto', 'mosquitto', ['-c', confPath], { PATH: process.env.PATH });
		dep.procs.push(mosq);
		sub = await waitFor(() => mqttSubscribe(brokerPort, 'dpsemu/telemetry/#'),
			{ timeoutMs: 10000, intervalMs: 200, what: 'the broker' });

		// hub, then dps (which depends on the hub being healthy), as separate processes.
		const hub = new HostService(dep, 'hub');
		const [hubMqtt, hubHttps] = await dep.assign('hub', [8883, 443]);
		const hubEnv = await hub.env({ mqtt: hubMqtt, https: hubHttps });
		const hubProc = new Proc('hub', STAGED_DPSEMU, [], hubEnv);
		dep.procs.push(hubProc);
		await waitHealthy(hubProc, hubEnv);
		const dps = new HostService(dep, 'dps');
		const [dpsMqtt, dpsHttps] = await dep.assign('dps', [8883, 443]);
		const dpsEnv = await dps.env({ mqtt: dpsMqtt, https: dpsHttps });
		assert.equal(dpsEnv.DPSEMU_LINKED_HUBS, `hub@127.0.0.1:${hubHttps}`);
		const dpsProc = new Proc('dps', STAGED_DPSEMU, [], dpsEnv);
		dep.procs.push(dpsProc);
		await waitHealthy(dpsProc, dpsEnv);
		assert.ok(dpsProc.lines.some((l) => /seed enrollments from .*: 0 individual, 1 groups/.test(l)),
			`DPS loaded the seed group\n${dpsProc.log}`);

		// Both serve certificates from the one server CA, under their own names.
		const serverCa = fs.readFileSync(path.join(pkiDir, 'server-ca.pem'), 'utf8');
		for (const [port, name] of [[dpsHttps, dpsEnv.DPSEMU_HOSTNAME], [hubHttps, hubEnv.DPSEMU_HOSTNAME]]) {
			const r = await request(port, { path: '/health', ca: serverCa, servername: name });
			assert.equal(r.status, 200, `${name} answers with a certificate from the shared server CA`);
		}

		// device: the file's command, addresses and paths translated.
		const device = new HostService(dep, 'device');
		const cmd = s.device.command.map(String);
		const argv = [];
		for (let i = 0; i < cmd.length; i++) {
			const a = cmd[i];
			if (a === '--port') {
				i++; // given with --host
			} else if (a === '--host' || a === '--hub-host') {
				const host = cmd[++i];
				const containerPort = a === '--host' ? cmd[cmd.indexOf('--port') + 1] : '8883';
				const mapped = dep.address(host, containerPort);
				assert.ok(mapped, `${a} ${host}: a service of the file with port ${containerPort}`);
				argv.push(a, '127.0.0.1', a === '--host' ? '--port' : '--hub-port', mapped.split(':')[1]);
			} else {
				argv.push(a.startsWith('/') ? device.path(a) : a);
			}
		}
		argv.push('--timeout', String(DEVICE_TIMEOUT_S));
		const ran = await run(STAGED_DEVICE, argv, { env: stagedEnv(), timeoutMs: (DEVICE_TIMEOUT_S * 2 + 10) * 1000 });
		const diag = `${describe(ran)}\n${dpsProc.log}\n${hubProc.log}`;
		assert.equal(ran.code, 0, diag);
		const answer = JSON.parse(ran.stdout.trim().split('\n').pop());
		assert.equal(answer.status, 'assigned', diag);
		assert.equal(answer.registrationState.assignedHub, hubEnv.DPSEMU_HOSTNAME);
		assert.equal(answer.registrationState.deviceId, 'device-001');

		// The operational certificate it got is issued by the shared issuing CA.
		const issued = new crypto.X509Certificate(fs.readFileSync(device.path('/data/device.pem')));
		assert.ok(issued.verify(issuing.publicKey), 'the issued certificate comes from the issuing CA');
		assert.match(issued.subject, /CN=device-001/);

		// The hub has the device (registered by DPS through its service API) and its message.
		const hubGet = (p) => request(hubHttps, {
			path: p,
			ca: serverCa,
			servername: hubEnv.DPSEMU_HOSTNAME,
			headers: { Authorization: sasToken({ sr: hubEnv.DPSEMU_HOSTNAME, key: HUB_KEY, keyName: HUB_KEY_NAME }) },
		});
		const dev = await hubGet('/devices/device-001?api-version=2021-04-12');
		assert.equal(dev.status, 200, dev.text);
		assert.equal(dev.json.authentication.type, 'certificateAuthority');
		const message = cmd[cmd.indexOf('--message') + 1];
		const seen = await hubGet('/_emulator/telemetry?deviceId=device-001&wait=5');
		assert.equal(seen.status, 200, seen.text);
		assert.deepEqual(seen.json.messages.map((m) => m.body), [message]);

		// And the broker got the hub's copy.
		await waitFor(() => sub.messages.length > 0, { timeoutMs: 10000, what: 'the forwarded message' });
		assert.equal(sub.messages[0].topic, 'dpsemu/telemetry/device-001');
		const envelope = JSON.parse(sub.messages[0].payload);
		assert.equal(envelope.deviceId, 'device-001');
		assert.equal(envelope.body, message);

		for (const st of await dep.stopAll()) {
			if (st.name !== 'mosquitto') assert.deepEqual(st, { name: st.name, code: 0, signal: null }, `${st.name} stops cleanly`);
		}
		ok = true;
	} finally {
		if (sub) sub.client.end(true);
		const statuses = await withTimeout(dep.stopAll(), 30000, 'stopping the host deployment');
		if (!ok || statuses.some((x) => x.hung)) for (const p of dep.procs) process.stderr.write(`${p.log}\n`);
	}
});
