'use strict';
// Bounded waiting: every wait in the suites goes through here and has a timeout.

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Calls fn until it returns a truthy value (which is returned) or timeoutMs passes,
 * then throws an Error naming what was awaited (and the last error fn threw, if any).
 */
async function waitFor(fn, { timeoutMs = 10000, intervalMs = 50, what = 'condition' } = {}) {
	const deadline = Date.now() + timeoutMs;
	let lastErr;
	for (;;) {
		try {
			const v = await fn();
			if (v) return v;
		} catch (err) {
			lastErr = err;
		}
		if (Date.now() >= deadline) {
			const why = lastErr ? ` (last error: ${lastErr.message})` : '';
			throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
		}
		await sleep(intervalMs);
	}
}

/** Rejects with a timeout error naming `what` unless promise settles within ms. */
function withTimeout(promise, ms, what) {
	let timer;
	const timeout = new Promise((_, reject) => {
		timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
	});
	return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

module.exports = { sleep, waitFor, withTimeout };
